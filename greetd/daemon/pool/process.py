"""
The parent's end of one worker process: starting it with the shared
sockets as its descriptors, and reading what it writes.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from contextlib import suppress
from typing import Any, Callable, Protocol, Sequence

from twisted.internet.error import ProcessExitedAlready
from twisted.internet.interfaces import IProcessTransport
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import LogLevel
from twisted.python.failure import Failure

from greetd.daemon.listening import ListeningService
from greetd.daemon.pool.logger import WORKER, PinnedLogger
from greetd.daemon.pool.sockets import SharedSocket
from greetd.daemon.pool.wire import (
    COUNTS_FD,
    FIRST_LISTENER_FD,
    LOG_FD,
    LOG_FILE,
    LOG_RELAY,
    LOG_STDOUT,
    REOPEN,
    CountsReader,
    WorkerLog,
    parseCounts,
    workerCommand,
)
from greetd.ops.log import LogOutput
from greetd.ops.relay import LogRelay


class Supervising(Protocol):
    """
    What a L{WorkerProtocol} tells of its worker: the pool that runs it.
    """

    def workerReady(self, protocol: WorkerProtocol) -> None:
        """
        C{protocol}'s worker has said L{READY}: it serves.
        """

    def workerEnded(self, protocol: WorkerProtocol, reason: Failure) -> None:
        """
        C{protocol}'s worker process has ended, for C{reason}.
        """


class WorkerProtocol(ProcessProtocol):
    """
    The parent's end of one worker: reads its counters, relays its log and
    tells the pool when it ends.

    @ivar pool: The L{WorkerPool <greetd.daemon.pool.service.WorkerPool>}
        it belongs to.
    @ivar slot: Which worker this is, from 1: a replacement takes the slot
        of the worker it replaces, so logs stay readable.
    @ivar pid: The worker's process id, once spawned.
    @ivar counts: The last counters the worker reported.
    @ivar ready: Whether the worker has said L{READY}: it serves.
    """

    _log = PinnedLogger(WORKER)
    pid: int | None = None
    ready = False
    _reopenWhenReady = False

    def __init__(self, pool: Supervising, slot: int) -> None:
        self.pool = pool
        self.slot = slot
        self.counts: Counter[str] = Counter()
        self._counts = CountsReader()
        self._logs: dict[int, LogRelay] = {}

    def connectionMade(self) -> None:
        pid = getattr(self.transport, "pid", None)
        self._logs = {
            1: LogRelay(self.slot, pid),
            2: LogRelay(self.slot, pid, LogLevel.error),
        }

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD in self._logs:
            self._logs[childFD].dataReceived(data)
        if childFD != COUNTS_FD:
            return
        read = self._counts.feed(data)
        if read.report is not None:
            try:
                self.counts = parseCounts(read.report)
            except ValueError:
                self._log.warn("Worker {slot} sent unreadable counts", slot=self.slot)
        if read.ready and not self.ready:
            self.ready = True
            if self._reopenWhenReady:
                self.reopenLog()
            self.pool.workerReady(self)

    def reopenLog(self) -> None:
        """
        Tell the worker to reopen its log (L{REOPEN}): now if it has said
        L{READY}, which it says only once it handles L{REOPEN} (until then
        the signal would kill it), otherwise as soon as it says it.
        """
        if not self.ready:
            self._reopenWhenReady = True
            return
        self._reopenWhenReady = False
        self.signal(REOPEN)

    def signal(self, signum: str | int) -> None:
        """
        Send C{signum} to the worker, unless it has already ended.
        """
        transport = self.transport
        if transport is not None:
            with suppress(ProcessExitedAlready):
                transport.signalProcess(signum)

    def childConnectionLost(self, childFD: int) -> None:
        if childFD in self._logs:
            self._logs[childFD].connectionLost()

    def processEnded(self, reason: Failure) -> None:
        self.pool.workerEnded(self, reason)


def describeExit(reason: Failure) -> str:
    """
    How a worker process ended, in words: C{exited with status 1},
    C{killed by signal 9 (SIGKILL)}.

    @param reason: What C{processEnded} was given.
    """
    signum = getattr(reason.value, "signal", None)
    if signum is not None:
        try:
            name = f" ({signal.Signals(signum).name})"
        except ValueError:
            name = ""
        return f"killed by signal {signum}{name}"
    exitCode = getattr(reason.value, "exitCode", None)
    if exitCode is not None:
        return f"exited with status {exitCode}"
    return str(reason.value)


#: Starts a worker process for a slot, connected to the protocol.
Spawn = Callable[[int, WorkerProtocol], IProcessTransport]


def workerLog(log: LogOutput | None) -> tuple[WorkerLog, dict[int, int | str]]:
    """
    How a worker logs, given the parent's log C{log} as it is now, and the
    worker's descriptors for it: the parent's log file, inherited as
    L{LOG_FD}, or the parent's standard output; or, where the parent does
    not write its lines itself (syslog, another C{--logger}), a pipe to the
    parent, which relays its lines (L{LogRelay}).
    """
    if log is None or log.stream is None:
        return WorkerLog(LOG_RELAY), {1: "r"}
    if log.files.files:
        logFile = log.files.files[0]
        fds: dict[int, int | str] = {1: 1, LOG_FD: logFile.fileno()}
        return WorkerLog(LOG_FILE, logFile.path, log.json), fds
    return WorkerLog(LOG_STDOUT, None, log.json), {1: 1}


def spawnWorker(
    reactor: Any,
    arguments: Sequence[str],
    listeners: dict[str, list[ListeningService]],
    slot: int,
    protocol: WorkerProtocol,
    *,
    reactorName: str | None = None,
    log: LogOutput | None = None,
) -> IProcessTransport:
    """
    Start worker C{slot}, on the reactor plugin C{reactorName} (Twisted's
    default for C{None}), with the parent's bound sockets as descriptors
    from L{FIRST_LISTENER_FD} on; standard input is the pipe whose end of
    file tells it the parent is gone, standard error a pipe whose lines
    the parent logs, L{COUNTS_FD} the counters' pipe, and its log as
    L{workerLog} says for the parent's C{log}.
    """
    howToLog, logFDs = workerLog(log)
    childFDs: dict[int, int | str] = {0: "w", 2: "r", COUNTS_FD: "r", **logFDs}
    inherited: dict[str, list[int]] = {}
    fd = FIRST_LISTENER_FD
    for kind, services in listeners.items():
        for service in services:
            port = service.port
            assert isinstance(port, SharedSocket), "not bound yet"
            childFDs[fd] = port.fileno()
            inherited.setdefault(kind, []).append(fd)
            fd += 1
    command = workerCommand(slot, inherited, arguments, reactorName, howToLog)
    return reactor.spawnProcess(  # type: ignore[no-any-return]
        protocol, command[0], command, env=os.environ, childFDs=childFDs
    )
