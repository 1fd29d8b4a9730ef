"""
Tests for L{greetd.ops.logfile}: the log file as log rotation expects it.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from typing import Any, Callable

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from greetd.ops.logfile import (
    REOPEN_SIGNALS,
    BatchedWriter,
    LogFile,
    LogFiles,
    ReopenOnSignalService,
)
from tests.helpers import captureLogs


def read(path: str) -> str:
    with open(path, encoding="utf-8") as logFile:
        return logFile.read()


class LogFileTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.directory)
        self.path = os.path.join(self.directory, "greetd.log")

    def open(self) -> LogFile:
        logFile = LogFile(self.path)
        self.addCleanup(logFile.close)
        return logFile

    def test_appends(self) -> None:
        """
        An existing log is kept: twistd's restarts add to it.
        """
        with open(self.path, "w") as existing:
            existing.write("before\n")
        logFile = self.open()
        logFile.write("after\n")
        self.assertEqual(read(self.path), "before\nafter\n")

    def test_eachLineAtOnce(self) -> None:
        """
        A whole line is in the file as soon as it is written, without a
        flush: another process (logrotate) may copy it at any moment.
        """
        logFile = self.open()
        logFile.write("one\n")
        self.assertEqual(read(self.path), "one\n")

    def test_reopenAfterMove(self) -> None:
        """
        Moved away (logrotate without copytruncate), the file keeps what was
        written until L{LogFile.reopen}, which creates the name anew.
        """
        logFile = self.open()
        logFile.write("one\n")
        os.rename(self.path, self.path + ".1")
        logFile.write("two\n")
        self.assertFalse(os.path.exists(self.path))
        logFile.reopen()
        logFile.write("three\n")
        self.assertEqual(read(self.path + ".1"), "one\ntwo\n")
        self.assertEqual(read(self.path), "three\n")

    def umask(self, mask: int) -> None:
        """
        Set the process's umask for the length of the test.
        """
        self.addCleanup(os.umask, os.umask(mask))

    def test_reopenKeepsMode(self) -> None:
        """
        The file created for one that was moved has the moved one's mode,
        whatever the umask: twistd's is 077 once daemonized, which would
        make the new log readable by its owner alone.
        """
        for mode in (0o644, 0o640, 0o604):
            logFile = self.open()
            os.chmod(self.path, mode)
            self.umask(0o077)
            os.rename(self.path, self.path + ".1")
            logFile.reopen()
            self.assertEqual(os.stat(self.path).st_mode & 0o7777, mode)
            logFile.close()
            os.remove(self.path)

    def test_reopenKeepsOwner(self) -> None:
        """
        The file created for one that was moved has the moved one's owner
        and group, where the process may give them (root may).
        """
        if os.geteuid() != 0:
            raise SkipTest("only root may give a file away")
        logFile = self.open()
        os.chown(self.path, 12345, 23456)
        os.rename(self.path, self.path + ".1")
        logFile.reopen()
        status = os.stat(self.path)
        self.assertEqual((status.st_uid, status.st_gid), (12345, 23456))

    def test_reopenOwnerNotPermitted(self) -> None:
        """
        Where the process may not give the file away, it keeps it, with the
        old file's mode, and tries to give the group alone.
        """
        if os.geteuid() != 0:
            raise SkipTest("only root may make a file another user's")
        calls: list[tuple[int, int]] = []

        def fchown(fd: int, uid: int, gid: int) -> None:
            calls.append((uid, gid))
            raise PermissionError(1, "Operation not permitted")

        logFile = self.open()
        os.chmod(self.path, 0o640)
        os.chown(self.path, 12345, 23456)
        os.rename(self.path, self.path + ".1")
        self.patch(os, "fchown", fchown)
        logFile.reopen()
        self.assertEqual(calls, [(12345, 23456), (-1, 23456)])
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o640)
        logFile.write("line\n")
        self.assertEqual(read(self.path), "line\n")

    def test_reopenKeepsCreatedFile(self) -> None:
        """
        A file logrotate created in place (C{create}) is written to, not
        replaced.
        """
        logFile = self.open()
        os.rename(self.path, self.path + ".1")
        with open(self.path, "w") as created:
            created.write("created\n")
        os.chmod(self.path, 0o640)
        logFile.reopen()
        logFile.write("line\n")
        self.assertEqual(read(self.path), "created\nline\n")
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o640)

    def test_truncatedUnderIt(self) -> None:
        """
        Truncated under it (C{copytruncate}), the next line goes to the new
        end of the file, with no hole of NUL bytes before it.
        """
        logFile = self.open()
        logFile.write("a long first line\n" * 100)
        os.truncate(self.path, 0)
        logFile.write("next\n")
        self.assertEqual(read(self.path), "next\n")

    def test_reopenFailureKeepsOldFile(self) -> None:
        """
        A name that cannot be opened raises, and the old file stays in use.
        """
        logFile = self.open()
        os.rename(self.path, self.path + ".1")
        os.mkdir(self.path)
        self.assertRaises(OSError, logFile.reopen)
        logFile.write("still here\n")
        self.assertEqual(read(self.path + ".1"), "still here\n")


class LogFilesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.directory)
        self.events = captureLogs(self, LogFiles)
        self.logFiles = LogFiles()

    def open(self, name: str) -> LogFile:
        logFile = self.logFiles.open(os.path.join(self.directory, name))
        self.addCleanup(logFile.close)
        return logFile

    def test_reopenEach(self) -> None:
        """
        Every file is reopened, each one that cannot be is logged, and
        the others are reopened all the same.
        """
        bad, good = self.open("bad.log"), self.open("good.log")
        for logFile in (bad, good):
            os.rename(logFile.path, logFile.path + ".1")
        os.mkdir(bad.path)
        self.logFiles.reopen("SIGHUP")
        good.write("new\n")
        self.assertEqual(read(good.path), "new\n")
        self.assertEqual(
            [(event["greetdEvent"], event["path"]) for event in self.events],
            [("log.reopen.failed", bad.path), ("log.reopen", good.path)],
        )
        self.assertEqual(self.events[0]["log_level"], LogLevel.error)
        self.assertEqual(self.events[1]["reason"], "SIGHUP")

    def test_nothingToReopen(self) -> None:
        self.logFiles.reopen()
        self.assertEqual(self.events, [])


class FakeReactor:
    """
    Records what a signal handler hands to the reactor thread.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self.afterShutdown: list[Callable[[], None]] = []

    def callFromThread(self, function: Callable[..., Any], *args: Any) -> None:
        self.calls.append((function, args))

    def addSystemEventTrigger(
        self, phase: str, event: str, callable: Callable[[], None]
    ) -> None:
        assert (phase, event) == ("after", "shutdown")
        self.afterShutdown.append(callable)


class ReopenOnSignalServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.handlers: dict[int, Any] = {
            signal.SIGUSR1: signal.SIG_DFL,
            signal.SIGHUP: "previous",
        }
        self.reactor = FakeReactor()
        self.logFiles = LogFiles()
        self.done: list[str] = []
        self.patch(self.logFiles, "reopen", lambda name: self.done.append(name))
        self.service = ReopenOnSignalService(
            self.logFiles, self.reactor, installHandler=self.install
        )

    def install(self, signum: int, handler: Any) -> Any:
        previous = self.handlers.get(signum)
        self.handlers[signum] = handler
        return previous

    def runReactorThread(self) -> None:
        calls, self.reactor.calls = self.reactor.calls, []
        for function, args in calls:
            function(*args)

    def test_signalsReopenInReactorThread(self) -> None:
        """
        C{SIGUSR1} and C{SIGHUP} only schedule the reopen, with the
        signal's name, for the reactor thread.
        """
        self.assertEqual(set(REOPEN_SIGNALS), {signal.SIGUSR1, signal.SIGHUP})
        self.service.startService()
        for signum in REOPEN_SIGNALS:
            self.handlers[signum](signum, None)
        self.assertEqual(self.done, [])
        self.runReactorThread()
        self.assertEqual(self.done, ["SIGUSR1", "SIGHUP"])

    def test_forwardAndReload(self) -> None:
        """
        Given C{forward}, each reopen is followed by it (a pool's workers
        reopen theirs); given C{reload}, C{SIGHUP} also reloads, last.
        """
        service = ReopenOnSignalService(
            self.logFiles,
            self.reactor,
            installHandler=self.install,
            reload=lambda: self.done.append("reload"),
            forward=lambda: self.done.append("forward"),
        )
        service.startService()
        self.handlers[signal.SIGUSR1](signal.SIGUSR1, None)
        self.handlers[signal.SIGHUP](signal.SIGHUP, None)
        self.assertEqual(self.done, [])
        self.runReactorThread()
        self.assertEqual(
            self.done, ["SIGUSR1", "forward", "SIGHUP", "forward", "reload"]
        )

    def test_handlersOutliveService(self) -> None:
        """
        Stopped (connections may drain for a while yet), the service keeps
        its handlers; they are put back once the reactor has shut down.
        """
        self.service.startService()
        self.service.stopService()
        self.assertFalse(self.service.running)
        self.handlers[signal.SIGHUP](signal.SIGHUP, None)
        self.runReactorThread()
        self.assertEqual(self.done, ["SIGHUP"])
        [restore] = self.reactor.afterShutdown
        restore()
        self.assertEqual(
            self.handlers,
            {signal.SIGUSR1: signal.SIG_DFL, signal.SIGHUP: "previous"},
        )

    def test_restartedOnce(self) -> None:
        """
        Started again, the service neither installs twice nor loses the
        handlers there were before it.
        """
        for _ in range(2):
            self.service.startService()
            self.service.stopService()
        self.assertEqual(len(self.reactor.afterShutdown), 1)
        self.reactor.afterShutdown[0]()
        self.assertEqual(self.handlers[signal.SIGHUP], "previous")


class RelativePathTests(SynchronousTestCase):
    def test_reopenedWhereOpened(self) -> None:
        """
        A relative name is the one at start-up: twistd's C{--rundir} changes
        the working directory after the log is opened, and a reopen must
        not create the log there.
        """
        first, second = tempfile.mkdtemp(), tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, first)
        self.addCleanup(shutil.rmtree, second)
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(first)
        logFile = LogFile("greetd.log")
        self.addCleanup(logFile.close)
        os.chdir(second)
        os.rename(os.path.join(first, "greetd.log"), "moved.log")
        logFile.reopen()
        logFile.write("line\n")
        self.assertEqual(logFile.path, os.path.join(first, "greetd.log"))
        self.assertEqual(read(logFile.path), "line\n")
        self.assertEqual(os.listdir(second), ["moved.log"])


class BatchedWriterTests(SynchronousTestCase):
    """
    Lines reach the stream in batches, one write and one flush each, and
    none is lost.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.clock.running = True
        self.stream = RecordingStream()
        self.writer = BatchedWriter(self.stream, self.clock)

    def test_batchedWithinDelay(self) -> None:
        for number in range(100):
            self.writer.write(f"line {number}\n")
            self.writer.flush()
        self.assertEqual(self.stream.writes, [])
        self.clock.advance(BatchedWriter.delay)
        self.assertEqual(len(self.stream.writes), 1)
        self.assertEqual(self.stream.flushes, 1)
        self.assertEqual(self.stream.writes[0].count("\n"), 100)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_fullBatchGoesAtOnce(self) -> None:
        self.writer.write("x" * BatchedWriter.maxPending)
        self.assertEqual(len(self.stream.writes), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_drainedAtShutdownAndExit(self) -> None:
        """
        What waits is written when the reactor shuts down (and when the
        process exits, by the same L{BatchedWriter.drain}).
        """
        self.writer.write("last\n")
        [(drain, args, kwargs)] = self.clock.triggers["after"]["shutdown"]
        drain(*args, **kwargs)
        self.assertEqual(self.stream.writes, ["last\n"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_writeThroughWhenNotRunning(self) -> None:
        """
        Before the reactor runs and after it stops nothing would drain a
        batch in time (twistd's last lines come then): lines go at once.
        """
        self.clock.running = False
        self.writer.write("Server Shut Down.\n")
        self.assertEqual(self.stream.writes, ["Server Shut Down.\n"])

    def test_madeLaterInPlace(self) -> None:
        """
        A line written to be made later is made when its batch is written,
        in its place among the others.
        """
        made: list[str] = []

        def render(name: str, number: int) -> str:
            made.append(name)
            return f"{name} {number}\n"

        self.writer.write("first\n")
        self.writer.writeLater((render, "later", 2))
        self.writer.write("third\n")
        self.assertEqual(made, [])
        self.clock.advance(BatchedWriter.delay)
        self.assertEqual(self.stream.writes, ["first\nlater 2\nthird\n"])
        self.assertEqual(made, ["later"])

    def test_madeLaterCounts(self) -> None:
        """
        Lines still to be made count towards a full batch, which goes at
        once, and are made at once when the reactor is not running.
        """
        for _ in range(-(-BatchedWriter.maxPending // BatchedWriter.laterSize)):
            self.writer.writeLater((str.upper, "x\n"))
        self.assertEqual(len(self.stream.writes), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.running = False
        self.writer.writeLater((str.upper, "shut down\n"))
        self.assertEqual(self.stream.writes[-1], "SHUT DOWN\n")

    def test_drainedBeforeReopen(self) -> None:
        logFiles = LogFiles()
        writer = logFiles.batched(self.stream, self.clock)
        writer.write("before\n")
        logFiles.reopen("SIGHUP")
        self.assertEqual(self.stream.writes, ["before\n"])


class RecordingStream:
    def __init__(self) -> None:
        self.writes: list[str] = []
        self.flushes = 0

    def write(self, text: str) -> None:
        self.writes.append(text)

    def flush(self) -> None:
        self.flushes += 1
