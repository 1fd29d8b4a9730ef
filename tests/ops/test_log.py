"""
Tests for L{greetd.ops.log}.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tempfile
from typing import Any

from twisted.logger import Logger, LogLevel
from twisted.python import syslog
from twisted.trial.unittest import SynchronousTestCase

import greetd.log
import greetd.ops.log
from greetd.ops.log import (
    LOGGER_OPTION,
    STDOUT,
    LogOutput,
    deprecatedJsonLogger,
    jsonLogger,
    loggerAsFormat,
)
from greetd.ops.logfile import BatchedWriter
from tests.helpers import closeEvent, legacyEvent


def temporaryDirectory(case: SynchronousTestCase) -> str:
    directory = tempfile.mkdtemp()
    case.addCleanup(shutil.rmtree, directory)
    return directory


class LogOutputTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        # Where lines go, not how they are batched, is tested here: every
        # write drains at once (tests/ops/test_logfile.py tests batching).
        self.patch(BatchedWriter, "maxPending", 0)
        self.stdout = io.StringIO()
        self.patch(sys, "stdout", self.stdout)
        self.path = os.path.join(temporaryDirectory(self), "greetd.log")

    def closeFiles(self, output: LogOutput) -> None:
        for logFile in output.files.files:
            self.addCleanup(logFile.close)


class FollowTwistdTests(LogOutputTestCase):
    """
    L{LogOutput.followTwistd}: where twistd's options say its own logger
    would write.
    """

    def where(self, **twistd: object) -> tuple[str | None, str | None]:
        output = LogOutput()
        output.followTwistd(twistd)
        self.assertTrue(output.twistd)
        return output.where, output.syslogPrefix

    def test_where(self) -> None:
        cases: list[tuple[dict[str, object], tuple[str | None, str | None]]] = [
            ({"nodaemon": True}, (STDOUT, None)),
            ({"nodaemon": True, "logfile": "-"}, (STDOUT, None)),
            ({"nodaemon": True, "logfile": "x.log"}, ("x.log", None)),
            ({"logfile": "x.log"}, ("x.log", None)),
            ({}, ("twistd.log", None)),
            ({"syslog": True, "prefix": "gd"}, (STDOUT, "gd")),
            ({"syslog": True, "prefix": ""}, (STDOUT, "twisted")),
        ]
        for twistd, expected in cases:
            self.assertEqual(self.where(**twistd), expected, twistd)

    def test_daemonToStdoutIsTwistds(self) -> None:
        """
        A daemon told to log to standard output is left to twistd's own
        logger (which refuses, with its own words): no observer.
        """
        output = LogOutput()
        output.followTwistd({"logfile": "-"})
        self.assertIsNone(output.observer())

    def test_anotherLogger(self) -> None:
        """
        When twistd's C{--logger} names a factory, twistd calls it: greetd
        makes no observer, and opens no file.
        """
        output = LogOutput()
        output.followTwistd({"logger": "my.logger", "logfile": self.path})
        self.assertIsNone(output.observer())
        self.assertEqual(output.files.files, [])

    def test_jsonNotToSyslog(self) -> None:
        """
        syslog takes text: JSON goes to the log file even with C{--syslog}.
        """
        output = LogOutput(json=True)
        output.followTwistd({"syslog": True, "logfile": "x.log"})
        self.assertEqual((output.where, output.syslogPrefix), ("x.log", None))


class ObserverTests(LogOutputTestCase):
    """
    L{LogOutput.observer}: the events at the level and above, in the format,
    to the place.
    """

    def test_textToLogFile(self) -> None:
        """
        Text lines appended to the file, at the level and above, in a file
        the output can reopen; Twisted's port lines count as debug.
        """
        with open(self.path, "w") as logFile:
            logFile.write("old line\n")
        output = LogOutput(LogLevel.warn)
        output.where = self.path
        observer = output.observer()
        assert observer is not None
        self.closeFiles(output)
        observer(closeEvent(log_level=LogLevel.warn))
        observer(closeEvent(log_level=LogLevel.info))
        observer(legacyEvent("(TCP Port 9999 Closed)"))
        with open(self.path) as logFile:
            lines = logFile.read().splitlines()
        self.assertEqual(len(lines), 2, lines)
        self.assertEqual(lines[0], "old line")
        self.assertTrue(
            lines[1].endswith(
                "[greetd.protocols.greeting.GreetingProtocol#warn] "
                "Connection from 192.0.2.7:40001 closed: 3 messages"
            ),
            lines[1],
        )
        self.assertEqual([f.path for f in output.files.files], [self.path])

    def test_jsonToStdout(self) -> None:
        output = LogOutput(json=True)
        observer = output.observer()
        assert observer is not None
        observer(closeEvent())
        observer(closeEvent(log_level=LogLevel.debug))
        [line] = self.stdout.getvalue().splitlines()
        self.assertEqual(json.loads(line)["messages"], 3)
        self.assertEqual(output.files.files, [])

    def test_streamOnceObserving(self) -> None:
        """
        The output's stream, where the access log writes, is the observer's
        once the observer has observed an event: an observer made but not
        used (twistd called a C{--logger} instead) leaves it unset.
        """
        output = LogOutput()
        observer = output.observer()
        assert observer is not None
        self.assertIsNone(output.stream)
        observer(closeEvent(log_level=LogLevel.debug))
        stream = output.stream
        assert stream is not None
        stream.write("direct\n")
        stream.drain()
        self.assertEqual(self.stdout.getvalue(), "direct\n")

    def test_syslog(self) -> None:
        """
        To syslog, text, at the level.
        """
        emitted: list[dict[str, Any]] = []

        class FakeSyslogObserver:
            def __init__(self, prefix: str) -> None:
                self.prefix = prefix

            def emit(self, eventDict: dict[str, Any]) -> None:
                emitted.append({"prefix": self.prefix, **eventDict})

        self.patch(syslog, "SyslogObserver", FakeSyslogObserver)
        output = LogOutput(LogLevel.warn)
        output.followTwistd({"syslog": True, "prefix": "gd"})
        observer = output.observer()
        assert observer is not None
        observer(closeEvent(log_level=LogLevel.error))
        observer(closeEvent())
        [event] = emitted
        self.assertEqual((event["prefix"], event["messages"]), ("gd", 3))
        self.assertEqual(self.stdout.getvalue(), "")
        self.assertIsNone(output.stream)

    def test_enabled(self) -> None:
        output = LogOutput(LogLevel.warn)
        self.assertEqual(
            [output.enabled(level) for level in LogLevel.iterconstants()],
            [False, False, True, True, True],
        )


class JSONLoggerTests(LogOutputTestCase):
    """
    L{jsonLogger}, the C{--logger} factory, and its names.
    """

    def test_stdout(self) -> None:
        """
        Called by twistd (with no arguments, in a C{.tac}), it writes JSON
        at C{info} and above to standard output, and installs no handlers.
        """
        observer = jsonLogger()
        observer(closeEvent())
        observer(closeEvent(log_level=LogLevel.debug))
        [line] = self.stdout.getvalue().splitlines()
        self.assertEqual(json.loads(line)["level"], "info")

    def test_names(self) -> None:
        """
        Both of its names, dotted or resolved, mean JSON; another logger, or
        a name that does not resolve (twistd's to report), does not.
        """
        for name in [
            "greetd.ops.log.jsonLogger",
            jsonLogger,
            "greetd.log.jsonLogger",
            deprecatedJsonLogger,
        ]:
            self.assertTrue(loggerAsFormat(name), name)
        for other in ["twisted.logger.textFileLogObserver", "no.such.name", None]:
            self.assertFalse(loggerAsFormat(other), other)

    def test_deprecatedName(self) -> None:
        """
        greetd 0.1's name, C{greetd.log.jsonLogger}, is the same logger with
        a C{DeprecationWarning} and a warning in the log, where an operator
        sees it.
        """
        events: list[dict[str, Any]] = []
        self.patch(greetd.ops.log, "_log", Logger(observer=events.append))
        self.assertIs(greetd.log.jsonLogger, deprecatedJsonLogger)
        observer = greetd.log.jsonLogger()
        [warning] = self.flushWarnings()
        self.assertEqual(warning["category"], DeprecationWarning)
        self.assertIn("--log-format json", warning["message"])
        self.assertEqual(warning["filename"], __file__.replace(".pyc", ".py"))
        observer(closeEvent())
        self.assertEqual(json.loads(self.stdout.getvalue())["messages"], 3)
        self.assertTrue(loggerAsFormat("greetd.log.jsonLogger"))
        [warning] = self.flushWarnings()
        self.assertEqual((warning["filename"], warning["lineno"]), (LOGGER_OPTION, 0))
        self.assertEqual(
            [event["greetdEvent"] for event in events], ["log.deprecated"] * 2
        )
