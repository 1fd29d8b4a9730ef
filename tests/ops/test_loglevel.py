"""
Tests for L{greetd.ops.loglevel}.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import LogLevel
from twisted.trial.unittest import SynchronousTestCase

from greetd.ops.loglevel import ACCEPT_ERRORS, LOG_LEVELS, LevelFilter, parseLogLevel
from tests.helpers import closeEvent, legacyEvent


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
            "MetricsSite starting on 9100",
            "GreetingFactory (ProxyHeaderFactory) starting on 9999",
            "(TLS Port 9443 Closed)",
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

    def test_acceptErrorsThrottled(self) -> None:
        """
        Twisted writes a line for each accept that fails for want of
        descriptors, and for each socket its EMFILE recovery closes: each
        kind passes once a minute, however many there are; other lines all
        pass.
        """
        shown: list[dict[str, Any]] = []
        observer = LevelFilter(shown.append, LogLevel.info)

        def accept(format: str, when: float) -> dict[str, Any]:
            return {
                "log_format": format,
                "log_level": LogLevel.info,
                "log_namespace": "twisted.internet.tcp.Port",
                "log_time": when,
                "acceptError": "EMFILE",
                "address": "127.0.0.1:1",
            }

        for second in range(3):
            for _ in range(100):
                for format in sorted(ACCEPT_ERRORS):
                    observer(accept(format, 1000.0 + second * 30))
                observer({"log_format": "other", "log_level": LogLevel.info})
        formats = [event["log_format"] for event in shown]
        self.assertEqual(formats.count("other"), 300)
        for format in ACCEPT_ERRORS:
            self.assertEqual(formats.count(format), 2, format)
