"""
Abuse against the real daemon: each attack is bounded, and an honest
client is served while it goes on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Iterator

import pytest

from greetd.protocols.admission import REFUSAL_LINES
from tests.integration.conftest import TIMEOUT


def connectFrom(source: str, port: int) -> socket.socket:
    """
    A TCP connection to the daemon from the loopback address C{source}.
    """
    client = socket.socket()
    client.settimeout(TIMEOUT)
    client.bind((source, 0))
    client.connect(("127.0.0.1", port))
    return client


def udpFrom(source: str) -> socket.socket:
    """
    A UDP socket on the loopback address C{source}.
    """
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(TIMEOUT)
    client.bind((source, 0))
    return client


def waiting(client: socket.socket) -> int:
    """
    How many datagrams are waiting on C{client}, read without blocking.
    """
    count = 0
    client.setblocking(False)
    try:
        while True:
            client.recv(65536)
            count += 1
    except BlockingIOError:
        return count
    finally:
        client.settimeout(TIMEOUT)


def lowPortSocket() -> socket.socket:
    """
    A UDP socket on a free loopback port below 1024 (as root).
    """
    for port in range(1023, 900, -1):
        low = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            low.bind(("127.0.0.1", port))
        except OSError:
            low.close()
            continue
        return low
    pytest.skip("no free loopback port below 1024")


def receiveUntilClosed(client: socket.socket) -> bytes:
    received = b""
    while True:
        data = client.recv(65536)
        if not data:
            return received
        received += data


def honestExchange(
    port: int, name: bytes = b"honest", source: str = "127.0.0.9"
) -> None:
    """
    An honest client's whole session, which must succeed.
    """
    with connectFrom(source, port) as client:
        converse(client, name)


def converse(client: socket.socket, name: bytes) -> None:
    """
    A whole session on the connection C{client}: the banner, C{name}'s
    reply, and C{exit}, which closes.
    """
    client.sendall(name + b"\n")
    expected = b"Welcome" + b"Hello, " + name + b"!\n"
    received = b""
    while len(received) < len(expected):
        data = client.recv(1024)
        assert data, f"closed after {received!r}"
        received += data
    assert received == expected
    client.sendall(b"exit\n")
    assert receiveUntilClosed(client) == b""


def rss(pid: int) -> int:
    """
    The resident set size of process C{pid}, in bytes.
    """
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@contextlib.contextmanager
def cpuBurner() -> Iterator[None]:
    """
    Keep one core busy with another process for as long as the context
    lasts (at most a minute), as another job on the machine would: the
    daemon's scheduling then differs from a quiet machine's.
    """
    burner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nend = time.monotonic() + 60\n"
            "while time.monotonic() < end: pass",
        ]
    )
    try:
        yield
    finally:
        burner.kill()
        burner.wait(TIMEOUT)


def warmUp(
    client: socket.socket, exchange: Callable[[int], None], lines: int = 10000
) -> None:
    """
    Send 30 batches of C{lines} lines on C{client}, reading every reply,
    then run 100 honest sessions (C{exchange(n)}): PyPy's JIT compiles and
    its heap grows on the first floods and sessions, which is warm-up, not
    what a client that never reads can make greetd keep.
    """
    client.recv(7)
    for _ in range(30):
        client.sendall(b"warm\n" * lines)
        expected = len(b"Hello, warm!\n") * lines
        received = 0
        while received < expected:
            received += len(client.recv(65536))
    for n in range(100):
        exchange(n)


#: What a flooding client tries to push, in bytes, within L{FLOOD_SECONDS}.
FLOOD = 40 * 1024 * 1024

#: How long a flooding client goes on at most.
FLOOD_SECONDS = 6.0


def floodWhileServing(
    flooder: socket.socket, chunk: bytes, exchange: Callable[[int], None]
) -> tuple[int, int]:
    """
    Send C{chunk} on C{flooder} again and again, never reading, in a
    thread, until L{FLOOD} bytes or L{FLOOD_SECONDS} seconds, while this
    thread runs honest sessions, C{exchange(n)} for the nth, which must
    succeed.

    @return: How many bytes were pushed and how many sessions served.
    """
    pushed = 0
    flooder.settimeout(1.0)
    stop = threading.Event()

    def flood() -> None:
        nonlocal pushed
        deadline = time.monotonic() + FLOOD_SECONDS
        while pushed < FLOOD and time.monotonic() < deadline and not stop.is_set():
            try:
                pushed += flooder.send(chunk)
            except (socket.timeout, ssl.SSLWantWriteError):
                continue
            except OSError:
                return

    thread = threading.Thread(target=flood)
    thread.start()
    served = 0
    try:
        while thread.is_alive():
            exchange(served)
            served += 1
    finally:
        stop.set()
        thread.join(TIMEOUT)
    return pushed, served


def test_connectionLimits(spawnGreetd: Any) -> None:
    """
    Over C{--max-per-ip} and C{--max-connections}, a new connection gets one
    error line and is closed; the connections already open are untouched.
    """
    daemon = spawnGreetd(
        "--max-connections", "3", "--max-per-ip", "2", "--rate-per-ip", "0"
    )
    port = daemon.tcp[0][1]
    first = connectFrom("127.0.0.1", port)
    second = connectFrom("127.0.0.1", port)
    for client in (first, second):
        assert client.recv(7) == b"Welcome"
    with connectFrom("127.0.0.1", port) as third:
        assert receiveUntilClosed(third) == REFUSAL_LINES["max-per-ip"]
    other = connectFrom("127.0.0.2", port)
    assert other.recv(7) == b"Welcome"
    with connectFrom("127.0.0.3", port) as fourth:
        assert receiveUntilClosed(fourth) == b"Error: too many connections\r\n"
    for client in (first, second, other):
        client.sendall(b"still\n")
        assert client.recv(1024) == b"Hello, still!\n"
        client.close()
    daemon.waitFor(r"Refused a connection from 127\.0\.0\.1:\d+: max-per-ip")
    daemon.waitFor(r"Refused a connection from 127\.0\.0\.3:\d+: max-connections")
    honestExchange(port)


def test_connectionRate(spawnGreetd: Any) -> None:
    """
    A source opening connections faster than C{--rate-per-ip} is refused
    past its burst, while another source is served.
    """
    daemon = spawnGreetd("--rate-per-ip", "5")
    port = daemon.tcp[0][1]
    answers = []
    for _ in range(20):
        with connectFrom("127.0.0.1", port) as client:
            answers.append(client.recv(1024))
    refused = answers.count(REFUSAL_LINES["rate-per-ip"])
    assert answers.count(b"Welcome") + refused == 20
    assert 5 <= answers.count(b"Welcome") <= 10
    honestExchange(port)


def hammer(port: int, count: int) -> list[bytes]:
    """
    C{count} quick connections from one address, each sending a message,
    then a moment later C{exit}, before reading anything, as C{printf
    'x\\nexit\\n' | nc} may; what each got back before the daemon closed it.
    A daemon that closed a refused connection with the message unread would
    reset it: the second send would fail with a broken pipe.
    """
    answers = []
    for _ in range(count):
        with connectFrom("127.0.0.1", port) as client:
            client.sendall(b"x\n")
            time.sleep(0.05)
            client.sendall(b"exit\n")
            answers.append(receiveUntilClosed(client))
    return answers


def test_refusalsDeliveredUnderRate(spawnGreetd: Any) -> None:
    """
    Every connection refused by the rate gets its whole error line, though
    it sent bytes the daemon never answers: no reset destroys the line.
    """
    daemon = spawnGreetd("--rate-per-ip", "5")
    port = daemon.tcp[0][1]
    answers = hammer(port, 30)
    served = [answer for answer in answers if answer.startswith(b"Welcome")]
    refused = [answer for answer in answers if not answer.startswith(b"Welcome")]
    assert served and refused
    assert set(served) == {b"WelcomeHello, x!\n"}
    assert set(refused) == {REFUSAL_LINES["rate-per-ip"]}
    honestExchange(port)


def test_refusalsDeliveredOverCount(spawnGreetd: Any) -> None:
    """
    With the per-address count full, every new connection from that
    address gets the line naming that limit.
    """
    daemon = spawnGreetd("--max-per-ip", "2", "--rate-per-ip", "0")
    port = daemon.tcp[0][1]
    held = [connectFrom("127.0.0.1", port) for _ in range(2)]
    for client in held:
        assert client.recv(7) == b"Welcome"
    assert set(hammer(port, 30)) == {REFUSAL_LINES["max-per-ip"]}
    for client in held:
        client.close()
    honestExchange(port)


def test_accessControl(spawnGreetd: Any) -> None:
    """
    A denied source gets nothing over TCP or UDP; others are served.
    """
    daemon = spawnGreetd("--deny", "127.0.0.2", "--allow", "127.0.0.0/8")
    port = daemon.tcp[0][1]
    with connectFrom("127.0.0.2", port) as denied:
        assert receiveUntilClosed(denied) == b""
    honestExchange(port)
    udpPort = daemon.udp[0][1]
    with udpFrom("127.0.0.2") as denied, udpFrom("127.0.0.3") as allowed:
        denied.sendto(b"denied", ("127.0.0.1", udpPort))
        allowed.sendto(b"allowed", ("127.0.0.1", udpPort))
        assert allowed.recv(1024) == b"Hello, allowed!"
        # The daemon answers in arrival order: had it answered the denied
        # datagram, the reply would be here by now.
        assert waiting(denied) == 0


def test_idleTimeout(spawnGreetd: Any) -> None:
    """
    A slowloris client that never completes a message is cut after
    C{--idle-timeout}; a client that keeps talking is not.
    """
    daemon = spawnGreetd("--idle-timeout", "1")
    port = daemon.tcp[0][1]
    slow = connectFrom("127.0.0.1", port)
    talker = connectFrom("127.0.0.2", port)
    assert slow.recv(7) == talker.recv(7) == b"Welcome"
    slow.sendall(b"a\n")
    assert slow.recv(1024) == b"Hello, a!\n"
    started = time.monotonic()
    while time.monotonic() - started < 3:
        try:
            slow.sendall(b"x")
        except OSError:
            break
        talker.sendall(b"t\n")
        assert talker.recv(1024) == b"Hello, t!\n"
        time.sleep(0.2)
    assert receiveUntilClosed(slow) == b"Error: idle timeout\n"
    assert time.monotonic() - started < 2.5
    talker.sendall(b"still\n")
    assert talker.recv(1024) == b"Hello, still!\n"
    slow.close()
    talker.close()


def test_backpressure(spawnGreetd: Any) -> None:
    """
    A client that sends lines without end and never reads is paused: it
    cannot push its tens of MiB, the daemon's memory stays flat, and
    another client is served the whole time, with another process keeping
    one core busy.
    """
    daemon = spawnGreetd("--rate-per-ip", "0")
    port = daemon.tcp[0][1]
    pid = daemon.process.pid

    def exchange(n: int) -> None:
        honestExchange(port, b"honest%d" % n)

    with connectFrom("127.0.0.1", port) as reader:
        warmUp(reader, exchange)
    before = rss(pid)
    flooder = connectFrom("127.0.0.1", port)
    with cpuBurner():
        pushed, served = floodWhileServing(flooder, b"flood\n" * 10000, exchange)
    growth = rss(pid) - before
    flooder.close()
    assert served > 0
    assert pushed < FLOOD / 2, f"pushed {pushed} bytes: reading never paused"
    assert growth < 30 * 1024 * 1024, f"RSS grew by {growth} bytes"
    honestExchange(port)


def pushUnread(client: socket.socket, payload: bytes, last: bytes = b"") -> None:
    """
    Send C{payload} on C{client} again and again, never reading, until the
    daemon stops taking it (it has stopped reading: its replies are stuck),
    then C{last}; at most L{FLOOD} bytes.
    """
    client.settimeout(0.5)
    pushed = 0
    with contextlib.suppress(OSError, ssl.SSLWantWriteError):
        while pushed < FLOOD:
            pushed += client.send(payload)
    if last:
        with contextlib.suppress(OSError, ssl.SSLWantWriteError):
            client.send(last)


def nonReader(
    source: str, port: int, wrap: Callable[[socket.socket], socket.socket]
) -> socket.socket:
    """
    A connection from C{source} with a small receive buffer, wrapped by
    C{wrap} (TLS, or as it is).
    """
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.settimeout(TIMEOUT)
    client.bind((source, 0))
    client.connect(("127.0.0.1", port))
    return wrap(client)


def nonReadersCut(
    daemon: Any,
    port: int,
    wrap: Callable[[socket.socket], socket.socket],
    exchange: Callable[[], None],
) -> None:
    """
    Three clients from one address fill its C{--max-per-ip} 3 and never
    read: one floods lines, one floods then says C{exit}, one floods then
    sends a message too long.  Each is cut for not reading, within the
    write timeout and the idle timeout of its close, and then an honest
    client from that address (C{exchange}) is admitted.
    """
    clients = []
    for last in [b"", b"exit\n", b"x" * 2000]:
        clients.append(nonReader("127.0.0.5", port, wrap))
        pushUnread(clients[-1], b"flood\n" * 2000, last)
    durations = [
        float(
            daemon.waitFor(
                rf"127\.0\.0\.5:{client.getsockname()[1]} closed "
                r"\(write-timeout\) after ([\d.]+)s"
            ).group(1)
        )
        for client in clients
    ]
    # Pushing takes a moment; then the write timeout (1 s) and at most one
    # sweep's interval, or the idle timeout (2 s) after the close began.
    assert max(durations) < 6, durations
    exchange()
    for client in clients:
        client.close()


def test_nonReadersCut(spawnGreetd: Any) -> None:
    """
    Clients that never read their replies, open or closing, are cut, and
    their places under C{--max-per-ip} are free again.
    """
    daemon = spawnGreetd(
        "--idle-timeout", "2", "--write-timeout", "1", "--max-per-ip", "3",
        "--rate-per-ip", "0",
    )  # fmt: skip
    port = daemon.tcp[0][1]
    nonReadersCut(
        daemon,
        port,
        lambda client: client,
        lambda: honestExchange(port, source="127.0.0.5"),
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_shutdownUnderLoad(spawnGreetd: Any, sig: int) -> None:
    """
    SIGTERM during traffic: listening stops, every connection ends with
    whole replies only, even for clients that send without reading (greetd
    reads on, and discards, until they close), and the daemon exits well
    within the timeout.
    """
    daemon = spawnGreetd("--shutdown-timeout", "3", "--rate-per-ip", "0")
    port = daemon.tcp[0][1]
    clients = [connectFrom("127.0.0.1", port) for _ in range(10)]
    received = [b""] * len(clients)

    def pump(index: int) -> None:
        client = clients[index]
        try:
            while True:
                client.sendall(b"Michael\nTracy\nSarah\n" * 50)
                data = client.recv(65536)
                if not data:
                    # As a client does at the end of the stream.
                    client.close()
                    return
                received[index] += data
        except OSError:
            return

    threads = [threading.Thread(target=pump, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    status = daemon.stop(sig)
    elapsed = time.monotonic() - started
    for thread in threads:
        thread.join(TIMEOUT)
    # twistd re-raises the signal that stopped it once it has shut down, so
    # its status names the signal, which is how systemd expects a clean stop.
    assert status in (0, -sig)
    assert elapsed < 3 + 1.5
    replies = (b"Hello, Michael!\n", b"Hello, Tracy!\n", b"Hello, Sarah!\n")
    for data in received:
        assert data.startswith(b"Welcome")
        rest = data[7:]
        assert rest, "no replies before shutdown"
        assert rest.endswith(b"!\n"), rest[-40:]
        for line in rest.splitlines(keepends=True):
            assert line in replies, line
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    for client in clients:
        client.close()


def test_resetsAndGarbage(spawnGreetd: Any) -> None:
    """
    Connections reset mid-message and streams of garbage harm no one else.
    """
    daemon = spawnGreetd("--rate-per-ip", "0", "--max-length", "64")
    port = daemon.tcp[0][1]
    garbage = [os.urandom(size) for size in (1, 63, 64, 65, 1000, 70000)]
    for payload in garbage:
        with connectFrom("127.0.0.1", port) as client:
            client.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            client.sendall(payload)
        honestExchange(port)
    assert daemon.process.poll() is None


@pytest.mark.skipif(
    os.geteuid() != 0, reason="binding a source port below 1024 needs root"
)
def test_udpLowSourcePortIgnored(spawnGreetd: Any) -> None:
    daemon = spawnGreetd("--no-tcp")
    address = daemon.udp[0]
    with lowPortSocket() as low, udpFrom("127.0.0.2") as honest:
        low.sendto(b"loop", address)
        honest.sendto(b"honest", address)
        assert honest.recv(1024) == b"Hello, honest!"
        assert waiting(low) == 0


def test_udpRate(spawnGreetd: Any) -> None:
    """
    A source flooding datagrams gets at most its burst answered, while
    another source is answered.
    """
    daemon = spawnGreetd("--no-tcp", "--udp-rate", "5")
    address = daemon.udp[0]
    with udpFrom("127.0.0.1") as flooder, udpFrom("127.0.0.2") as honest:
        for _ in range(200):
            flooder.sendto(b"flood", address)
        honest.sendto(b"honest", address)
        assert honest.recv(1024) == b"Hello, honest!"
        assert 5 <= waiting(flooder) <= 7


def test_udpGlobalRate(spawnGreetd: Any) -> None:
    """
    However many sources share a flood, C{--udp-global-rate} bounds the
    replies in all.
    """
    daemon = spawnGreetd("--no-tcp", "--udp-rate", "0", "--udp-global-rate", "5")
    address = daemon.udp[0]
    sources = [udpFrom(f"127.0.0.{host}") for host in range(2, 12)]
    try:
        for _ in range(20):
            for source in sources:
                source.sendto(b"flood", address)
        with udpFrom("127.0.0.1") as probe:
            probe.sendto(b"probe", address)
            deadline = time.monotonic() + TIMEOUT
            answered = 0
            while time.monotonic() < deadline:
                answered += sum(waiting(source) for source in sources)
                if answered >= 5:
                    break
                time.sleep(0.01)
            time.sleep(0.2)
            answered += sum(waiting(source) for source in sources)
            assert 5 <= answered <= 6
            assert waiting(probe) <= 1
    finally:
        for source in sources:
            source.close()
