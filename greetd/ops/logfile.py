"""
The log file, as log rotation expects it: opened for appending and reopened
by name on C{SIGUSR1} or C{SIGHUP}.

Operators rotate logs with C{logrotate} in one of three ways, and each needs
the daemon to behave as this module makes it:

  - move, then signal: the daemon keeps writing to the moved file until the
    signal, then reopens the name, which creates a new file with the mode
    and, where permitted, the owner of the file it replaces (as nginx
    does), whatever the daemon's umask (twistd's is 077 once daemonized);
  - C{create}, then signal: likewise, but the new file is logrotate's, with
    its owner and mode;
  - C{copytruncate}: no signal; the file is copied and truncated under the
    daemon, whose next line must go to the new end of the file, not to its
    old offset (which would fill the start of the file with NUL bytes):
    hence append mode.

twistd's own L{twisted.python.logfile.LogFile} does none of this: it renames
the file itself on C{SIGUSR1} and when it reaches a million bytes, and never
deletes old files.
"""

from __future__ import annotations

import atexit
import os
import signal
import stat
from contextlib import suppress
from typing import IO, Any, Callable, Iterable, Protocol

from twisted.application.service import Service
from twisted.logger import Logger

#: The signals that reopen the log: C{SIGUSR1}, twistd's and nginx's, and
#: C{SIGHUP}, which many C{logrotate} recipes send and which must not kill.
REOPEN_SIGNALS = (signal.SIGUSR1, signal.SIGHUP)


class LogFile:
    """
    A text file opened for appending, line by line, that L{reopen} opens
    again by name: a file-like object for L{twisted.logger.FileLogObserver}.

    @ivar path: The file's absolute name: a relative one is taken from the
        working directory at start-up, as twistd does, since twistd's
        C{--rundir} changes it afterwards.
    """

    def __init__(self, path: str, fd: int | None = None) -> None:
        """
        @param fd: The file already open for appending, to adopt (a worker
            inherits its parent's), rather than opening C{path}.
        """
        self.path = os.path.abspath(path)
        self._file = self._open(None) if fd is None else self._wrap(fd)

    def _open(self, replaced: os.stat_result | None) -> IO[str]:
        # Append mode (O_APPEND): every write goes to the current end of the
        # file, even after copytruncate.  Line buffering, with the flush each
        # FileLogObserver write is followed by, puts each line in the file at
        # once, whole; a batch (BatchedWriter) goes in one write, which
        # O_APPEND keeps whole beside other processes' (a pool's workers).
        return self._wrap(openForAppending(self.path, replaced))

    @staticmethod
    def _wrap(fd: int) -> IO[str]:
        return open(fd, "a", buffering=1, encoding="utf-8", errors="backslashreplace")

    def fileno(self) -> int:
        """
        The descriptor of the file open now, which a worker inherits.
        """
        return self._file.fileno()

    def write(self, text: str) -> None:
        self._file.write(text)

    def flush(self) -> None:
        self._file.flush()

    def reopen(self) -> None:
        """
        Open the file by its name again, creating it like the old one
        (L{openForAppending}) if it was moved or removed, and close the old
        one.  If it cannot be opened, the old one stays in use and the
        reason is raised.

        @raise OSError: If the name cannot be opened.
        """
        new = self._open(os.fstat(self.fileno()))
        old, self._file = self._file, new
        old.close()

    def close(self) -> None:
        self._file.close()


def openForAppending(path: str, replaced: os.stat_result | None = None) -> int:
    """
    Open C{path} for appending, creating it if it does not exist, and
    return the descriptor.

    A file that exists is used as it is: a rotation tool that created it
    (logrotate's C{create MODE OWNER GROUP}) chose its mode and owner.  A
    file created here for one that was moved or removed (C{replaced}, its
    status) gets that file's permissions, set explicitly so that the
    process's umask cannot narrow them, and its owner and group where the
    process may give them (root may; another user only its own groups):
    the operator who could read the old log can read the new one.

    @param replaced: The status of the file this one replaces, if any.
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
    while True:
        try:
            return os.open(path, flags)
        except FileNotFoundError:
            pass
        mode = 0o666 if replaced is None else stat.S_IMODE(replaced.st_mode)
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            continue  # Created meanwhile (logrotate's create): use it.
        if replaced is not None:
            os.fchmod(fd, mode)
            with suppress(PermissionError):
                os.fchown(fd, replaced.st_uid, replaced.st_gid)
            if os.fstat(fd).st_uid != replaced.st_uid:
                with suppress(PermissionError):
                    os.fchown(fd, -1, replaced.st_gid)
        return fd


class Stream(Protocol):
    """
    Where log text goes: a L{LogFile}, or standard output.
    """

    def write(self, text: str) -> Any: ...

    def flush(self) -> Any: ...


class BatchedWriter:
    """
    Batches log lines: what is written reaches the stream in one write and
    one flush at most L{delay} seconds later, or at once when L{maxPending}
    characters wait or the reactor is not running, rather than a system
    call for every line.  Nothing is
    lost: L{drain} writes what waits before a reopen (L{LogFiles.reopen}),
    after the reactor shuts down, and when the process exits (before
    C{twistd greetd}'s exit status is set: L{greetd.daemon.exitstatus}).

    A L{twisted.logger.FileLogObserver} writes here and calls L{flush}
    after each event; that flush only makes sure a drain is coming.  A line
    can also be made when its batch is written (L{writeLater}), in its
    place among the others.

    @ivar stream: Where the batches go.
    @ivar clock: Schedules the drain; the global reactor by default.
    """

    #: Seconds a line may wait for its batch.
    delay = 0.05

    #: Characters that make a batch go at once.
    maxPending = 64 * 1024

    #: Characters a line still to be made counts for: about an access line.
    laterSize = 160

    def __init__(self, stream: Stream, clock: Any = None) -> None:
        self.stream = stream
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock = clock
        # Text, or a line still to be made: (render, *its arguments).
        self._pending: list[Any] = []
        self._size = 0
        self._scheduled: Any = None
        atexit.register(self.drain)
        clock.addSystemEventTrigger("after", "shutdown", self.drain)

    def write(self, text: str) -> None:
        self._pending.append(text)
        self._size += len(text)
        self._due()

    def writeLater(self, line: tuple[Any, ...]) -> None:
        """
        Write the text C{line}, a function and its arguments, returns,
        made when its batch is written rather than now.  Made together, a
        batch's lines cost less than made one at a time between other work,
        so the access log's lines are made here (L{greetd.ops.accesslog}).
        """
        self._pending.append(line)
        self._size += self.laterSize
        self._due()

    def _due(self) -> None:
        if self._size >= self.maxPending or not getattr(self.clock, "running", True):
            # Before the reactor runs and after it stops, nothing would
            # drain the batch in time: write through.
            self.drain()
        elif self._scheduled is None:
            self._scheduled = self.clock.callLater(self.delay, self.drain)

    def flush(self) -> None:
        """
        Nothing to do now: the batch drains within L{delay} seconds.
        """

    def drain(self) -> None:
        """
        Write and flush everything waiting, now.
        """
        scheduled, self._scheduled = self._scheduled, None
        if scheduled is not None and scheduled.active():
            scheduled.cancel()
        if not self._pending:
            return
        pending, self._pending, self._size = self._pending, [], 0
        text = "".join(
            [item if type(item) is str else item[0](*item[1:]) for item in pending]
        )
        self.stream.write(text)
        self.stream.flush()


class LogFiles:
    """
    The log files a process writes, to reopen all at once, and the batched
    writers in front of them, to drain first.

    @ivar files: The files opened by L{open}, in order.
    @ivar writers: The writers made by L{batched}.
    """

    _log = Logger()

    def __init__(self) -> None:
        self.files: list[LogFile] = []
        self.writers: list[BatchedWriter] = []

    def batched(self, stream: Stream, clock: Any = None) -> BatchedWriter:
        """
        A L{BatchedWriter} for C{stream}, drained before every reopen.
        """
        writer = BatchedWriter(stream, clock)
        self.writers.append(writer)
        return writer

    def open(self, path: str, fd: int | None = None) -> LogFile:
        """
        Open C{path} (or adopt C{fd}, open on it) as a L{LogFile} that
        L{reopen} will reopen.
        """
        logFile = LogFile(path, fd)
        self.files.append(logFile)
        return logFile

    def reopen(self, reason: str = "") -> None:
        """
        Reopen every file; one that cannot be reopened is logged (to the
        file still in use) and the others are reopened all the same.

        @param reason: What asked for it (C{"SIGHUP"}), for the log line
            each reopened file starts with.
        """
        for writer in self.writers:
            writer.drain()
        for logFile in self.files:
            try:
                logFile.reopen()
            except OSError as error:
                self._log.error(
                    "Cannot reopen the log file {path}: {error}; "
                    "still writing to the old one",
                    path=logFile.path,
                    error=error.strerror or error,
                    greetdEvent="log.reopen.failed",
                )
            else:
                self._log.info(
                    "Reopened the log file {path} ({reason})",
                    path=logFile.path,
                    reason=reason or "asked",
                    greetdEvent="log.reopen",
                )


#: Installs a signal handler and returns the previous one, as C{signal.signal}.
InstallHandler = Callable[[int, Any], Any]


class ReopenOnSignalService(Service):
    """
    Reopens L{LogFiles} on each of L{REOPEN_SIGNALS}, in the reactor thread
    (the handler only schedules it), so that a signal never interrupts a
    line being written; and so the signals never kill, even when the log
    goes to stdout and there is nothing to reopen.

    The handlers stay after the service stops, until the reactor has shut
    down: stopping begins with every service at once, and connections may
    drain for C{--shutdown-timeout} seconds afterwards, during which a
    rotation's signal must neither kill nor go unanswered.  Then the
    previous handlers are put back.

    C{SIGHUP} is also the reload signal: when C{reload} is given (the
    parent of a worker pool passes L{WorkerPool.reload
    <greetd.daemon.pool.service.WorkerPool.reload>}), it is called after the
    reopen, so one signal both reopens the log and replaces the workers;
    C{SIGUSR1} only reopens.  When C{forward} is given (a pool's parent
    passes L{Supervisor.reopenLogs
    <greetd.daemon.pool.supervisor.Supervisor.reopenLogs>}), it is called
    after every reopen, before a reload: the workers reopen theirs.
    """

    def __init__(
        self,
        logFiles: LogFiles,
        reactor: Any,
        signals: Iterable[int] = REOPEN_SIGNALS,
        installHandler: InstallHandler | None = None,
        reload: Callable[[], object] | None = None,
        forward: Callable[[], object] | None = None,
    ) -> None:
        self.logFiles = logFiles
        self._reload = reload
        self._forward = forward
        self._reactor = reactor
        self._signals = tuple(signals)
        self._installHandler = installHandler or signal.signal
        self._previous: dict[int, Any] | None = None

    def startService(self) -> None:
        Service.startService(self)
        if self._previous is not None:
            return
        self._previous = {
            signum: self._installHandler(signum, self._handle)
            for signum in self._signals
        }
        self._reactor.addSystemEventTrigger("after", "shutdown", self.restoreHandlers)

    def restoreHandlers(self) -> None:
        """
        Put back the handlers there were before L{startService}.
        """
        previous, self._previous = self._previous or {}, None
        for signum, handler in previous.items():
            self._installHandler(signum, handler)

    def _handle(self, signum: int, frame: object) -> None:
        self._reactor.callFromThread(self._reopen, signum)

    def _reopen(self, signum: int) -> None:
        self.logFiles.reopen(signal.Signals(signum).name)
        if self._forward is not None:
            self._forward()
        if signum == signal.SIGHUP and self._reload is not None:
            self._reload()
