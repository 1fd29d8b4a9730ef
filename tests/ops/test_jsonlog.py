"""
Tests for L{greetd.ops.jsonlog}.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from greetd.ops.jsonlog import eventAsJSONLine
from tests.helpers import closeEvent


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
