"""
SIGHUP and SIGUSR1 against the real daemon: they reopen the log, and never
kill, cut a conversation or invalidate the pidfile.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

from tests.integration.conftest import TIMEOUT
from tests.integration.helpers import (
    closedPorts,
    loggedConversation,
    logLines,
    startLogging,
    waitForClosed,
    waitUntil,
)


def exchange(client: socket.socket, message: bytes, expected: bytes) -> None:
    received = b""
    client.sendall(message)
    while len(received) < len(expected):
        chunk = client.recv(4096)
        assert chunk, received
        received += chunk
    assert received == expected


def test_sighupMidConversation(spawnGreetd: Any, tmp_path: Path) -> None:
    """
    SIGHUP, then SIGUSR1, while a client is mid-conversation: the
    conversation goes on, the process and its pidfile stay, and the log
    (moved away first) is recreated by name.
    """
    daemon, log, pidfile, port = startLogging(spawnGreetd, tmp_path)
    pid = daemon.process.pid
    assert pidfile.read_text().strip() == str(pid)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
        exchange(client, b"one\n", b"WelcomeHello, one!\n")
        for number, signum in enumerate([signal.SIGHUP, signal.SIGUSR1]):
            moved = log.with_name(f"greetd.log.{number}")
            os.rename(log, moved)
            os.kill(pid, signum)
            waitUntil(daemon, log.exists, "recreated log")
            exchange(client, b"again\n", b"Hello, again!\n")
            assert daemon.process.poll() is None
            assert pidfile.read_text().strip() == str(pid)
            reopened = f"Reopened the log file {log} ({signum.name})"
            waitUntil(daemon, lambda r=reopened: r in log.read_text(), reopened)
        client.sendall(b"exit\n")
        assert client.recv(4096) == b""
    waitUntil(daemon, lambda: "messages" in log.read_text(), "close line")
    assert daemon.stop() == -signal.SIGTERM
    assert not pidfile.exists()
    assert "Connection from" in (tmp_path / "greetd.log.0").read_text()
    assert re.search(r"closed \(exit\) after .*: 3 messages", log.read_text())


def test_sighupWithoutLogFile(spawnGreetd: Any) -> None:
    """
    Logging to stdout (under systemd, say), SIGHUP has nothing to reopen and
    still does not kill.
    """
    daemon = spawnGreetd("--no-udp")
    port = daemon.tcp[0][1]
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
        exchange(client, b"one\n", b"WelcomeHello, one!\n")
        daemon.process.send_signal(signal.SIGHUP)
        exchange(client, b"two\n", b"Hello, two!\n")
    assert loggedConversation(port, "after") > 0
    assert daemon.process.poll() is None
    assert daemon.stop() == -signal.SIGTERM
    assert "Traceback" not in daemon.output


def test_workersLogToParentFile(spawnGreetd: Any, tmp_path: Path) -> None:
    """
    With C{--workers}, the workers' lines go to the parent's log file,
    naming each worker, and move with it when SIGUSR1 reopens it; the
    workers live on (SIGHUP would also replace them: test_reload).
    """
    daemon, log, _, port = startLogging(spawnGreetd, tmp_path, (), "--workers", "2")
    waitUntil(
        daemon,
        lambda: sum("] Serving TCP" in line for line in logLines(log)) == 3,
        "workers serving",
    )
    started = re.findall(r"Started worker \d \(pid (\d+)\)", log.read_text())
    before = [loggedConversation(port, f"before{n}") for n in range(6)]
    waitForClosed(daemon, log, 6)
    os.rename(log, log.with_name("greetd.log.1"))
    daemon.process.send_signal(signal.SIGUSR1)
    waitUntil(daemon, log.exists, "recreated log")
    after = [loggedConversation(port, f"after{n}") for n in range(6)]
    waitForClosed(daemon, log, 12)
    assert sorted(closedPorts(log)) == sorted(before + after)
    text = log.read_text()
    workers = set(
        re.findall(r"\[worker \d pid (\d+) greetd\.access#info\] Connection", text)
    )
    assert workers and workers <= set(started)
    assert "Started worker" not in text
    daemon.stop()
    assert daemon.output == ""


def stopTime(daemon: Any, sig: int = signal.SIGTERM) -> float:
    """
    How long C{daemon} takes to exit once signalled.
    """
    started = time.monotonic()
    daemon.stop(sig)
    return time.monotonic() - started


def test_shutdownBesidePipeliningClient(spawnGreetd: Any) -> None:
    """
    SIGTERM while a client pipelines messages as fast as greetd answers
    them (its reading paused, by the budget per turn or by backpressure):
    greetd drops what it read but has not answered, reads on to see the
    client close, and exits about as fast as a daemon with no client at
    all, measured in the same run, instead of waiting out the drain's
    whole C{--shutdown-timeout}.
    """
    timeout = 12.0
    args = ("--shutdown-timeout", str(timeout), "--rate-per-ip", "0", "--no-udp")
    baseline = stopTime(spawnGreetd(*args))
    daemon = spawnGreetd(*args)
    client = socket.create_connection(("127.0.0.1", daemon.tcp[0][1]), TIMEOUT)
    received = [0]
    ended = threading.Event()

    def pump() -> None:
        try:
            while True:
                client.sendall(b"a\n" * 4096)
                data = client.recv(65536)
                if not data:
                    break
                received[0] += len(data)
        except OSError:
            pass
        finally:
            client.close()
            ended.set()

    thread = threading.Thread(target=pump)
    thread.start()
    waitUntil(daemon, lambda: received[0] > 100000, "replies")
    try:
        elapsed = stopTime(daemon)
    finally:
        thread.join(TIMEOUT)
    assert ended.is_set()
    assert elapsed < baseline + timeout / 2, (
        f"{elapsed:.2f}s to exit beside a pipelining client, {baseline:.2f}s alone"
    )
