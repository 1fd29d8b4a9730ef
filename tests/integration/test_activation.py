"""
Socket activation for real: C{systemd-socket-activate} binds the socket,
passes it to C{twistd greetd} as systemd does (C{LISTEN_FDS},
C{LISTEN_PID}, C{LISTEN_FDNAMES}) and starts it on the first connection or
datagram, which greetd then answers.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from tests.integration.conftest import TIMEOUT, requireTool, runTwistd
from tests.integration.helpers import exchange


def freePort(kind: socket.SocketKind) -> int:
    """
    A loopback port free for C{kind} right now: the kernel's pick for port 0.
    """
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def activator(port: int, name: str, *options: str) -> tuple[str, ...]:
    """
    C{systemd-socket-activate} listening on 127.0.0.1:C{port} and naming the
    socket C{name}, as a socket unit's C{FileDescriptorName=} does.
    """
    tool = requireTool("systemd-socket-activate")
    return (tool, *options, "-l", f"127.0.0.1:{port}", f"--fdname={name}", "--")


def test_tcpByName(spawnGreetd: Any) -> None:
    """
    C{--tcp systemd:domain=INET:name=greetd-tcp} serves the inherited socket;
    the connection that caused the start is answered.
    """
    port = freePort(socket.SOCK_STREAM)
    daemon = spawnGreetd(
        "--tcp", "systemd:domain=INET:name=greetd-tcp", "--no-udp",
        wrapper=activator(port, "greetd-tcp"), listeners=0,
    )  # fmt: skip
    daemon.waitFor(rf"Listening on 127\.0\.0\.1:{port}")
    reply = exchange(socket.AF_INET, ("127.0.0.1", port), b"Michael")
    assert reply == b"WelcomeHello, Michael!"
    daemon.waitForListeners(1)
    assert daemon.tcp == [("127.0.0.1", port)]


def activatedUDP(spawnGreetd: Any, description: str, name: str) -> Any:
    """
    Start greetd serving C{--udp description} under C{systemd-socket-activate
    --datagram}, and return the daemon and the port, not yet activated.
    """
    port = freePort(socket.SOCK_DGRAM)
    daemon = spawnGreetd(
        "--udp", description, "--no-tcp",
        wrapper=activator(port, name, "--datagram"), listeners=0,
    )  # fmt: skip
    daemon.waitFor(rf"Listening on 127\.0\.0\.1:{port}")
    return daemon, port


def test_udpByName(spawnGreetd: Any) -> None:
    """
    C{--udp systemd:domain=INET:name=greetd-udp} adopts the inherited
    datagram socket; the datagram that caused the start is answered, and
    the next one too.
    """
    daemon, port = activatedUDP(
        spawnGreetd, "systemd:domain=INET:name=greetd-udp", "greetd-udp"
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(TIMEOUT)
        for message in [b"Sarah", b"Tracy"]:
            client.sendto(message, ("127.0.0.1", port))
            reply, source = client.recvfrom(1024)
            assert (reply, source) == (b"Hello, %s!" % message, ("127.0.0.1", port))
    daemon.waitForListeners(1)
    assert daemon.udp == [("127.0.0.1", port)]


def test_udpByIndex(spawnGreetd: Any) -> None:
    _, port = activatedUDP(spawnGreetd, "systemd:domain=INET:index=0", "any")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(TIMEOUT)
        client.sendto(b"", ("127.0.0.1", port))
        assert client.recv(1024) == b"Hello, !"


def test_missingSocket(tmp_path: Path) -> None:
    """
    Naming a socket that was not inherited is a one-line usage error saying
    what was, for either service.
    """
    for option, other in [("--udp", "--no-tcp"), ("--tcp", "--no-udp")]:
        result = runTwistd(
            option, "systemd:domain=INET:name=greetd-x", other, cwd=tmp_path
        )
        assert result.returncode == 1, result
        assert "Traceback" not in result.stdout + result.stderr
        assert (
            f"{option} 'systemd:domain=INET:name=greetd-x': no inherited socket "
            "is named 'greetd-x' (LISTEN_FDNAMES names: none)"
        ) in result.stderr + result.stdout
