"""
Fixtures that run the real daemon: C{twistd --nodaemon greetd} as a child
process on ephemeral loopback ports, its log read line by line.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

#: The twistd installed beside the interpreter running the tests.
TWISTD = str(Path(sys.executable).with_name("twistd"))

#: Every wait on the daemon is bounded by this many seconds.
TIMEOUT = 15.0

_SERVING = re.compile(r"Serving (TCP|UDP) on (.*)$")
_IP_PORT = re.compile(r"\[?([^\]]*?)\]?:(\d+)")

#: Ephemeral loopback listeners, used unless a test names its own.
EPHEMERAL_TCP = ("--tcp", "tcp:0:interface=127.0.0.1")
EPHEMERAL_UDP = ("--udp", "udp:0:interface=127.0.0.1")


def withEphemeralPorts(args: tuple[str, ...]) -> tuple[str, ...]:
    """
    C{args}, plus an ephemeral loopback listener for each service that
    C{args} neither places nor disables.
    """
    if not {"--tcp", "--no-tcp"} & set(args):
        args = (*EPHEMERAL_TCP, *args)
    if not {"--udp", "--no-udp"} & set(args):
        args = (*EPHEMERAL_UDP, *args)
    return args


def logText(line: str) -> str:
    """
    The text of a log line: the line, or for a JSON line (C{--logger
    greetd.log.jsonLogger}) its C{text}.
    """
    if line.startswith("{"):
        try:
            return str(json.loads(line)["text"])
        except (ValueError, KeyError):
            pass
    return line


def twistdCommand(*args: str, twistdArgs: tuple[str, ...] = ()) -> list[str]:
    """
    The command line that runs greetd in the foreground with C{args}.
    """
    return [TWISTD, "--nodaemon", "--pidfile=", *twistdArgs, "greetd", *args]


class Daemon:
    """
    A running C{twistd greetd} and what it has logged.

    @ivar tcp: The C{(host, port)} of each TCP listener on an IP address
        (UNIX sockets are left out), in order.
    @ivar udp: The C{(host, port)} of each UDP listener, in order.
    """

    def __init__(
        self, command: list[str], cwd: Path, env: dict[str, str] | None = None
    ) -> None:
        self.command = command
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env=None if env is None else {**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        threading.Thread(target=self._read, daemon=True).start()
        self.tcp: list[tuple[str, int]] = []
        self.udp: list[tuple[str, int]] = []
        self._status: int | None = None

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self._queue.put(raw.decode("utf-8", "backslashreplace").rstrip("\n"))
        self._queue.put(None)

    def _next(self, deadline: float) -> str | None:
        try:
            line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(
                f"greetd said nothing more within {TIMEOUT}s:\n{self.output}"
            ) from None
        if line is not None:
            self.lines.append(line)
        return line

    def waitFor(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        """
        Wait until a log line matches C{pattern}, and return the match.
        """
        deadline = time.monotonic() + timeout
        for line in self.lines:
            match = re.search(pattern, line)
            if match:
                return match
        while True:
            line = self._next(deadline)
            if line is None:
                raise AssertionError(
                    f"greetd exited before {pattern!r}:\n{self.output}"
                )
            match = re.search(pattern, line)
            if match:
                return match

    def waitForListeners(self, count: int) -> None:
        """
        Wait until C{count} listeners have been logged, and note where.
        """
        deadline = time.monotonic() + TIMEOUT
        seen = 0
        index = 0
        while seen < count:
            if index == len(self.lines) and self._next(deadline) is None:
                raise AssertionError(f"greetd exited while starting:\n{self.output}")
            line = self.lines[index]
            index += 1
            match = _SERVING.search(logText(line))
            if match:
                seen += 1
                kind, address = match.groups()
                ip = _IP_PORT.fullmatch(address)
                if ip:
                    where = self.tcp if kind == "TCP" else self.udp
                    where.append((ip.group(1), int(ip.group(2))))

    @property
    def output(self) -> str:
        """
        Everything logged so far.
        """
        return "\n".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """
        Signal the daemon, wait for it to exit, read the rest of its log,
        and return its exit status (killing it if it does not exit); once
        stopped, return that status again.
        """
        if self._status is not None:
            return self._status
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            status = self.process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(TIMEOUT)
            raise AssertionError(
                f"greetd ignored signal {sig}:\n{self.output}"
            ) from None
        deadline = time.monotonic() + TIMEOUT
        while self._next(deadline) is not None:
            pass
        self._status = status
        return status


def listenerCount(args: tuple[str, ...]) -> int:
    """
    How many listeners C{args} ask for, defaults included.
    """
    tcp = args.count("--tcp") or (0 if "--no-tcp" in args else 1)
    udp = args.count("--udp") or (0 if "--no-udp" in args else 1)
    return tcp + udp


@pytest.fixture
def spawnGreetd(tmp_path: Path) -> Iterator[object]:
    """
    Start daemons: C{spawnGreetd(*args)} runs C{twistd greetd *args} and
    returns the L{Daemon} once every listener is up; all are stopped when the
    test ends.  Services C{args} do not place listen on ephemeral loopback
    ports, unless C{ephemeral=False} leaves greetd's own defaults.

    C{env} adds to the daemon's environment, C{wrapper} is a command that
    runs twistd (C{systemd-socket-activate ...}), C{cwd} replaces the test's
    temporary directory, and C{listeners} says how many listeners to wait
    for (0: return at once).
    """
    daemons: list[Daemon] = []

    def start(
        *args: str,
        ephemeral: bool = True,
        twistdArgs: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        wrapper: tuple[str, ...] = (),
        cwd: Path = tmp_path,
        listeners: int | None = None,
    ) -> Daemon:
        if ephemeral:
            args = withEphemeralPorts(args)
        command = [*wrapper, *twistdCommand(*args, twistdArgs=twistdArgs)]
        daemon = Daemon(command, cwd, env)
        daemons.append(daemon)
        daemon.waitForListeners(listenerCount(args) if listeners is None else listeners)
        return daemon

    yield start
    for daemon in daemons:
        daemon.stop()


def runTwistd(
    *args: str, cwd: Path, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """
    Run C{twistd greetd *args} to completion (for ones that must fail).
    """
    return subprocess.run(
        twistdCommand(*args),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def requireTool(name: str) -> str:
    """
    The path of the outside tool C{name}, which C{make test} installs.  A
    developer without it gets a skip saying so; CI (C{CI=true}) fails.
    """
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        message = f"{name} is not installed (make test installs it as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
