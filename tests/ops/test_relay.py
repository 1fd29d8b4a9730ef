"""
Tests for L{greetd.ops.relay}: a worker's log, through its parent.
"""

from __future__ import annotations

import io
import json
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st
from twisted.logger import LogLevel, formatEventAsClassicLogText
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from greetd.ops.jsonlog import eventAsJSONLine
from greetd.ops.relay import LogRelay, eventAsRelayLine, workerLogObserver


def event(text: str, **fields: Any) -> dict[str, Any]:
    return {
        "log_format": text,
        "log_time": 1700000000.25,
        "log_level": LogLevel.info,
        "log_namespace": "greetd.x",
        **fields,
    }


class RelayTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.published: list[dict[str, Any]] = []
        self.relay = LogRelay(2, 99, publisher=self.published.append)

    def relayed(self, *events: dict[str, Any]) -> list[dict[str, Any]]:
        """
        C{events} logged in a worker, as its parent publishes them.
        """
        stream = io.StringIO()
        observer = workerLogObserver(stream, LogLevel.debug)
        for logged in events:
            observer(logged)
        self.relay.dataReceived(stream.getvalue().encode("utf-8"))
        return self.published

    def test_systemPrefixed(self) -> None:
        """
        Each line says which worker logged it, before its own system or,
        where it has none (or C{-}), its namespace and level, as the
        parent's lines give them.
        """
        first, second, third = self.relayed(
            event("hi {x}", x=1, log_system="S"),
            event("bare", log_system="-"),
            event("warned", log_level=LogLevel.warn),
        )
        self.assertTrue(
            formatEventAsClassicLogText(first).endswith(" [worker 2 pid 99 S] hi 1\n")
        )
        self.assertTrue(
            formatEventAsClassicLogText(second).endswith(
                " [worker 2 pid 99 greetd.x#info] bare\n"
            )
        )
        self.assertTrue(
            formatEventAsClassicLogText(third).endswith(
                " [worker 2 pid 99 greetd.x#warn] warned\n"
            )
        )

    def test_eventKept(self) -> None:
        """
        Level, time, namespace, the text with its format specifications, and
        the fields the JSON log shows, the worker's identity among them.
        """
        [relayed] = self.relayed(
            event(
                "closed after {duration:.3f}s",
                duration=0.00012345,
                peer="192.0.2.7:1",
                greetdEvent="connection.close",
                log_level=LogLevel.warn,
            )
        )
        record = json.loads(eventAsJSONLine(relayed))
        self.assertEqual(
            {key: record[key] for key in record if key != "timestamp"},
            {
                "level": "warn",
                "namespace": "greetd.x",
                "text": "closed after 0.000s",
                "duration": 0.00012345,
                "peer": "192.0.2.7:1",
                "peerHost": "192.0.2.7",
                "peerPort": 1,
                "greetdEvent": "connection.close",
                "workerSlot": 2,
                "workerPid": 99,
            },
        )
        self.assertEqual(relayed["log_time"], 1700000000.25)

    def test_failureKept(self) -> None:
        try:
            raise ZeroDivisionError("oops")
        except ZeroDivisionError:
            failure = Failure()
        [relayed] = self.relayed(event("oops", log_failure=failure))
        self.assertIn("ZeroDivisionError", formatEventAsClassicLogText(relayed) or "")

    def test_workerFiltersLevel(self) -> None:
        stream = io.StringIO()
        observer = workerLogObserver(stream, LogLevel.warn)
        observer(event("debug", log_level=LogLevel.debug))
        observer(event("info"))
        observer(event("error", log_level=LogLevel.error))
        self.relay.dataReceived(stream.getvalue().encode("utf-8"))
        self.assertEqual([e["log_text"] for e in self.published], ["error"])

    def test_linesAcrossChunks(self) -> None:
        line = eventAsRelayLine(event("split")).encode("utf-8")
        for index in range(len(line)):
            self.relay.dataReceived(line[index : index + 1])
        self.assertEqual([e["log_text"] for e in self.published], ["split"])

    def test_otherLines(self) -> None:
        """
        A line that is not an event (a traceback on standard error, a
        print) is published as text, escaped, at the relay's level; blank
        lines are skipped, and an unfinished last line is published when
        the pipe closes.
        """
        relay = LogRelay(1, 7, LogLevel.error, self.published.append)
        relay.dataReceived(b'Traceback \x1b[31m\n\n{"not": "an event"}\r\n{bad\nlast')
        relay.connectionLost()
        texts = [formatEventAsClassicLogText(e) or "" for e in self.published]
        self.assertEqual(
            [text.split(" ", 1)[1] for text in texts],
            [
                "[worker 1 pid 7 greetd.worker#error] Traceback \\x1b[31m\n",
                '[worker 1 pid 7 greetd.worker#error] {"not": "an event"}\n',
                "[worker 1 pid 7 greetd.worker#error] {bad\n",
                "[worker 1 pid 7 greetd.worker#error] last\n",
            ],
        )
        self.assertEqual({e["log_level"] for e in self.published}, {LogLevel.error})

    def test_longLinesBounded(self) -> None:
        """
        A line longer than L{LogRelay.maxLineLength} is published in pieces:
        the parent never holds more than that of a worker's line.
        """
        self.patch(LogRelay, "maxLineLength", 10)
        self.relay.dataReceived(b"x" * 25)
        self.assertEqual(len(self.relay._buffer), 5)
        self.relay.dataReceived(b"\n")
        self.assertEqual(
            [e["line"] for e in self.published], ["x" * 10, "x" * 10, "x" * 5]
        )

    @given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=5))
    def test_anyBytes(self, data: bytes, cuts: list[int]) -> None:
        """
        Whatever a worker writes that is not an event, however it is cut
        into reads, the relay publishes one printable event per non-blank
        line and nothing else.
        """
        assume(not any(line.startswith(b"{") for line in data.split(b"\n")))
        published: list[dict[str, Any]] = []
        relay = LogRelay(1, 7, publisher=published.append)
        previous = 0
        for cut in [*sorted(cuts), len(data)]:
            relay.dataReceived(data[previous:cut])
            previous = max(previous, cut)
        relay.connectionLost()
        lines = [line for line in data.split(b"\n") if line.strip()]
        self.assertEqual(len(published), len(lines))
        for relayed in published:
            text = formatEventAsClassicLogText(relayed) or ""
            self.assertTrue(text[:-1].isprintable() and text.isascii(), text)
