"""
Tests for L{greetd.greeting}.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.address import IPv6Address
from twisted.internet.task import Clock
from twisted.logger import formatEvent
from twisted.trial.unittest import SynchronousTestCase

from greetd.greeting import GreetingFactory, GreetingProtocol
from greetd.template import ReplyTemplate
from tests.helpers import captureLogs, connect


class SeedBehaviourTests(SynchronousTestCase):
    """
    The default configuration answers as the seed's server does.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.factory = GreetingFactory(clock=self.clock)
        self.protocol, self.transport = connect(self.factory)

    def test_banner(self) -> None:
        self.assertEqual(self.transport.value(), b"Welcome")

    def test_replies(self) -> None:
        self.transport.clear()
        for name in (b"Michael", b"Tracy", b"Sarah"):
            self.protocol.dataReceived(name)
        self.assertEqual(
            self.transport.value(), b"Hello, Michael!Hello, Tracy!Hello, Sarah!"
        )
        self.assertEqual(self.protocol.messages, 3)

    def test_exitCloses(self) -> None:
        self.protocol.dataReceived(b"Michael")
        self.protocol.dataReceived(b"exit")
        self.assertEqual(self.transport.value(), b"WelcomeHello, Michael!")
        self.assertFalse(self.transport.connected)
        self.assertNotIn(self.protocol, self.factory.connections)

    def test_nothingAfterExit(self) -> None:
        """
        After C{exit}, the rest of the chunk and anything later is ignored.
        """
        self.protocol.dataReceived(b"A\nexit\nB\n")
        self.protocol.dataReceived(b"C\n")
        self.assertEqual(self.transport.value(), b"WelcomeHello, A!\n")

    def test_exitWaitsForEarlierReplies(self) -> None:
        """
        C{exit} closes with C{loseConnection}, which writes what is queued
        first, rather than C{abortConnection}.
        """
        self.transport.disconnecting = False
        self.protocol.dataReceived(b"A\r\nexit\r\n")
        self.assertTrue(self.protocol.closing)
        self.assertEqual(self.transport.value(), b"WelcomeHello, A!\r\n")

    def test_byteTransparent(self) -> None:
        self.transport.clear()
        self.protocol.dataReceived(b"\xff\xfe\x00z")
        self.assertEqual(self.transport.value(), b"Hello, \xff\xfe\x00z!")

    def test_counters(self) -> None:
        self.protocol.dataReceived(b"Ann\nBob\n")
        self.assertEqual(self.protocol.bytesReceived, 8)
        self.assertEqual(
            self.protocol.bytesSent, len(b"WelcomeHello, Ann!\nHello, Bob!\n")
        )
        self.assertEqual(self.factory.connectionsTotal, 1)


class FramingTests(SynchronousTestCase):
    def test_lineClient(self) -> None:
        """
        The issue's line client: two lines in one write and one line in two.
        """
        protocol, transport = connect(GreetingFactory(clock=Clock()))
        transport.clear()
        protocol.dataReceived(b"Michael\r\nTracy\r\n")
        protocol.dataReceived(b"Sar")
        protocol.dataReceived(b"ah\n")
        self.assertEqual(
            transport.value(), b"Hello, Michael!\r\nHello, Tracy!\r\nHello, Sarah!\n"
        )
        protocol.dataReceived(b"exit\n")
        self.assertFalse(transport.connected)

    def test_lineFramingBannerIsALine(self) -> None:
        protocol, transport = connect(GreetingFactory(framing="line", clock=Clock()))
        protocol.dataReceived(b"Ann")
        self.assertEqual(transport.value(), b"Welcome\r\n")
        protocol.dataReceived(b"\n")
        self.assertEqual(transport.value(), b"Welcome\r\nHello, Ann!\n")

    def test_rawFramingNeverSplits(self) -> None:
        protocol, transport = connect(GreetingFactory(framing="raw", clock=Clock()))
        transport.clear()
        protocol.dataReceived(b"A\nB\n")
        self.assertEqual(transport.value(), b"Hello, A\nB\n!")

    def test_noBanner(self) -> None:
        _, transport = connect(GreetingFactory(welcome=b"", clock=Clock()))
        self.assertEqual(transport.value(), b"")
        _, transport = connect(
            GreetingFactory(welcome=b"", framing="line", clock=Clock())
        )
        self.assertEqual(transport.value(), b"")

    def test_customWelcomeAndReply(self) -> None:
        factory = GreetingFactory(
            welcome=b"Hi", template=ReplyTemplate("<%s>"), clock=Clock()
        )
        protocol, transport = connect(factory)
        protocol.dataReceived(b"x\r\n")
        self.assertEqual(transport.value(), b"Hi<x>\r\n")


class MaxLengthTests(SynchronousTestCase):
    def test_rawTooLong(self) -> None:
        protocol, transport = connect(GreetingFactory(maxLength=4, clock=Clock()))
        transport.clear()
        protocol.dataReceived(b"12345")
        self.assertEqual(transport.value(), b"Error: message longer than 4 bytes")
        self.assertFalse(transport.connected)

    def test_lineTooLongAfterEarlierReplies(self) -> None:
        protocol, transport = connect(GreetingFactory(maxLength=4, clock=Clock()))
        transport.clear()
        protocol.dataReceived(b"ab\r\nabcde\r\nnot answered\r\n")
        self.assertEqual(
            transport.value(),
            b"Hello, ab!\r\nError: message longer than 4 bytes\r\n",
        )
        self.assertFalse(transport.connected)

    def test_unfinishedLineTooLong(self) -> None:
        protocol, transport = connect(
            GreetingFactory(framing="line", maxLength=4, clock=Clock())
        )
        transport.clear()
        protocol.dataReceived(b"abcd")
        self.assertTrue(transport.connected)
        protocol.dataReceived(b"e")
        self.assertEqual(transport.value(), b"Error: message longer than 4 bytes\r\n")
        self.assertFalse(transport.connected)

    def test_exactlyMaxLength(self) -> None:
        protocol, transport = connect(GreetingFactory(maxLength=4, clock=Clock()))
        transport.clear()
        protocol.dataReceived(b"abcd")
        self.assertEqual(transport.value(), b"Hello, abcd!")


class FactoryArgumentTests(SynchronousTestCase):
    def test_badFraming(self) -> None:
        self.assertRaises(ValueError, GreetingFactory, framing="words")

    def test_badMaxLength(self) -> None:
        self.assertRaises(ValueError, GreetingFactory, maxLength=0)

    def test_defaultClockIsReactor(self) -> None:
        from twisted.internet import reactor

        self.assertIs(GreetingFactory().clock, reactor)


class LogTests(SynchronousTestCase):
    """
    One event when a connection opens and one when it closes, none per
    message, and nothing from the peer unescaped.
    """

    def test_openAndClose(self) -> None:
        events = captureLogs(self, GreetingProtocol)
        clock = Clock()
        protocol, _ = connect(
            GreetingFactory(clock=clock), IPv6Address("TCP", "::1", 5)
        )
        for _ in range(10):
            protocol.dataReceived(b"\x1b[2J\n")
        clock.advance(2.5)
        protocol.dataReceived(b"exit\n")
        self.assertEqual(
            [event["greetdEvent"] for event in events],
            ["connection.open", "connection.close"],
        )
        self.assertEqual(formatEvent(events[0]), "Connection from [::1]:5 opened")
        self.assertEqual(
            formatEvent(events[1]),
            "Connection from [::1]:5 closed after 2.500s: 10 messages, "
            "55 bytes received, 137 bytes sent",
        )
        self.assertEqual(events[1]["peer"], "[::1]:5")
        for event in events:
            self.assertNotIn("\x1b", formatEvent(event))


class RobustnessTests(SynchronousTestCase):
    @given(
        chunks=st.lists(st.binary(max_size=300), max_size=30),
        framing=st.sampled_from(["auto", "line", "raw"]),
    )
    def test_anyInputIsSafe(self, chunks: list[bytes], framing: str) -> None:
        """
        Whatever arrives, the protocol answers or closes, and never keeps
        more than C{maxLength} bytes (and a CR) of an unfinished message.
        """
        factory = GreetingFactory(framing=framing, maxLength=64, clock=Clock())
        protocol, transport = connect(factory)
        for chunk in chunks:
            protocol.dataReceived(chunk)
            self.assertLessEqual(len(protocol._framer._buffer), 65)
        if transport.connected:
            self.assertFalse(protocol.closing)
