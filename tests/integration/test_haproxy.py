"""
greetd behind a real HAProxy speaking the PROXY protocol (C{send-proxy}):
limits, access control, logs and metrics see each client's own address;
and the scale-out recipe, two daemons behind C{contrib/haproxy/twisted-greetd.cfg},
survives losing one under load.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from greetd.testing import TIMEOUT
from tests.integration.conftest import contribWithPorts
from tests.integration.helpers import (
    UNLIMITED,
    Load,
    connectFrom,
    freePort,
    receiveUntilClosed,
    runHAProxy,
    scrape,
    startHAProxy,
    tcp,
)

#: The scale-out recipe, run here with its ports replaced.
CONTRIB = Path(__file__).parents[2] / "contrib" / "haproxy" / "twisted-greetd.cfg"

#: A listener behind HAProxy.
PROXIED = "haproxy:tcp:0:interface=127.0.0.1"


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[Any]:
    processes: list[subprocess.Popen[bytes]] = []

    def start(backends: list[int], extra: str = "") -> int:
        process, frontend = startHAProxy(tmp_path, backends, extra)
        processes.append(process)
        return frontend

    yield start
    for process in processes:
        process.terminate()
        process.wait(TIMEOUT)


def test_clientAddressThroughHAProxy(spawnGreetd: Any, haproxy: Any) -> None:
    daemon = spawnGreetd(
        "--tcp", "haproxy:tcp:0:interface=127.0.0.1", "--no-udp",
        "--metrics", "tcp:0:interface=127.0.0.1",
        "--max-per-ip", "1", "--rate-per-ip", "0", "--deny", "127.0.0.3",
        "--log-level", "debug",
    )  # fmt: skip
    frontend = haproxy([daemon.tcp[0][1]])
    client = connectFrom("127.0.0.2", frontend)
    assert client.recv(7) == b"Welcome"
    client.sendall(b"Michael\n")
    assert client.recv(100) == b"Hello, Michael!\n"
    # Logs name the client and the balancer it came through.
    opened = daemon.waitFor(
        r"Connection from 127\.0\.0\.2:(\d+) via 127\.0\.0\.1:\d+ opened"
    )
    assert int(opened.group(1)) == client.getsockname()[1]
    # The per-address limit counts 127.0.0.2, not the balancer's address...
    with connectFrom("127.0.0.2", frontend) as second:
        assert receiveUntilClosed(second) == (
            b"Error: too many connections from your address\r\n"
        )
    # ...so another client is served meanwhile,
    with connectFrom("127.0.0.4", frontend) as other:
        assert other.recv(7) == b"Welcome"
    # and access control sees 127.0.0.3.
    with connectFrom("127.0.0.3", frontend) as denied:
        assert receiveUntilClosed(denied) == b""
    client.sendall(b"exit\n")
    assert receiveUntilClosed(client) == b""
    client.close()
    via = r":\d+ via 127\.0\.0\.1:\d+"
    daemon.waitFor(rf"Refused a connection from 127\.0\.0\.2{via}: max-per-ip")
    daemon.waitFor(rf"Refused a connection from 127\.0\.0\.3{via}: access")
    metrics = scrape(daemon.metrics[0])
    assert metrics[tcp("greetd_dropped_total", "max-per-ip")] == 1
    assert metrics[tcp("greetd_dropped_total", "access")] == 1
    # 127.0.0.2 and 127.0.0.4, and the probe that saw haproxy was up.
    assert metrics[("greetd_connections_total", ())] == 3
    assert metrics[tcp("greetd_messages_total")] == 1


def test_headerlessClientRefused(spawnGreetd: Any) -> None:
    """
    A client that reaches a PROXY listener directly, without a header, is
    closed without a banner.
    """
    daemon = spawnGreetd("--tcp", "haproxy:tcp:0:interface=127.0.0.1", "--no-udp")
    with connectFrom("127.0.0.2", daemon.tcp[0][1]) as client:
        client.sendall(b"Michael\r\n")
        assert receiveUntilClosed(client) == b""


def recipe(frontend: int, backends: list[int]) -> str:
    """
    The shipped recipe, its example ports replaced (L{contribWithPorts}).
    """
    return contribWithPorts(CONTRIB, r"bind|server \S+", frontend, backends)


def test_recipeHealthChecks(spawnGreetd: Any, tmp_path: Path) -> None:
    """
    The recipe's health checks (every 200 ms, with a PROXY v2 LOCAL header)
    are greetings like any other, but counted as health checks, not
    connections, and logged at debug level only.
    """
    daemons = [
        spawnGreetd(
            "--tcp", "haproxy:tcp:0:interface=127.0.0.1", "--no-udp",
            "--metrics", "tcp:0:interface=127.0.0.1",
        )
        for _ in range(2)
    ]  # fmt: skip
    frontend = freePort()
    haproxy = runHAProxy(
        tmp_path, recipe(frontend, [d.tcp[0][1] for d in daemons]), frontend
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while scrape(daemons[0].metrics[0])[("greetd_health_checks_total", ())] < 5:
            assert time.monotonic() < deadline, "no health checks counted"
            time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", frontend), timeout=TIMEOUT) as c:
            assert c.recv(7) == b"Welcome"
            c.sendall(b"exit\n")
            assert c.recv(10) == b""
    finally:
        haproxy.terminate()
        output = haproxy.communicate(timeout=TIMEOUT)[0].decode()
    assert "is DOWN" not in output, output
    # The client, and the probe that saw HAProxy start, are the only
    # connections counted: not the checks.
    totals = [scrape(d.metrics[0])[("greetd_connections_total", ())] for d in daemons]
    assert 1 <= sum(totals) <= 2, totals
    for daemon, total in zip(daemons, totals):
        daemon.stop()
        lines = "\n".join(daemon.lines)
        assert "Health check" not in lines
        assert lines.count("Connection from") == total


class Output(threading.Thread):
    """
    Reads what C{process} prints (HAProxy's notices, as they come), so
    that a test can wait for one.

    @ivar lines: Every line read so far.
    """

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        super().__init__(daemon=True)
        assert process.stdout is not None
        self._stream = process.stdout
        self.lines: list[str] = []
        self.start()

    def run(self) -> None:
        for line in self._stream:
            self.lines.append(line.decode("utf-8", "replace"))

    def waitFor(self, text: str) -> None:
        """
        Wait until a line holding C{text} has been printed, for at most
        L{TIMEOUT} seconds.
        """
        deadline = time.monotonic() + TIMEOUT
        while not any(text in line for line in list(self.lines)):
            assert time.monotonic() < deadline, f"no {text!r}:\n{self.text()}"
            time.sleep(0.01)

    def text(self) -> str:
        return "".join(self.lines)


def test_haproxyRecipe(spawnGreetd: Any, tmp_path: Path) -> None:
    """
    Two daemons behind a real HAProxy running C{contrib/haproxy/twisted-greetd.cfg}:
    kill one under load, and once the health checks have marked it down
    (2 checks 200 ms apart; HAProxy says so) every client is served by the
    other.  Connects refused meanwhile are retried on the other by
    C{option redispatch}.
    """
    daemons = [
        spawnGreetd(
            "--tcp", "haproxy:tcp:0:interface=127.0.0.1", "--no-udp", *UNLIMITED
        )
        for _ in range(2)
    ]
    frontend = freePort()
    text = recipe(frontend, [daemon.tcp[0][1] for daemon in daemons])
    haproxy = runHAProxy(tmp_path, text, frontend)
    output = Output(haproxy)
    try:
        with Load(frontend) as load:
            load.waitForExchanges(200)
            killedAt = time.monotonic()
            daemons[0].process.kill()
            # Waited for, not assumed after a fixed time: on a busy machine
            # HAProxy's checks may come late.
            output.waitFor("greetd/greetd1 is DOWN")
            markedDownBy = time.monotonic()
            load.waitForExchanges(300, since=markedDownBy)
    finally:
        haproxy.terminate()
        haproxy.wait(TIMEOUT)
        output.join(TIMEOUT)
    assert load.failuresSince(markedDownBy) == []
    printed = output.text()
    assert "greetd/greetd2 is DOWN" not in printed, printed
    # Without the kill both daemons had clients: the balancer balanced.
    for daemon in daemons:
        daemon.waitFor(r"Connection from 127\.0\.0\.1\d:\d+ via \S+ closed")
    failedInWindow = len(load.failuresSince(killedAt))
    print(f"failed between the kill and the mark-down: {failedInWindow}")


def proxiedClient(port: int, header: bytes) -> socket.socket:
    """
    A connection to a PROXY listener that starts with C{header}, as a
    balancer's would.
    """
    client = connectFrom("127.0.0.1", port)
    client.sendall(header)
    return client


@pytest.mark.parametrize("prefix", [None, "128"])
def test_ipv6PrefixThroughHeaders(spawnGreetd: Any, prefix: str | None) -> None:
    """
    PROXY headers naming many addresses of one IPv6 /64: by default they
    are one source for the per-address limit, while the log names each
    address; another /64 is another source; C{--ipv6-prefix 128} keys each
    address apart.
    """
    daemon = spawnGreetd(
        "--tcp", PROXIED, "--no-udp", "--max-per-ip", "2", "--rate-per-ip", "0",
        *(() if prefix is None else ("--ipv6-prefix", prefix)),
    )  # fmt: skip
    port = daemon.tcp[0][1]
    clients = []
    replies = []
    for host in range(1, 9):
        header = b"PROXY TCP6 2001:db8:1:2::%x ::1 5555 9999\r\n" % (host * 0x1111)
        client = proxiedClient(port, header)
        clients.append(client)
        replies.append(client.recv(100))
    other = proxiedClient(port, b"PROXY TCP6 2001:db8:1:3::1 ::1 5555 9999\r\n")
    assert other.recv(7) == b"Welcome"
    refusal = b"Error: too many connections from your address\r\n"
    if prefix is None:
        assert replies == [b"Welcome"] * 2 + [refusal] * 6
        daemon.waitFor(r"Refused a connection from \[2001:db8:1:2::3333\]:5555")
    else:
        assert replies == [b"Welcome"] * 8
    for client in [*clients, other]:
        client.close()
    # The log names each address, not the prefix.
    daemon.waitFor(r"Connection from \[2001:db8:1:2::2222\]:5555 via \S+ closed")


#: Headers that are not headers, and what the log says of each.
HOSTILE = [
    (b"PROXY TCP4 abc 127.0.0.1 1 2\r\n", "bad source address"),
    (b"PROXY TCP4 \xff\xfe\xfd 127.0.0.1 1 2\r\n", "bad source address"),
    (b"PROXY TCP4 1.2.3 127.0.0.1 1 2\r\n", "bad source address"),
    (b"PROXY TCP4 1.2.3.4 127.0.0.1 99999 2\r\n", "bad port"),
    (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "bad source address"),
    (b"PROXY TCP4 1.2.3.4 127.0.0.1 1 2\x1b[2J\r\n", "bad port"),
    (b"PROXY " + b"A" * 200, "v1 header too long"),
    (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x04abcd", "v2 addresses truncated"),
    (b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x00", "v2 version not 2"),
]


def test_hostileHeadersAreQuiet(spawnGreetd: Any) -> None:
    """
    Malformed PROXY headers each drop their connection without a banner;
    the JSON log has one warning for them all (one source, throttled), no
    traceback and nothing critical, with the reason in C{proxyError}; the
    metrics count them as C{proxy-header}; an honest client is served.
    """
    daemon = spawnGreetd(
        "--tcp", PROXIED, "--no-udp", "--metrics", "tcp:0:interface=127.0.0.1",
        twistdArgs=("--logger", "greetd.ops.log.jsonLogger"),
    )  # fmt: skip
    port = daemon.tcp[0][1]
    for header, _ in HOSTILE:
        with proxiedClient(port, header) as client:
            assert receiveUntilClosed(client) == b"", header
    with proxiedClient(port, b"PROXY TCP4 192.0.2.7 127.0.0.1 1 2\r\n") as honest:
        assert honest.recv(7) == b"Welcome"
    metrics = scrape(daemon.metrics[0])
    assert metrics[tcp("greetd_dropped_total", "proxy-header")] == len(HOSTILE)
    daemon.stop()
    records = [json.loads(line) for line in daemon.lines]
    [warning] = [r for r in records if r.get("reason") == "proxy-header"]
    assert warning["level"] == "warn"
    assert warning["greetdEvent"] == "connection.refused"
    assert warning["proxyError"] == HOSTILE[0][1]
    assert warning["peerHost"] == "127.0.0.1"
    assert not [r for r in records if "failure" in r or r["level"] == "critical"]
    assert "Traceback" not in daemon.output
