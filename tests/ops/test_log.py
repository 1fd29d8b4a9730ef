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
from twisted.logger import FileLogObserver, LogLevel
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

import greetd.ops.log
from greetd.ops.log import eventAsJSONLine, jsonLogger


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

    def makeObserver(self) -> FileLogObserver:
        return jsonLogger()


class JSONLoggerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.stdout = io.StringIO()
        self.patch(sys, "stdout", self.stdout)

    def test_stdoutOutsideTwistd(self) -> None:
        jsonLogger()(closeEvent())
        self.assertEqual(json.loads(self.stdout.getvalue())["messages"], 3)

    def test_stdoutWithNodaemon(self) -> None:
        for logFileName, nodaemon in [("", True), ("-", True)]:
            FakeAppLogger(logFileName, nodaemon).makeObserver()(closeEvent())
        self.assertEqual(len(self.stdout.getvalue().splitlines()), 2)

    def test_logFile(self) -> None:
        """
        With C{--logfile}, or as a daemon, the lines go to twistd's log file,
        which C{SIGUSR1} rotates.
        """
        self.patch(signal, "signal", lambda *args: None)
        self.patch(signal, "getsignal", lambda signum: None)
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "greetd.log")
        observer = FakeAppLogger(path, True).makeObserver()
        observer(closeEvent())
        observer(closeEvent(messages=4))
        with open(path) as logFile:
            lines = [json.loads(line) for line in logFile]
        self.assertEqual([line["messages"] for line in lines], [3, 4])
        self.assertEqual(self.stdout.getvalue(), "")

    def test_daemonDefaultsToTwistdLog(self) -> None:
        """
        A daemon without C{--logfile} logs to C{twistd.log}, as twistd does,
        and C{SIGUSR1} is set up to rotate it (unless something else already
        handles C{SIGUSR1}).
        """
        opened: list[str] = []
        installed: list[int] = []
        handled: dict[int, object] = {}

        def fromFullPath(path: str) -> io.StringIO:
            opened.append(path)
            return io.StringIO()

        self.patch(greetd.ops.log.LogFile, "fromFullPath", fromFullPath)
        self.patch(signal, "signal", lambda signum, handler: installed.append(signum))
        self.patch(signal, "getsignal", handled.get)
        FakeAppLogger("", False).makeObserver()
        handled[signal.SIGUSR1] = print
        FakeAppLogger("", False).makeObserver()
        self.assertEqual(opened, ["twistd.log", "twistd.log"])
        self.assertEqual(installed, [signal.SIGUSR1])
