"""
Starting the real daemon: listeners of every kind, and clean failures.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import TIMEOUT, runTwistd
from tests.integration.helpers import exchange


def _ipv6Available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_portInUse(tmp_path: Path) -> None:
    """
    A port already taken ends the daemon with status 1 and one line naming
    the address and the reason, without a traceback.
    """
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        description = f"tcp:{port}:interface=127.0.0.1"
        result = runTwistd("--tcp", description, "--no-udp", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stdout.splitlines() if "Cannot listen" in line]
    assert len(errors) == 1
    assert (
        f"Cannot listen for TCP on {description}: Address already in use" in (errors[0])
    )


def test_udpPortInUse(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = runTwistd(
            "--udp", f"udp:{port}:interface=127.0.0.1", "--no-tcp", cwd=tmp_path
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "Cannot listen for UDP on" in result.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--reply", "no placeholder"], "--reply: reply template 'no placeholder'"),
        (["--framing", "words"], "--framing must be one of auto, line, raw"),
        (["--max-length", "-1"], "--max-length: -1 is less than 1"),
        (["--tcp", "tcp:notaport"], "--tcp 'tcp:notaport'"),
        (["--udp", "udp:1:interface=nohost"], "not an IPv4 or IPv6 address"),
        (["--tcp", "tcp:99999"], "--tcp 'tcp:99999': port 99999 is out of range"),
        (["--metrics", "tcp:99999"], "--metrics 'tcp:99999': port 99999 is out of"),
        (
            ["--tcp", "unix:/nonexistent/dir/sock"],
            "--tcp 'unix:/nonexistent/dir/sock': directory '/nonexistent/dir' does",
        ),
        (["--welcome"], "option --welcome requires argument"),
    ],
)
def test_badOption(tmp_path: Path, argv: list[str], message: str) -> None:
    """
    A bad value is a usage error: a short message, status 1, no traceback.
    """
    result = runTwistd(*argv, cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("twistd greetd: ")
    assert message in line


@pytest.mark.skipif(not _ipv6Available(), reason="no IPv6 loopback here")
def test_ipv6(spawnGreetd: Any) -> None:
    daemon = spawnGreetd(
        "--tcp", r"tcp6:0:interface=\:\:1", "--udp", r"udp:0:interface=\:\:1"
    )
    [(host, tcpPort)] = daemon.tcp
    assert host == "::1"
    assert exchange(socket.AF_INET6, ("::1", tcpPort), b"v6") == b"WelcomeHello, v6!"
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as client:
        client.settimeout(TIMEOUT)
        client.sendto(b"v6", ("::1", daemon.udp[0][1]))
        assert client.recv(1024) == b"Hello, v6!"


def test_unixSocketAndSeveralListeners(spawnGreetd: Any, tmp_path: Path) -> None:
    path = tmp_path / "greetd.sock"
    daemon = spawnGreetd("--tcp", f"unix:{path}", "--tcp", "tcp:0:interface=127.0.0.1")
    assert exchange(socket.AF_UNIX, str(path), b"unix") == b"WelcomeHello, unix!"
    [(_, port)] = daemon.tcp
    assert (
        exchange(socket.AF_INET, ("127.0.0.1", port), b"tcp") == b"WelcomeHello, tcp!"
    )


def test_udpLimits(spawnGreetd: Any) -> None:
    """
    A datagram over C{--max-length} gets no reply; an empty one gets one;
    the daemon keeps answering.
    """
    daemon = spawnGreetd("--max-length", "16", "--no-tcp")
    address = daemon.udp[0]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(TIMEOUT)
        client.sendto(b"x" * 17, address)
        client.sendto(b"", address)
        assert client.recv(1024) == b"Hello, !"
        client.sendto(b"y" * 16, address)
        assert client.recv(1024) == b"Hello, " + b"y" * 16 + b"!"
