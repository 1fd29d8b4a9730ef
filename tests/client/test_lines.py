"""
Tests for L{greetd.client.lines}.
"""

from __future__ import annotations

from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from greetd.client.lines import LineNames


class LineNamesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.names = LineNames(maxLength=10)
        self.transport = StringTransport()
        self.names.makeConnection(self.transport)

    def take(self, count: int) -> list[bytes | None]:
        """
        The next C{count} names, which must be available now.
        """
        return [self.successResultOf(self.names.nextName()) for _ in range(count)]

    def test_lines(self) -> None:
        """
        Lines end at LF with an optional CR; blank lines are skipped; a last
        line without LF counts.
        """
        self.names.dataReceived(b"Ann\r\n\nBo")
        self.assertEqual(self.take(1), [b"Ann"])
        waiting = self.names.nextName()
        self.assertNoResult(waiting)
        self.names.dataReceived(b"b\nCid")
        self.assertEqual(self.successResultOf(waiting), b"Bob")
        self.names.readConnectionLost()
        self.assertEqual(self.take(2), [b"Cid", None])

    def test_waitsForTyping(self) -> None:
        waiting = self.names.nextName()
        self.assertNoResult(waiting)
        self.names.dataReceived(b"Ann\n")
        self.assertEqual(self.successResultOf(waiting), b"Ann")

    def test_exitEnds(self) -> None:
        self.names.dataReceived(b"Ann\nexit\nBob\n")
        self.assertEqual(self.take(3), [b"Ann", b"exit", None])

    def test_pausesReading(self) -> None:
        """
        Reading pauses while names wait, and resumes once they are taken.
        """
        self.names.dataReceived(b"Ann\nBob\n")
        self.assertEqual(self.transport.producerState, "paused")
        self.take(2)
        self.assertEqual(self.transport.producerState, "producing")

    def test_badLines(self) -> None:
        for data, message in [
            (b"a\rb\n", "a name cannot contain CR or LF: 'a\\rb'"),
            (b"12345678901", "a line is longer than 10 bytes"),
        ]:
            names = LineNames(maxLength=10)
            names.makeConnection(StringTransport())
            names.dataReceived(b"Ann\n" + data)
            self.assertEqual(self.successResultOf(names.nextName()), b"Ann")
            failure = self.failureResultOf(names.nextName(), ValueError)
            self.assertEqual(str(failure.value), message)

    def test_close(self) -> None:
        closed = self.names.close()
        self.assertTrue(self.transport.disconnecting)
        self.assertNoResult(closed)
        self.names.connectionLost()
        self.successResultOf(closed)
        self.successResultOf(self.names.close())
