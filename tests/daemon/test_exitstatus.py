"""
Tests for L{greetd.daemon.exitstatus}.
"""

from __future__ import annotations

import atexit
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from twisted.trial.unittest import SynchronousTestCase

from greetd.daemon.exitstatus import ExitStatus, StartupFailed

#: A process that exits as twistd greetd does once a listener has failed
#: late: its exit status made first, as greetd's options make it, then the
#: log, whose last line still waits in its batch (the clock never drains
#: it), then the failure.  It writes the log to its first argument.
EXITING = """
import sys
from greetd.daemon.exitstatus import ExitStatus
from greetd.ops.logfile import BatchedWriter, LogFile

class Running:
    running = True
    def callLater(self, delay, f, *args):
        return self
    def active(self):
        return True
    def cancel(self):
        pass
    def addSystemEventTrigger(self, *args):
        pass

exitStatus = ExitStatus()
writer = BatchedWriter(LogFile(sys.argv[1]), Running())
writer.write("Cannot listen for TCP on tcp:1\\n")
exitStatus.fail(1)
"""


class ExitStatusTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.hooks: list[Callable[[], object]] = []
        self.patch(atexit, "register", self.register)
        self.exits: list[int] = []

    def register(self, hook: Callable[[], object], *args: Any) -> None:
        self.hooks.append(hook)

    def test_failed(self) -> None:
        """
        Once L{ExitStatus.fail} is called, its exit hook exits with the
        status.
        """
        status = ExitStatus(self.exits.append)
        status.fail(1)
        self.assertEqual(self.exits, [])
        [hook] = self.hooks
        hook()
        self.assertEqual(self.exits, [1])

    def test_notFailed(self) -> None:
        """
        Without a failure, the exit is left to Python.
        """
        ExitStatus(self.exits.append)
        self.hooks[0]()
        self.assertEqual(self.exits, [])

    def test_drainedFirst(self) -> None:
        """
        The process exits with status 1 and the log's last line, which
        waited in its batch, written: the exit hook runs after the log's
        drain, however the exit is set.
        """
        log = Path(self.mktemp())
        process = subprocess.run(
            [sys.executable, "-c", EXITING, str(log)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual((process.returncode, process.stderr), (1, ""))
        self.assertEqual(log.read_text(), "Cannot listen for TCP on tcp:1\n")


class StartupFailedTests(SynchronousTestCase):
    def test_errorAndExit(self) -> None:
        """
        L{StartupFailed} is an error, which twistd's start-up handles (pid
        file, daemonizing parent), and an exit with status 1.
        """
        failed = StartupFailed("cannot listen for TCP on tcp:1")
        self.assertIsInstance(failed, Exception)
        self.assertIsInstance(failed, SystemExit)
        self.assertEqual(failed.code, 1)
        self.assertEqual(str(failed), "cannot listen for TCP on tcp:1")
