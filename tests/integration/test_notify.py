"""
sd_notify for real: the daemon's notifications arrive on a UNIX datagram
socket given as C{NOTIFY_SOCKET}, as systemd gives one to C{Type=notify}
services.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.integration.conftest import TIMEOUT


@pytest.fixture(params=["path", "abstract"])
def notifySocket(request: Any, tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """
    A bound UNIX datagram socket and its C{NOTIFY_SOCKET} value: a path, or
    an abstract name (C{@...}).
    """
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        value = str(tmp_path / "notify")
        receiver.bind(value)
    else:
        value = f"@greetd-test-notify-{os.getpid()}-{time.monotonic_ns()}"
        receiver.bind("\0" + value[1:])
    receiver.settimeout(TIMEOUT)
    with receiver:
        yield receiver, value


def receiveUntil(receiver: socket.socket, prefix: bytes) -> list[bytes]:
    """
    Every notification up to and including the first that starts with
    C{prefix}; each wait is bounded by the socket's timeout.
    """
    received: list[bytes] = []
    while not received or not received[-1].startswith(prefix):
        received.append(receiver.recv(4096))
    return received


def test_readyWatchdogStopping(
    spawnGreetd: Any, notifySocket: tuple[socket.socket, str]
) -> None:
    """
    C{READY=1} with a status naming both listeners, C{WATCHDOG=1} every half
    C{WATCHDOG_USEC}, and C{STOPPING=1} on SIGTERM before a clean exit.
    """
    receiver, value = notifySocket
    daemon = spawnGreetd(env={"NOTIFY_SOCKET": value, "WATCHDOG_USEC": "400000"})
    (tcpHost, tcpPort), (udpHost, udpPort) = daemon.tcp[0], daemon.udp[0]
    ready = receiveUntil(receiver, b"READY=1")[-1]
    assert (
        ready
        == (
            f"READY=1\nSTATUS=Serving TCP on {tcpHost}:{tcpPort}, "
            f"UDP on {udpHost}:{udpPort}"
        ).encode()
    )
    started = time.monotonic()
    pings = [receiver.recv(4096) for _ in range(3)]
    assert pings == [b"WATCHDOG=1"] * 3
    # Three pings 0.2s apart take at least 0.4s after the first.
    assert time.monotonic() - started >= 0.35
    # twistd ends by re-raising the signal that stopped it.
    assert daemon.stop() == -signal.SIGTERM
    assert receiveUntil(receiver, b"STOPPING=1")[-1] == b"STOPPING=1"


def test_watchdogForAnotherProcess(
    spawnGreetd: Any, notifySocket: tuple[socket.socket, str]
) -> None:
    """
    A C{WATCHDOG_PID} that is not greetd's means no pings, readiness still.
    """
    receiver, value = notifySocket
    spawnGreetd(
        env={"NOTIFY_SOCKET": value, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": "1"}
    )
    assert receiver.recv(4096).startswith(b"READY=1\n")
    receiver.settimeout(0.5)
    with pytest.raises(socket.timeout):
        receiver.recv(4096)
