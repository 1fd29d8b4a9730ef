"""
Tests for L{greetd.ops.accesslog}: the fast access log writes exactly the
lines Twisted's logger would, text or JSON, at the log's level.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

from twisted.logger import LogLevel, formatEventAsClassicLogText
from twisted.trial.unittest import SynchronousTestCase

from greetd.core.accessline import Closed
from greetd.ops.accesslog import FastAccessLog
from greetd.ops.jsonlog import eventAsJSONLine
from greetd.ops.log import LogOutput
from greetd.ops.workerlog import markWorker
from greetd.protocols.accesslog import LoggerAccessLog
from tests.helpers import capturingAccessLog

#: A moment with a fraction, for the JSON timestamp's microseconds.
NOW = 1764420000.25

CLOSED = Closed("[::1]:5", "::1", 5, 2.5, 10, 55, 137, "exit")


class FakeStream(io.StringIO):
    """
    Stands in for the batched stream (L{greetd.ops.logfile.BatchedWriter}),
    making what it is to make later at once.
    """

    def writeLater(self, line: tuple[Any, ...]) -> None:
        self.write(line[0](*line[1:]))


class FastAccessLogTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.patch(time, "time", lambda: NOW)
        self.output = LogOutput()
        self.stream = FakeStream()
        self.output.stream = self.stream  # type: ignore[assignment]
        self.accessLog = FastAccessLog(self.output, LoggerAccessLog())

    def loggerEvent(self, connection: Closed = CLOSED) -> dict[str, Any]:
        """
        The event L{LoggerAccessLog} makes of the same connection.
        """
        accessLog, events = capturingAccessLog()
        accessLog.closed(connection)
        [event] = events
        event["log_time"] = NOW
        event["log_namespace"] = "greetd.access"
        return event

    def test_textAsTwistdWritesIt(self) -> None:
        self.accessLog.closed(CLOSED)
        self.assertEqual(
            self.stream.getvalue(), formatEventAsClassicLogText(self.loggerEvent())
        )
        self.assertIn(
            "[greetd.access#info] Connection from [::1]:5 closed (exit) after "
            "2.500s: 10 messages, 55 bytes received, 137 bytes sent\n",
            self.stream.getvalue(),
        )

    def test_jsonAsTheJSONLoggerWritesIt(self) -> None:
        self.output.json = True
        self.accessLog.closed(CLOSED)
        mine = json.loads(self.stream.getvalue())
        theirs = json.loads(eventAsJSONLine(self.loggerEvent()))
        theirs["peerHost"], theirs["peerPort"] = "::1", 5
        self.assertEqual(mine, theirs)
        self.assertEqual(mine["timestamp"], "2025-11-29T12:40:00.250000+00:00")

    def test_balancerAFieldOfItsOwn(self) -> None:
        """
        For a client a PROXY header named, the JSON record's C{peer} is the
        client and C{via} the balancer, as the JSON logger writes them; the
        text shows both.
        """
        proxied = CLOSED._replace(via="127.0.0.1:40000")
        self.output.json = True
        self.accessLog.closed(proxied)
        mine = json.loads(self.stream.getvalue())
        theirs = json.loads(eventAsJSONLine(self.loggerEvent(proxied)))
        theirs["peerHost"], theirs["peerPort"] = "::1", 5
        self.assertEqual(mine, theirs)
        self.assertEqual(
            (mine["peer"], mine["via"], mine["peerHost"]),
            ("[::1]:5", "127.0.0.1:40000", "::1"),
        )
        self.assertIn(
            "Connection from [::1]:5 via 127.0.0.1:40000 closed", mine["text"]
        )
        self.assertNotIn("via", json.loads(eventAsJSONLine(self.loggerEvent())))

    def test_workerAsItsEventsAreMarked(self) -> None:
        """
        In a pool's worker, which writes its own lines, the line is marked
        as the worker's, as its other events are (L{markWorker}): the
        system in text, the fields in JSON.
        """
        self.output.markWorker(2, 99)
        event = markWorker(self.loggerEvent(), 2, 99)
        self.accessLog.closed(CLOSED)
        self.assertEqual(self.stream.getvalue(), formatEventAsClassicLogText(event))
        self.assertIn(
            "[worker 2 pid 99 greetd.access#info] Connection from",
            self.stream.getvalue(),
        )
        self.stream.truncate(0)
        self.stream.seek(0)
        self.output.json = True
        self.accessLog.closed(CLOSED)
        mine = json.loads(self.stream.getvalue())
        theirs = json.loads(eventAsJSONLine(event))
        theirs["peerHost"], theirs["peerPort"] = "::1", 5
        self.assertEqual(mine, theirs)
        self.assertEqual((mine["workerSlot"], mine["workerPid"]), (2, 99))

    def test_peerEscapedInJSON(self) -> None:
        self.output.json = True
        self.accessLog.closed(Closed('a"b\\\\x07', None, None, 0.0, 0, 0, 0, "closed"))
        record = json.loads(self.stream.getvalue())
        self.assertEqual(record["peer"], 'a"b\\\\x07')
        self.assertNotIn("peerHost", record)

    def test_levels(self) -> None:
        self.assertFalse(self.accessLog.wantsOpened())
        self.output.level = LogLevel.debug
        self.assertTrue(self.accessLog.wantsOpened())
        self.output.level = LogLevel.warn
        self.accessLog.closed(CLOSED)
        self.assertEqual(self.stream.getvalue(), "")

    def test_timestampOncePerSecond(self) -> None:
        """
        The timestamp is formatted once a second, not once a line.
        """
        stamps: list[int] = []
        original = self.accessLog._stamp
        self.patch(
            self.accessLog,
            "_stamp",
            lambda second: (stamps.append(second), original(second)),
        )
        for _ in range(1000):
            self.accessLog.closed(CLOSED)
        self.assertEqual(stamps, [int(NOW)])
        self.assertEqual(self.stream.getvalue().count("\n"), 1000)

    def test_throughTwistedLoggerWithoutStream(self) -> None:
        """
        Before twistd has set up the log, in a worker (whose parent relays
        its log) or with syslog, lines go through Twisted's logger.
        """
        self.output.stream = None
        fallback, events = capturingAccessLog()
        self.accessLog = FastAccessLog(self.output, fallback)
        self.assertTrue(self.accessLog.wantsOpened())
        self.accessLog.closed(CLOSED)
        [event] = events
        self.assertEqual(event["ended"], "exit")
