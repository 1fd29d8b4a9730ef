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
#: late: an exit hook registered before greetd's (a sitecustomize's, say),
#: which writes its second argument, its exit status made, as greetd's
#: options make it, then the log, whose last line still waits in its batch
#: (the clock never drains it), then the failure, then a hook registered
#: while it shuts down, which appends to its second argument too.  It
#: writes the log to its first argument.
EXITING = """
import atexit, sys

def hook(text):
    with open(sys.argv[2], "a") as hooks:
        hooks.write(text)

atexit.register(hook, "before greetd\\n")
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
atexit.register(hook, "after the failure\\n")
"""


class ExitStatusTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.hooks: list[Callable[[], object]] = []
        self.patch(atexit, "register", self.register)
        self.patch(atexit, "unregister", self.unregister)
        self.patch(atexit, "_run_exitfuncs", self.runHooks)
        self.exits: list[int] = []
        self.events: list[object] = []

    def register(self, hook: Callable[[], object], *args: Any) -> None:
        self.hooks.append(hook)

    def unregister(self, hook: Callable[[], object]) -> None:
        self.hooks[:] = [each for each in self.hooks if each != hook]

    def runHooks(self) -> None:
        self.events.append(list(self.hooks))

    def test_failed(self) -> None:
        """
        Once L{ExitStatus.fail} is called, its exit hook is the last one
        registered (so C{atexit} runs it first); it runs every other hook,
        then exits with the status.
        """
        earlier = object
        self.register(earlier)
        status = ExitStatus(self.exits.append)
        self.assertEqual(self.hooks, [earlier])
        status.fail(1)
        self.assertEqual(self.exits, [])
        [_, hook] = self.hooks
        hook()
        self.assertEqual(self.events, [[earlier]])
        self.assertEqual(self.exits, [1])

    def test_failedTwice(self) -> None:
        """
        The hook is registered once however often L{ExitStatus.fail} is
        called, and the last status wins.
        """
        status = ExitStatus(self.exits.append)
        status.fail(1)
        status.fail(2)
        [hook] = self.hooks
        hook()
        self.assertEqual(self.exits, [2])

    def test_notFailed(self) -> None:
        """
        Without a failure, no hook is registered: the exit is left to
        Python.
        """
        ExitStatus(self.exits.append)
        self.assertEqual(self.hooks, [])

    def test_everyHookRuns(self) -> None:
        """
        The process exits with status 1, the log's last line, which waited
        in its batch, written, and every other exit hook run: the one
        registered before greetd's once, and the one registered after the
        failure (which runs before the exit status's hook, and again from
        it).
        """
        log, hooks = Path(self.mktemp()), Path(self.mktemp())
        process = subprocess.run(
            [sys.executable, "-c", EXITING, str(log), str(hooks)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual((process.returncode, process.stderr), (1, ""))
        self.assertEqual(log.read_text(), "Cannot listen for TCP on tcp:1\n")
        ran = hooks.read_text().splitlines()
        self.assertEqual(set(ran), {"after the failure", "before greetd"})
        self.assertEqual(ran.count("before greetd"), 1)


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
