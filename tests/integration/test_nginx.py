"""
The UDP scale-out recipe: a real nginx running C{contrib/nginx/twisted-greetd-udp.conf}
(its ports replaced) in front of real daemons listening with
C{haproxy:udp:}.  Clients get their replies through it; greetd's limits,
access control and logs see each client's own address; and one daemon
killed under load costs clients that resend (C{greet --udp}) nothing once
nginx has taken it out.
"""

from __future__ import annotations

import glob
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from greetd.testing import TIMEOUT, Daemon
from tests.integration.conftest import contribWithPorts, requireTool
from tests.integration.helpers import (
    NAMES,
    SEED_UDP_OUTPUT,
    Load,
    Run,
    greet,
    pacedFlood,
    refusalAnswersBound,
    runSeedClient,
    scrape,
    udp,
    udpFrom,
)

#: The recipe, run here with its ports replaced.
CONTRIB = Path(__file__).parents[2] / "contrib" / "nginx" / "twisted-greetd-udp.conf"

#: A daemon behind the recipe: UDP only, reading nginx's PROXY header.
PROXIED = ("--no-tcp", "--udp", "haproxy:udp:0:interface=127.0.0.1")

#: Where Debian's libnginx-mod-stream puts the stream module.
STREAM_MODULES = "/usr/lib/nginx/modules/ngx_stream_module.so"

#: The main context around the recipe: nginx in the foreground, one
#: process, everything it writes in the test's directory.
MAIN = """\
daemon off;
master_process off;
pid {where}/nginx.pid;
error_log {where}/error.log info;
{module}
events {{ worker_connections 1024; }}
include {where}/twisted-greetd-udp.conf;
"""

#: What nginx logs when it takes a server out.
MARKED_DOWN = "upstream server temporarily disabled"


def freeUDPPort() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def recipe(frontend: int, backends: list[int]) -> str:
    """
    The shipped recipe, its example ports replaced (L{contribWithPorts}).
    """
    return contribWithPorts(CONTRIB, r"listen|server", frontend, backends)


class Nginx:
    """
    nginx running the recipe in the foreground, and its error log.
    """

    def __init__(self, where: Path, backends: list[int]) -> None:
        nginx = requireTool("nginx")
        module = glob.glob(STREAM_MODULES)
        if not module and "--with-stream " not in self._configuration(nginx):
            pytest.skip("nginx has no stream module (make test installs it)")
        self.frontend = freeUDPPort()
        self.errorLog = where / "error.log"
        (where / "twisted-greetd-udp.conf").write_text(recipe(self.frontend, backends))
        main = where / "nginx.conf"
        loadModule = f"load_module {module[0]};" if module else ""
        main.write_text(MAIN.format(where=where, module=loadModule))
        self.process = subprocess.Popen(
            [nginx, "-p", f"{where}/", "-c", str(main), "-e", str(self.errorLog)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._waitUntilBound()

    @staticmethod
    def _configuration(nginx: str) -> str:
        return subprocess.run(
            [nginx, "-V"], capture_output=True, text=True, timeout=TIMEOUT
        ).stderr

    def _waitUntilBound(self) -> None:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.stop()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.bind(("127.0.0.1", self.frontend))
                except OSError:
                    return
            time.sleep(0.05)
        raise AssertionError(f"nginx did not start: {self.stop()}")

    def log(self) -> str:
        return self.errorLog.read_text() if self.errorLog.exists() else ""

    def waitForLog(self, text: str) -> float:
        """
        Wait until the error log says C{text}; return when it was seen.
        """
        deadline = time.monotonic() + TIMEOUT
        while text not in self.log():
            assert time.monotonic() < deadline, f"nginx never said {text!r}"
            time.sleep(0.02)
        return time.monotonic()

    def stop(self) -> str:
        """
        Stop nginx; return what it printed and logged.
        """
        if self.process.poll() is None:
            self.process.terminate()
        output = self.process.communicate(timeout=TIMEOUT)[0].decode()
        return output + self.log()


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Any]:
    running: list[Nginx] = []

    def start(backends: list[int]) -> Nginx:
        server = Nginx(tmp_path, backends)
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()


def exchange(client: socket.socket, port: int, name: bytes) -> bytes:
    client.sendto(name, ("127.0.0.1", port))
    return client.recv(2048)


def udpMessages(daemon: Daemon) -> float:
    return scrape(daemon.metrics[0])[udp("greetd_messages_total")]


def test_clientsThroughNginx(spawnGreetd: Any, nginx: Any) -> None:
    """
    The seed's UDP client and C{greet --udp} get their replies through the
    recipe, from both daemons.
    """
    daemons = [
        spawnGreetd(*PROXIED, "--metrics", "tcp:0:interface=127.0.0.1")
        for _ in range(2)
    ]
    front = nginx([daemon.udp[0][1] for daemon in daemons])
    assert runSeedClient("udp_client", front.frontend) == SEED_UDP_OUTPUT
    run = greet("--udp", "-p", str(front.frontend), *NAMES)
    assert (run.status, run.stdout, run.stderr) == (0, SEED_UDP_OUTPUT, "")
    # Round robin, one datagram at a time: 6 datagrams, 3 to each.
    assert [udpMessages(daemon) for daemon in daemons] == [3, 3]


def test_clientAddressThroughNginx(spawnGreetd: Any, nginx: Any) -> None:
    """
    Behind nginx's PROXY header, the per-source rate, access control and
    logs see each client's own address and port; what greetd refuses is
    answered with an empty datagram, so nginx counts no failure.  A datagram
    sent to the daemon directly, without a header, gets nothing.
    """
    daemon = spawnGreetd(
        *PROXIED, "--udp-rate", "1", "--deny", "127.0.0.3",
        "--metrics", "tcp:0:interface=127.0.0.1", "--log-level", "debug",
    )  # fmt: skip
    port = daemon.udp[0][1]
    front = nginx([port, port])
    with udpFrom("127.0.0.2") as limited, udpFrom("127.0.0.4") as other:
        assert exchange(limited, front.frontend, b"a") == b"Hello, a!"
        # 127.0.0.2 has spent its burst of 1; 127.0.0.4 has not.
        assert exchange(limited, front.frontend, b"b") == b""
        assert exchange(other, front.frontend, b"c") == b"Hello, c!"
        limitedPort = limited.getsockname()[1]
    with udpFrom("127.0.0.3") as denied:
        assert exchange(denied, front.frontend, b"d") == b""
    with udpFrom("127.0.0.5") as direct:
        direct.settimeout(0.5)
        with pytest.raises(socket.timeout):
            exchange(direct, port, b"e")
    via = r"via 127\.0\.0\.1:\d+"
    daemon.waitFor(rf"Dropped a datagram from 127\.0\.0\.2:{limitedPort} {via}: rate")
    daemon.waitFor(rf"Dropped a datagram from 127\.0\.0\.3:\d+ {via}: access")
    daemon.waitFor(r"Dropped a datagram from 127\.0\.0\.5:\d+: proxy")
    metrics = scrape(daemon.metrics[0])
    for reason in ("rate", "access", "proxy"):
        assert metrics[udp("greetd_dropped_total", reason)] == 1, reason
    # Replies: a and c.
    assert metrics[udp("greetd_messages_total")] == 2
    log = front.log()
    assert MARKED_DOWN not in log and "timed out" not in log, log


def test_workersThroughNginx(spawnGreetd: Any, nginx: Any) -> None:
    """
    C{--workers 2} behind nginx: each worker reads the header, and applies
    its own per-source rate to the client's address.
    """
    daemon = spawnGreetd(
        "--workers", "2", *PROXIED, "--udp-rate", "1", "--log-level", "debug"
    )  # fmt: skip
    serving = r"greetd\.daemon\.listening\.ListeningService#info"
    daemon.waitFor(rf"\[worker 2 pid \d+ {serving}\] Serving UDP")
    port = daemon.udp[0][1]
    front = nginx([port, port])
    with udpFrom("127.0.0.2") as client:
        received = [exchange(client, front.frontend, b"n%d" % n) for n in range(3)]
        clientPort = client.getsockname()[1]
    # Two workers, a burst of 1 each: at most 2 replies; the rest empty.
    assert set(received) - {b"Hello, n0!", b"Hello, n1!", b"Hello, n2!"} == {b""}
    assert received[0] == b"Hello, n0!"
    dropped = (
        rf"Dropped a datagram from 127\.0\.0\.2:{clientPort} via 127\.0\.0\.1:\d+: rate"
    )
    protocol = r"greetd\.protocols\.datagram\.ReplyProtocol"
    daemon.waitFor(rf"\[worker \d pid \d+ {protocol}#debug\] {dropped}")


def test_greetRetriesPastDeadServer(spawnGreetd: Any, nginx: Any) -> None:
    """
    With one of two daemons dead, nginx answers the datagrams it sends
    there with an empty datagram; C{greet --udp --retries 3} takes none for
    a reply and gets its own.  With both dead it fails, saying so (nginx
    answers empty until it has taken the second out too, then nothing).
    """
    daemons = [spawnGreetd(*PROXIED) for _ in range(2)]
    front = nginx([daemon.udp[0][1] for daemon in daemons])
    daemons[0].process.kill()
    daemons[0].process.wait(TIMEOUT)
    port = str(front.frontend)
    for _ in range(3):
        run = greet("--udp", "--retries", "3", "--timeout", "1", "-p", port, "Tracy")
        assert (run.status, run.stdout, run.stderr) == (0, "Hello, Tracy!\n", "")
    front.waitForLog(MARKED_DOWN)
    daemons[1].process.kill()
    daemons[1].process.wait(TIMEOUT)
    run = greet("--udp", "--retries", "2", "--timeout", "0.5", "-p", port, "Tracy")
    assert run.stdout == ""
    assert re.fullmatch(
        rf"greet: 127\.0\.0\.1:{port}: no reply to 'Tracy' after 3 tries"
        r" \(\d datagrams? that (was|were) not the reply\);"
        r" is a greetd UDP service at that address\?\n",
        run.stderr,
    ), run.stderr
    assert run.status == 1


def greetRun(port: int, name: bytes, source: str) -> None:
    """
    C{greet --udp --retries 3} on 10 names: a client that resends.
    """
    names = [f"{source}-{n}" for n in range(10)]
    args = ("--udp", "--retries", "3", "--timeout", "1", "-p", str(port))
    run = Run((*args, *names), b"")
    expected = "".join(f"Hello, {name}!\n" for name in names)
    assert (run.status, run.stdout) == (0, expected), run.stderr


def datagramOnce(port: int, name: bytes, source: str) -> None:
    """
    One datagram from a new port, and at most 1 s for its reply: a client
    that does not resend, pausing 10 ms after each (at most 100 a second,
    well within the daemons' global rate).  An empty datagram fails with
    L{AssertionError}, silence with L{socket.timeout}.
    """
    with udpFrom(source) as client:
        client.settimeout(1)
        name = f"{source}-{time.monotonic()}".encode()
        try:
            received = exchange(client, port, name)
        finally:
            time.sleep(0.01)
    assert received, "empty"
    assert received == b"Hello, %s!" % name, received


def failures(load: Load, since: float, kind: type[BaseException]) -> int:
    return sum(1 for error in load.failuresSince(since) if isinstance(error, kind))


def test_nginxRecipe(spawnGreetd: Any, nginx: Any) -> None:
    """
    Two daemons behind a real nginx running C{contrib/nginx/twisted-greetd-udp.conf}:
    kill one while C{greet --udp} clients and a client without resends run
    in a loop.  nginx takes it out after its second failure (ICMP port
    unreachable, answered to the client with an empty datagram), and no
    C{greet} run begun after that fails.
    """
    daemons = [
        spawnGreetd(
            *PROXIED, "--udp-rate", "0", "--metrics", "tcp:0:interface=127.0.0.1"
        )
        for _ in range(2)
    ]
    front = nginx([daemon.udp[0][1] for daemon in daemons])
    greets = Load(front.frontend, clients=3, exchange=greetRun)
    raw = Load(front.frontend, clients=1, exchange=datagramOnce)
    with greets, raw:
        greets.waitForExchanges(3)
        # Both daemons served: nginx balanced.
        assert all(udpMessages(daemon) > 0 for daemon in daemons)
        killedAt = time.monotonic()
        daemons[0].process.kill()
        markedDownAt = front.waitForLog(MARKED_DOWN)
        greets.waitForExchanges(6, since=markedDownAt)
    output = front.stop()
    assert greets.failuresSince(markedDownAt) == []
    # Only the killed daemon was taken out (a warning for each failure that
    # came once it was, so perhaps more than one).
    markedDown = {
        line.rsplit('upstream: "', 1)[1].split('"')[0]
        for line in output.splitlines()
        if MARKED_DOWN in line
    }
    assert markedDown == {f"127.0.0.1:{daemons[0].udp[0][1]}"}, output
    print(
        f"nginx took the killed daemon out {markedDownAt - killedAt:.3f}s after "
        "the kill (seen in its log, polled every 20 ms); greet runs: "
        f"{greets.completedSince(0)}, failed: {len(greets.failuresSince(0))}, "
        f"begun after the mark-down: {greets.completedSince(markedDownAt)}; "
        f"the client without resends: {raw.completedSince(0)} datagrams, "
        f"{failures(raw, 0, AssertionError)} answered empty "
        f"({failures(raw, killedAt, AssertionError)} after the kill, "
        f"{failures(raw, markedDownAt, AssertionError)} after the mark-down), "
        f"{failures(raw, 0, OSError)} unanswered "
        f"({failures(raw, killedAt, OSError)} after the kill)"
    )


def test_refusalAnswersBoundedThroughNginx(spawnGreetd: Any, nginx: Any) -> None:
    """
    One client flooding through nginx past C{--udp-rate 10} with
    C{--udp-global-rate 100}: greetd answers a bounded number of its
    datagrams, replies and empty answers to refusals together, each from a
    bucket of its own, so the client (or a victim whose address it forged)
    gets a bounded number back, where every datagram used to be answered.
    """
    daemon = spawnGreetd(
        *PROXIED, "--udp-rate", "10", "--udp-global-rate", "100",
        "--metrics", "tcp:0:interface=127.0.0.1",
    )  # fmt: skip
    port = daemon.udp[0][1]
    front = nginx([port, port])
    sent = 600
    with udpFrom("127.0.0.2") as flooder:
        target = ("127.0.0.1", front.frontend)
        answers, seconds = pacedFlood(flooder, target, b"x", sent, settle=1.5)
    metrics = scrape(daemon.metrics[0])
    dropped = metrics[udp("greetd_dropped_total", "rate")]
    bound = refusalAnswersBound(seconds)
    print(
        f"{answers} answers to {sent} datagrams in {seconds:.2f}s (bound {bound:.0f})"
    )
    assert dropped >= sent / 2
    assert answers <= bound
