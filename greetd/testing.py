"""
Run the real C{twistd greetd} as a child process and read its log: for
greetd's own integration tests, benchmarks and soak runs, and for tests of
programs that talk to greetd.
"""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

#: The twistd installed beside the interpreter running the tests.
TWISTD = str(Path(sys.executable).with_name("twistd"))

#: Every wait on the daemon is bounded by this many seconds.
TIMEOUT = 15.0

_SERVING = re.compile(r"Serving (TCP|UDP|metrics) on (.*)$")
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
    The text of a log line: the line, or for a JSON line (C{--log-format
    json}) its C{text}.
    """
    if line.startswith("{"):
        try:
            return str(json.loads(line)["text"])
        except (ValueError, KeyError):
            pass
    return line


def defaultSignals() -> None:
    """
    Give SIGINT back its default action: a C{preexec_fn} for the processes
    tests start and signal.  A process started with SIGINT ignored (a
    script's background job, where the shell ignores it) passes that on
    through C{exec}, and Python and twistd then leave it ignored, so a test
    that sends SIGINT would wait for an exit that never comes.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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
    @ivar metrics: The C{(host, port)} of the metrics listener, if any.
    """

    def __init__(
        self,
        command: list[str],
        cwd: Path,
        env: dict[str, str] | None = None,
        logFile: Path | None = None,
    ) -> None:
        """
        @param logFile: The log file C{command} writes (twistd's
            C{--logfile}), to read instead of its output: a benchmark's
            daemon then writes its log as a production one does, to a
            file, rather than into a pipe this process must keep up with.
        """
        self.command = command
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if logFile is None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            preexec_fn=defaultSignals,
        )
        reader = self._read if logFile is None else partial(self._tail, logFile)
        threading.Thread(target=reader, daemon=True).start()
        self.tcp: list[tuple[str, int]] = []
        self.udp: list[tuple[str, int]] = []
        self.metrics: list[tuple[str, int]] = []
        self._stopped = False

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self._queue.put(raw.decode("utf-8", "backslashreplace").rstrip("\n"))
        self._queue.put(None)

    def _tail(self, path: Path) -> None:
        pending = b""
        while not path.exists() and self.process.poll() is None:
            time.sleep(0.01)
        if not path.exists():
            # Exited before logging anything: end the lines at once.
            self._queue.put(None)
            return
        with open(path, "rb") as log:
            while True:
                chunk = log.read(1 << 20)
                if chunk:
                    *lines, pending = (pending + chunk).split(b"\n")
                    for raw in lines:
                        self._queue.put(raw.decode("utf-8", "backslashreplace"))
                elif self.process.poll() is not None:
                    break
                else:
                    time.sleep(0.05)
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
            nextLine = self._next(deadline)
            if nextLine is None:
                raise AssertionError(
                    f"greetd exited before {pattern!r}:\n{self.output}"
                )
            match = re.search(pattern, nextLine)
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
                    where = {"TCP": self.tcp, "UDP": self.udp}.get(kind, self.metrics)
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
        and return its exit status (killing it if it does not exit).
        """
        if self._stopped:
            return self.process.wait()
        self._stopped = True
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
        return status


def listenerCount(args: tuple[str, ...]) -> int:
    """
    How many listeners C{args} ask for, defaults included.
    """
    tcp = args.count("--tcp") or (0 if "--no-tcp" in args else 1)
    udp = args.count("--udp") or (0 if "--no-udp" in args else 1)
    return tcp + udp + args.count("--metrics")
