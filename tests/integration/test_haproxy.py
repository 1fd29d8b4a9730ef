"""
greetd behind a real HAProxy speaking the PROXY protocol (C{send-proxy}):
limits, access control, logs and metrics see each client's own address.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from greetd.testing import TIMEOUT
from tests.integration.conftest import requireTool
from tests.integration.test_hardening import connectFrom, receiveUntilClosed
from tests.integration.test_metrics import scrape, tcp

CONFIG = """\
global
    maxconn 256
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend greet
    bind 127.0.0.1:{frontend}
    default_backend greetd
backend greetd
{servers}
"""


def freePort() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def startHAProxy(
    where: Path, backends: list[int], extra: str = ""
) -> tuple[subprocess.Popen[bytes], int]:
    """
    Run haproxy in the foreground in front of C{backends}; return it and
    its frontend port once that accepts connections.
    """
    frontend = freePort()
    servers = "\n".join(
        f"    server g{index} 127.0.0.1:{port} send-proxy {extra}"
        for index, port in enumerate(backends)
    )
    config = where / "haproxy.cfg"
    config.write_text(CONFIG.format(frontend=frontend, servers=servers))
    process = subprocess.Popen(
        [requireTool("haproxy"), "-db", "-f", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", frontend), timeout=1).close()
            return process, frontend
        except OSError:
            assert process.poll() is None, process.communicate()[0]
            time.sleep(0.05)
    process.kill()
    raise AssertionError("haproxy did not start")


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
    )  # fmt: skip
    frontend = haproxy([daemon.tcp[0][1]])
    client = connectFrom("127.0.0.2", frontend)
    assert client.recv(7) == b"Welcome"
    client.sendall(b"Michael\n")
    assert client.recv(100) == b"Hello, Michael!\n"
    opened = daemon.waitFor(r"Connection from 127\.0\.0\.2:(\d+) opened")
    assert int(opened.group(1)) == client.getsockname()[1]
    # The per-address limit counts 127.0.0.2, not the balancer's address...
    with connectFrom("127.0.0.2", frontend) as second:
        assert receiveUntilClosed(second) == b"Error: too many connections\r\n"
    # ...so another client is served meanwhile,
    with connectFrom("127.0.0.4", frontend) as other:
        assert other.recv(7) == b"Welcome"
    # and access control sees 127.0.0.3.
    with connectFrom("127.0.0.3", frontend) as denied:
        assert receiveUntilClosed(denied) == b""
    client.sendall(b"exit\n")
    assert receiveUntilClosed(client) == b""
    client.close()
    daemon.waitFor(r"Refused a connection from 127\.0\.0\.2:\d+: max-per-ip")
    daemon.waitFor(r"Refused a connection from 127\.0\.0\.3:\d+: access")
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
