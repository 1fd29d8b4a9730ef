"""
Tests for L{greetd.ops.log}.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import sys
import tempfile
from typing import Any

from twisted.application.app import AppLogger
from twisted.logger import ILogObserver, LogLevel, textFileLogObserver
from twisted.python import syslog
from twisted.scripts.twistd import ServerOptions
from twisted.trial.unittest import SynchronousTestCase

import greetd.ops.log
from greetd.daemon.tap import Options
from greetd.ops.log import jsonLogger
from greetd.ops.logfile import BatchedWriter, LogFiles
from tests.helpers import closeEvent, legacyEvent


class FakeAppLogger(AppLogger):
    """
    twistd's logger, as far as L{jsonLogger} looks: it calls the factory
    from a method, as L{AppLogger.start} does.
    """

    def __init__(self, logFileName: str, nodaemon: bool) -> None:
        self._logfilename = logFileName
        self._nodaemon = nodaemon

    def makeObserver(self) -> ILogObserver:
        return jsonLogger()


def temporaryDirectory(case: SynchronousTestCase) -> str:
    directory = tempfile.mkdtemp()
    case.addCleanup(shutil.rmtree, directory)
    return directory


class JSONLoggerTests(SynchronousTestCase):
    """
    L{jsonLogger} called by twistd outside C{twistd greetd} (a C{.tac}).
    """

    def setUp(self) -> None:
        # Where lines go, not how they are batched, is tested here: every
        # write drains at once (tests/ops/test_logfile.py tests batching).
        self.patch(BatchedWriter, "maxPending", 0)
        self.stdout = io.StringIO()
        self.patch(sys, "stdout", self.stdout)
        self.handlers: dict[int, object] = {}
        self.patch(signal, "signal", self.handlers.__setitem__)

    def test_stdoutOutsideTwistd(self) -> None:
        jsonLogger()(closeEvent())
        self.assertEqual(json.loads(self.stdout.getvalue())["messages"], 3)
        self.assertEqual(self.handlers, {})

    def test_stdoutWithNodaemon(self) -> None:
        for logFileName, nodaemon in [("", True), ("-", True)]:
            FakeAppLogger(logFileName, nodaemon).makeObserver()(closeEvent())
        self.assertEqual(len(self.stdout.getvalue().splitlines()), 2)

    def test_logFile(self) -> None:
        """
        With C{--logfile}, or as a daemon, the lines are appended to twistd's
        log file, which C{SIGUSR1} and C{SIGHUP} reopen.
        """
        path = os.path.join(temporaryDirectory(self), "greetd.log")
        with open(path, "w") as logFile:
            logFile.write("{}\n")
        observer = FakeAppLogger(path, True).makeObserver()
        observer(closeEvent())
        observer(closeEvent(messages=4))
        observer(closeEvent(messages=5, log_level=LogLevel.debug))
        with open(path) as logFile:
            lines = [json.loads(line) for line in logFile]
        self.assertEqual([line.get("messages") for line in lines], [None, 3, 4])
        self.assertEqual(self.stdout.getvalue(), "")
        self.assertEqual(set(self.handlers), {signal.SIGUSR1, signal.SIGHUP})

    def test_daemonDefaultsToTwistdLog(self) -> None:
        """
        A daemon without C{--logfile} logs to C{twistd.log}, as twistd does.
        """
        opened: list[str] = []
        self.patch(LogFiles, "open", lambda self, path: opened.append(path))
        FakeAppLogger("", False).makeObserver()
        self.assertEqual(opened, ["twistd.log"])


class InstallLoggerTests(SynchronousTestCase):
    """
    L{installLogger}, from greetd's options, gives twistd greetd's observer.
    """

    def setUp(self) -> None:
        self.patch(BatchedWriter, "maxPending", 0)
        self.stdout = io.StringIO()
        self.patch(sys, "stdout", self.stdout)
        self.patch(greetd.ops.log.twistdLogger, "factory", None)
        self.directory = temporaryDirectory(self)
        self.path = os.path.join(self.directory, "greetd.log")

    def twistd(self, *argv: str) -> tuple[ServerOptions, Any]:
        """
        Parse a C{twistd} command line as twistd does, and make its log
        observer as its C{AppLogger} would.
        """
        config = ServerOptions()
        config.parseOptions(list(argv))
        return config, config["logger"]()

    def test_textToLogFile(self) -> None:
        """
        Under C{twistd --logfile F greetd}, twistd's logger is greetd's: text
        lines appended to C{F} (twistd's own would rotate it), at
        C{--log-level} and above, in a file its options can reopen.
        """
        with open(self.path, "w") as logFile:
            logFile.write("old line\n")
        config, observer = self.twistd(
            "--logfile", self.path, "greetd", "--log-level", "warn"
        )
        self.assertIs(config["logger"], greetd.ops.log.twistdLogger)
        observer(closeEvent(log_level=LogLevel.warn))
        observer(closeEvent(log_level=LogLevel.info))
        observer(legacyEvent("(TCP Port 9999 Closed)"))
        with open(self.path) as logFile:
            lines = logFile.read().splitlines()
        self.assertEqual(lines[0], "old line")
        self.assertEqual(len(lines), 2)
        self.assertTrue(
            lines[1].endswith(
                "[greetd.protocols.greeting.GreetingProtocol#warn] "
                "Connection from 192.0.2.7:40001 closed: 3 messages"
            ),
            lines[1],
        )
        files = config.subOptions.logFiles.files
        for logFile in files:
            self.addCleanup(logFile.close)
        self.assertEqual([logFile.path for logFile in files], [self.path])

    def test_jsonToStdout(self) -> None:
        """
        C{--logger greetd.ops.log.jsonLogger} keeps JSON, now at the level.
        """
        config, observer = self.twistd(
            "--nodaemon", "--logger", "greetd.ops.log.jsonLogger", "greetd"
        )
        observer(closeEvent())
        observer(closeEvent(log_level=LogLevel.debug))
        [line] = self.stdout.getvalue().splitlines()
        self.assertEqual(json.loads(line)["level"], "info")
        self.assertEqual(config.subOptions.logFiles.files, [])

    def test_syslog(self) -> None:
        """
        With twistd's C{--syslog}, text goes to syslog, at the level.
        """
        emitted: list[dict[str, Any]] = []

        class FakeSyslogObserver:
            def __init__(self, prefix: str) -> None:
                self.prefix = prefix

            def emit(self, eventDict: dict[str, Any]) -> None:
                emitted.append({"prefix": self.prefix, **eventDict})

        self.patch(syslog, "SyslogObserver", FakeSyslogObserver)
        _, observer = self.twistd(
            "--syslog", "--prefix", "gd", "greetd", "--log-level", "warn"
        )
        observer(closeEvent(log_level=LogLevel.error))
        observer(closeEvent())
        [event] = emitted
        self.assertEqual((event["prefix"], event["messages"]), ("gd", 3))
        self.assertEqual(self.stdout.getvalue(), "")

    def test_daemonCannotLogToStdout(self) -> None:
        config = ServerOptions()
        config.parseOptions(["--logfile", "-", "greetd"])
        self.assertRaises(SystemExit, config["logger"])

    def test_otherLoggerLeftAlone(self) -> None:
        config = ServerOptions()
        config.parseOptions(
            ["--logger", "twisted.logger.textFileLogObserver", "greetd"]
        )
        self.assertIs(config["logger"], textFileLogObserver)
        self.assertEqual(config.subOptions.logFiles.files, [])

    def test_withoutTwistd(self) -> None:
        """
        greetd's options parsed on their own leave the logger alone.
        """
        Options().parseOptions([])
        self.assertIsNone(greetd.ops.log.twistdLogger.factory)
