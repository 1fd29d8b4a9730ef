"""
Abuse against the real daemon: each attack is bounded, and an honest
client is served while it goes on.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from typing import Any

import pytest

from greetd.protocols.admission import REFUSAL_LINES
from tests.integration.conftest import TIMEOUT
from tests.integration.helpers import (
    FLOOD,
    connectFrom,
    cpuBurner,
    floodWhileServing,
    honestExchange,
    nonReadersCut,
    receiveUntilClosed,
    rss,
    udpFrom,
    waiting,
    warmUp,
)


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
    source = slow.getsockname()[1]
    started = time.monotonic()
    # It trickles for 6 s at most, which a daemon whose idle clock a byte
    # reset would let it do.
    while time.monotonic() - started < 6:
        try:
            slow.sendall(b"x")
        except OSError:
            break
        talker.sendall(b"t\n")
        assert talker.recv(1024) == b"Hello, t!\n"
        time.sleep(0.2)
    assert receiveUntilClosed(slow) == b"Error: idle timeout\n"
    # The daemon's own figure, from its accept: the idle timeout's second
    # at least, and well short of the trickle's end; not the test's clock,
    # which a busy machine stretches.
    closed = daemon.waitFor(
        rf"127\.0\.0\.1:{source} closed \(idle-timeout\) after ([\d.]+)s"
    )
    assert 1 <= float(closed.group(1)) < 5, closed.group(0)
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
