"""
The reactor the real daemon runs on: greetd's own unless twistd's
C{--reactor} chose one, and a pool's workers on their parent's.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from greetd.testing import TWISTD
from tests.integration.conftest import TIMEOUT, Daemon
from tests.integration.helpers import startedWorkers


def greet(port: int) -> bytes:
    """
    The banner and the reply to one line, on a fresh connection.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
        client.sendall(b"Michael\nexit\n")
        received = b""
        while chunk := client.recv(1024):
            received += chunk
    return received


def test_greetdReactorByDefault(spawnGreetd: Any) -> None:
    daemon = spawnGreetd("--no-udp")
    assert greet(daemon.tcp[0][1]) == b"WelcomeHello, Michael!\n"
    assert "reactor class: greetd.daemon.reactor.GreetdReactor." in daemon.output


def test_chosenReactorKept(spawnGreetd: Any) -> None:
    """
    C{twistd --reactor=epoll greetd} runs on Twisted's own epoll reactor.
    """
    daemon = spawnGreetd("--no-udp", twistdArgs=("--reactor=epoll",))
    assert greet(daemon.tcp[0][1]) == b"WelcomeHello, Michael!\n"
    assert "reactor class: twisted.internet.epollreactor.EPollReactor." in daemon.output


@pytest.mark.parametrize(
    ("twistdArgs", "name"), [((), "greetd"), (("--reactor=poll",), "poll")]
)
def test_workersRunTheParentsReactor(
    spawnGreetd: Any, twistdArgs: tuple[str, ...], name: str
) -> None:
    daemon = spawnGreetd("--workers", "2", "--no-udp", twistdArgs=twistdArgs)
    pids = startedWorkers(daemon, 2)
    for pid in pids.values():
        with open(f"/proc/{pid}/cmdline") as cmdline:
            arguments = cmdline.read().split("\0")
        assert f"--reactor={name}" in arguments[: arguments.index("--")]
    assert greet(daemon.tcp[0][1]) == b"WelcomeHello, Michael!\n"


def test_underTwist(tmp_path: Path) -> None:
    """
    Twisted's other runner, C{twist}, keeps the reactor itself in its
    options: greetd installs its own without touching them, and serves.
    """
    twist = str(Path(TWISTD).with_name("twist"))
    command = [twist, "--log-format=text", "greetd", "--no-udp",
               "--tcp", "tcp:0:interface=127.0.0.1"]  # fmt: skip
    daemon = Daemon(command, tmp_path)
    try:
        daemon.waitForListeners(1)
        assert greet(daemon.tcp[0][1]) == b"WelcomeHello, Michael!\n"
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.output
