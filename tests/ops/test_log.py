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
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.logger import ILogObserver, LogLevel, textFileLogObserver
from twisted.python import syslog
from twisted.python.failure import Failure
from twisted.scripts.twistd import ServerOptions
from twisted.trial.unittest import SynchronousTestCase

import greetd.ops.log
from greetd.daemon.tap import Options
from greetd.ops.log import (
    LOG_LEVELS,
    LevelFilter,
    eventAsJSONLine,
    jsonLogger,
    parseLogLevel,
)
from greetd.ops.logfile import BatchedWriter, LogFiles


def closeEvent(**fields: object) -> dict[str, Any]:
    """
    A connection.close event as L{greetd.protocols.greeting} logs it.
    """
    event: dict[str, Any] = {
        "log_time": 1700000000.25,
        "log_level": LogLevel.info,
        "log_namespace": "greetd.protocols.greeting.GreetingProtocol",
        "log_format": "Connection from {peer} closed: {messages} messages",
        "peer": "192.0.2.7:40001",
        "messages": 3,
        "greetdEvent": "connection.close",
    }
    event.update(fields)
    return event


class EventAsJSONLineTests(SynchronousTestCase):
    def parse(self, event: dict[str, Any]) -> dict[str, Any]:
        line = eventAsJSONLine(event)
        self.assertTrue(line.endswith("\n"))
        self.assertNotIn("\n", line[:-1])
        self.assertTrue(line.isascii())
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    def test_connectionEvent(self) -> None:
        self.assertEqual(
            self.parse(closeEvent()),
            {
                "timestamp": "2023-11-14T22:13:20.250000+00:00",
                "level": "info",
                "namespace": "greetd.protocols.greeting.GreetingProtocol",
                "text": "Connection from 192.0.2.7:40001 closed: 3 messages",
                "peerHost": "192.0.2.7",
                "peerPort": 40001,
                "peer": "192.0.2.7:40001",
                "messages": 3,
                "greetdEvent": "connection.close",
            },
        )

    def test_peers(self) -> None:
        for peer, expected in [
            ("[::1]:9", {"peerHost": "::1", "peerPort": 9}),
            (IPv6Address("TCP", "::1", 9), {"peerHost": "::1", "peerPort": 9}),
            (
                IPv4Address("UDP", "10.0.0.1", 5),
                {"peerHost": "10.0.0.1", "peerPort": 5},
            ),
            ("unix:/run/g.sock", {}),
            (None, {}),
        ]:
            record = self.parse(closeEvent(peer=peer))
            self.assertEqual(
                {key: record.get(key) for key in expected}, expected, str(peer)
            )
            if not expected:
                self.assertNotIn("peerHost", record)

    def test_unsafeValues(self) -> None:
        """
        Bytes are escaped, never written raw; other values become JSON that
        says what they were.
        """
        record = self.parse(
            closeEvent(
                payload=b"\xff\x1b[31m\n",
                ratio=float("nan"),
                when=object,
                nested={"k": (1, b"\x00")},
                text="\u2028\x1b",
            )
        )
        self.assertEqual(record["payload"], "\\xff\\x1b[31m\\n")
        self.assertEqual(record["ratio"], "nan")
        self.assertEqual(record["when"], "<class 'object'>")
        self.assertEqual(record["nested"], {"k": [1, "\\x00"]})
        self.assertEqual(record["field_text"], "\u2028\x1b")
        self.assertNotIn("\x1b", eventAsJSONLine(closeEvent(payload=b"\x1b")))

    def test_collisionsKept(self) -> None:
        record = self.parse(closeEvent(level="mine", timestamp=5))
        self.assertEqual(record["level"], "info")
        self.assertEqual(
            (record["field_level"], record["field_timestamp"]), ("mine", 5)
        )

    def test_failure(self) -> None:
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            failure = Failure()
        record = self.parse(closeEvent(log_failure=failure, log_level=LogLevel.error))
        self.assertEqual(record["level"], "error")
        self.assertIn("ZeroDivisionError", record["failure"])

    def test_legacyEvent(self) -> None:
        """
        A C{log.msg} event keeps its text, not its copies of it.
        """
        record = self.parse(
            {
                "log_namespace": "log_legacy",
                "log_level": LogLevel.info,
                "log_time": 0.0,
                "log_format": "{log_text}",
                "log_text": "UDP Port 5 Closed",
                "message": ("UDP Port 5 Closed",),
                "time": 0.0,
                "isError": 0,
                "system": "-",
            }
        )
        self.assertEqual(
            set(record), {"timestamp", "level", "namespace", "text", "system"}
        )


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


def legacyEvent(text: str) -> dict[str, Any]:
    """
    An event from C{twisted.python.log.msg(text)}, as observers see it.
    """
    return {
        "log_namespace": "log_legacy",
        "log_level": LogLevel.info,
        "log_format": "{log_text}",
        "log_text": text,
        "log_time": 1700000000.25,
        "log_system": "-",
        "message": (text,),
    }


class LevelTests(SynchronousTestCase):
    def test_parse(self) -> None:
        self.assertEqual(LOG_LEVELS, ("debug", "info", "warn", "error", "critical"))
        for name in LOG_LEVELS:
            self.assertEqual(parseLogLevel(name).name, name)
        for bad in ("warning", "INFO", "", "trace"):
            self.assertRaises(ValueError, parseLogLevel, bad)

    def test_filter(self) -> None:
        """
        Events below the level are dropped; those at it or above pass, and
        an event without a level counts as C{info}.
        """
        events: list[dict[str, Any]] = []
        observer = LevelFilter(events.append, LogLevel.warn)
        for level in LogLevel.iterconstants():
            observer(closeEvent(log_level=level))
        observer({"log_format": "no level"})
        self.assertEqual(
            [event["log_level"] for event in events],
            [LogLevel.warn, LogLevel.error, LogLevel.critical],
        )
        LevelFilter(events.append, LogLevel.info)({"log_format": "no level"})
        self.assertEqual(events[-1], {"log_format": "no level"})

    def test_portAnnouncementsAreDebug(self) -> None:
        """
        Twisted's own lines for a port opening and closing are C{debug}
        lines: greetd's C{Serving TCP on ...} says it once.
        """
        announcements = [
            "GreetingFactory starting on 9999",
            "GreetingFactory (TLS) starting on 9443",
            "ReplyProtocol starting on 9999",
            "QuietSite starting on 9100",
            "GreetingFactory starting on '/run/greetd.sock'",
            "(TCP Port 9999 Closed)",
            "(UDP Port 9999 Closed)",
            "(UNIX Port /run/greetd.sock Closed)",
        ]
        others = [
            legacyEvent("Received SIGTERM, shutting down."),
            legacyEvent("GreetingFactory starting on 9999, and more\nlines"),
            {**legacyEvent("(TCP Port 9999 Closed)"), "log_namespace": "greetd.x"},
        ]
        shown: list[dict[str, Any]] = []
        observer = LevelFilter(shown.append, LogLevel.info)
        for text in announcements:
            observer(legacyEvent(text))
        for event in others:
            observer(event)
        self.assertEqual(shown, others)
        debug: list[dict[str, Any]] = []
        observer = LevelFilter(debug.append, LogLevel.debug)
        for text in announcements:
            observer(legacyEvent(text))
        self.assertEqual([event["log_text"] for event in debug], announcements)
        self.assertEqual({event["log_level"] for event in debug}, {LogLevel.debug})


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
