"""
Tests for L{greetd.protocols.greeting}.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.logger import LogLevel, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from greetd.core.access import AccessPolicy, parseNetwork
from greetd.core.accessline import ENDINGS
from greetd.core.limits import ConnectionLimiter
from greetd.core.template import ReplyTemplate
from greetd.protocols import flow
from greetd.protocols.admission import REFUSAL_LINES, Admission
from greetd.protocols.greeter import GreetingProtocol
from greetd.protocols.greeting import GreetingFactory
from tests.helpers import captureLogs, capturingAccessLog, connect


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

    def test_exitBeforeTooLong(self) -> None:
        """
        A message too long after C{exit} in the same chunk is never reached:
        the client said goodbye, and gets no error.
        """
        protocol, transport = connect(GreetingFactory(maxLength=4, clock=Clock()))
        transport.clear()
        protocol.dataReceived(b"A\nexit\nmuch too long\n")
        self.assertEqual(transport.value(), b"Hello, A!\n")
        self.assertEqual(protocol.ended, "exit")
        self.assertEqual(protocol.factory.errors["length"], 0)

    def test_chunkAnsweredInOneWrite(self) -> None:
        """
        The replies to every message of a chunk go out in one write, one
        system call for a pipelining client rather than one a message.
        """
        writes: list[bytes] = []
        self.patch(self.transport, "write", writes.append)
        self.protocol.dataReceived(b"A\nB\r\nC\n")
        self.assertEqual(writes, [b"Hello, A!\nHello, B!\r\nHello, C!\n"])
        self.assertEqual(self.protocol.messages, 3)

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
    The access log: a debug event when a connection opens and an info line
    when it closes, saying how it ended; none per message, and nothing from
    the peer unescaped.
    """

    def test_openAndClose(self) -> None:
        accessLog, events = capturingAccessLog()
        clock = Clock()
        protocol, _ = connect(
            GreetingFactory(clock=clock, accessLog=accessLog),
            IPv6Address("TCP", "::1", 5),
        )
        for _ in range(10):
            protocol.dataReceived(b"\x1b[2J\n")
        clock.advance(2.5)
        protocol.dataReceived(b"exit\n")
        self.assertEqual(
            [(event["greetdEvent"], event["log_level"]) for event in events],
            [("connection.open", LogLevel.debug), ("connection.close", LogLevel.info)],
        )
        self.assertEqual(formatEvent(events[0]), "Connection from [::1]:5 opened")
        self.assertEqual(
            formatEvent(events[1]),
            "Connection from [::1]:5 closed (exit) after 2.500s: 10 messages, "
            "55 bytes received, 137 bytes sent",
        )
        self.assertEqual(
            {key: events[1][key] for key in ("peer", "messages", "ended")},
            {"peer": "[::1]:5", "messages": 10, "ended": "exit"},
        )
        for event in events:
            self.assertNotIn("\x1b", formatEvent(event))

    def test_endings(self) -> None:
        """
        Each way a connection ends has its word in the access log.
        """
        accessLog, events = capturingAccessLog()
        clock = Clock()
        factory = GreetingFactory(
            clock=clock,
            idleTimeout=10,
            maxLength=4,
            limiter=ConnectionLimiter(),
            accessLog=accessLog,
        )
        connect(factory)[1].loseConnection()
        reset, _ = connect(factory)
        reset.connectionLost(Failure(ConnectionLost()))
        connect(factory)[0].dataReceived(b"toolong\n")
        connect(factory)
        clock.advance(10)
        connect(factory)
        factory.closeAll(5)
        clock.advance(5)
        ended = [event["ended"] for event in events if "ended" in event]
        self.assertEqual(
            ended, ["closed", "reset", "error", "idle-timeout", "shutdown"]
        )
        self.assertTrue(set(ended) <= set(ENDINGS))

    def test_refusalsLoggedOncePerMinute(self) -> None:
        """
        A flood of refusals from one source writes one access line and one
        refusal line a minute, however many are refused; every refusal is
        counted.  Another source gets its own lines.
        """
        accessLog, events = capturingAccessLog()
        refusals = captureLogs(self, Admission)
        clock = Clock()
        factory = GreetingFactory(
            clock=clock, limiter=ConnectionLimiter(0, 1, 0), accessLog=accessLog
        )
        connect(factory)
        for _ in range(100):
            connect(factory)
        other = IPv4Address("TCP", "192.0.2.8", 1)
        connect(factory, other)
        connect(factory, other)
        clock.advance(60)
        connect(factory)
        closed = [
            event for event in events if event["greetdEvent"] == "connection.close"
        ]
        self.assertEqual(len(closed), 3)
        self.assertEqual({event["ended"] for event in closed}, {"refused"})
        self.assertEqual(len(refusals), 3)
        self.assertEqual(factory.admission.refused["max-per-ip"], 102)

    def test_refusedInAccessLog(self) -> None:
        accessLog, events = capturingAccessLog()
        factory = GreetingFactory(
            clock=Clock(), limiter=ConnectionLimiter(0, 0, 1), accessLog=accessLog
        )
        connect(factory)
        connect(factory)
        self.assertEqual(
            [(event["greetdEvent"], event.get("ended")) for event in events],
            [("connection.open", None), ("connection.close", "refused")],
        )
        self.assertEqual(events[1]["bytesSent"], len(REFUSAL_LINES["rate-per-ip"]))
        self.assertEqual(factory.admission.limiter.open, 1)


_chunk = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"exit", b"exit\n", b"exit\r\n", b"\r", b"\n", b"\r\n", b"\x00"]),
    st.integers(1, 200).map(lambda size: b"x" * size),
)


class RobustnessTests(SynchronousTestCase):
    @given(
        chunks=st.lists(_chunk, max_size=30),
        framing=st.sampled_from(["auto", "line", "raw"]),
        resetAfter=st.one_of(st.none(), st.integers(0, 30)),
    )
    def test_anyInputIsSafe(
        self, chunks: list[bytes], framing: str, resetAfter: int | None
    ) -> None:
        """
        Whatever arrives (invalid UTF-8, NUL, lone CRs, endless lines, C{exit}
        anywhere, a reset midway), the protocol answers or closes, never keeps
        more than C{maxLength} bytes (and a CR) of an unfinished message, and
        leaves the factory's bookkeeping right.
        """
        factory = GreetingFactory(
            framing=framing,
            maxLength=64,
            clock=Clock(),
            limiter=ConnectionLimiter(maxPerHost=1),
        )
        protocol, transport = connect(factory)
        for index, chunk in enumerate(chunks):
            if index == resetAfter:
                transport.loseConnection()
            protocol.dataReceived(chunk)
            self.assertLessEqual(len(protocol._framer._buffer), 65)
        self.assertEqual(transport.connected, protocol in factory.connections)
        if transport.connected:
            self.assertFalse(protocol.closing)
        transport.loseConnection()
        self.assertEqual(
            (factory.connections, factory.admission.limiter.open), (set(), 0)
        )


class ConnectionLimitTests(SynchronousTestCase):
    """
    A connection over a limit is told so in one line and closed; the ones
    already open are untouched.
    """

    def test_overLimit(self) -> None:
        events = captureLogs(self, Admission)
        clock = Clock()
        factory = GreetingFactory(clock=clock, limiter=ConnectionLimiter(1))
        first, firstTransport = connect(factory)
        _, secondTransport = connect(factory)
        self.assertEqual(secondTransport.value(), b"Error: too many connections\r\n")
        self.assertTrue(secondTransport.writeClosed)
        clock.advance(Admission.refusalLinger)
        self.assertFalse(secondTransport.connected)
        self.assertEqual(factory.admission.refused["max-connections"], 1)
        self.assertEqual(factory.connections, {first})
        first.dataReceived(b"still here")
        self.assertEqual(firstTransport.value(), b"WelcomeHello, still here!")
        self.assertEqual(
            [formatEvent(event) for event in events],
            ["Refused a connection from 192.0.2.7:40001: max-connections"],
        )
        first.dataReceived(b"exit")
        _, thirdTransport = connect(factory)
        self.assertEqual(thirdTransport.value(), b"Welcome")

    def test_refusalsLoggedOncePerMinute(self) -> None:
        events = captureLogs(self, Admission)
        clock = Clock()
        factory = GreetingFactory(clock=clock, limiter=ConnectionLimiter(0, 1))
        connect(factory)
        for _ in range(100):
            connect(factory)
        clock.advance(60)
        connect(factory)
        self.assertEqual(factory.admission.refused["max-per-ip"], 101)
        self.assertEqual(len(events), 2)

    def test_accessDeniedSilently(self) -> None:
        factory = GreetingFactory(
            clock=Clock(), access=AccessPolicy(deny=[parseNetwork("192.0.2.0/24")])
        )
        _, transport = connect(factory)
        self.assertEqual(transport.value(), b"")
        self.assertFalse(transport.connected)
        self.assertEqual(factory.admission.refused["access"], 1)
        _, allowed = connect(factory, IPv6Address("TCP", "::1", 1))
        self.assertEqual(allowed.value(), b"Welcome")

    def test_ipv6PrefixIsOneSource(self) -> None:
        """
        The addresses of one IPv6 /64 share the per-address limits, while
        logs name each address; another /64 is another source.
        """
        events = captureLogs(self, Admission)
        factory = GreetingFactory(clock=Clock(), limiter=ConnectionLimiter(0, 2))
        for host in ("2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8:0:1::3"):
            connect(factory, IPv6Address("TCP", host, 1))
        self.assertEqual(factory.admission.refused["max-per-ip"], 1)
        self.assertEqual(
            sorted(protocol.peer for protocol in factory.connections),
            ["[2001:db8:0:1::3]:1", "[2001:db8::1]:1", "[2001:db8::2]:1"],
        )
        self.assertEqual(events[0]["peer"], "[2001:db8::3]:1")
        [closing] = [p for p in factory.connections if p.host == "2001:db8::1"]
        closing.dataReceived(b"exit")
        _, transport = connect(factory, IPv6Address("TCP", "2001:db8::4", 1))
        self.assertEqual(transport.value(), b"Welcome")

    def test_ipv6FullAddresses(self) -> None:
        factory = GreetingFactory(
            clock=Clock(), limiter=ConnectionLimiter(0, 1, ipv6Prefix=128)
        )
        for host in ("2001:db8::1", "2001:db8::2", "::ffff:192.0.2.1", "192.0.2.1"):
            connect(factory, IPv6Address("TCP", host, 1))
        self.assertEqual(len(factory.connections), 3)
        self.assertEqual(factory.admission.refused["max-per-ip"], 1)

    def test_unixPeersHaveNoHost(self) -> None:
        factory = GreetingFactory(
            clock=Clock(), access=AccessPolicy(allow=[parseNetwork("127.0.0.1")])
        )
        protocol, transport = connect(factory, UNIXAddress(None))
        self.assertEqual(transport.value(), b"Welcome")
        self.assertIsNone(protocol.host)


class IdleTimeoutTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        # Unlimited: test_oneTimerForAll opens 101 connections from one host.
        self.factory = GreetingFactory(
            clock=self.clock, idleTimeout=10, limiter=ConnectionLimiter()
        )
        self.protocol, self.transport = connect(self.factory)
        self.transport.clear()

    def test_idleClosed(self) -> None:
        self.clock.advance(9.9)
        self.assertTrue(self.transport.connected)
        self.clock.advance(0.1)
        self.assertEqual(self.transport.value(), b"Error: idle timeout")
        self.assertFalse(self.transport.connected)
        self.assertEqual(self.factory.errors["idle-timeout"], 1)

    def test_slowlorisClosed(self) -> None:
        """
        Bytes that never complete a message do not keep a connection open.
        """
        self.protocol.dataReceived(b"a\n")
        self.transport.clear()
        for _ in range(20):
            self.clock.advance(1)
            self.protocol.dataReceived(b"x")
        self.assertEqual(self.transport.value(), b"Error: idle timeout\n")
        self.assertFalse(self.transport.connected)

    def test_talkingKeepsOpen(self) -> None:
        for _ in range(100):
            self.clock.advance(9)
            self.protocol.dataReceived(b"hi\n")
        self.assertTrue(self.transport.connected)
        self.assertEqual(self.protocol.messages, 100)

    def test_off(self) -> None:
        clock = Clock()
        _, transport = connect(
            GreetingFactory(clock=clock, idleTimeout=0, writeTimeout=0)
        )
        self.assertEqual(clock.getDelayedCalls(), [])
        clock.advance(10**6)
        self.assertTrue(transport.connected)

    def test_timerStopsAfterClose(self) -> None:
        """
        While a port serves the factory, the sweep stops at its first tick
        with no connection left, rather than with the last connection (a
        client connecting one at a time would start and stop it every time).
        """
        self.factory.doStart()
        self.protocol.dataReceived(b"exit")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(self.factory.idle.interval)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        connect(self.factory)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)

    def test_inMemoryFactoryStopsWithLastConnection(self) -> None:
        """
        Served by no port (an in-memory test), the factory stops its sweep
        when the last connection closes.
        """
        self.protocol.dataReceived(b"exit")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_oneTimerForAll(self) -> None:
        """
        However many connections are open, one sweep looks for idle ones,
        every tenth of the timeout; each is cut at most that late.
        """
        for _ in range(100):
            connect(self.factory)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.assertEqual(self.factory.idle.interval, 1.0)
        self.clock.advance(5)
        _, lateTransport = connect(self.factory)
        self.clock.advance(5)
        self.assertEqual(len(self.factory.connections), 1)
        self.clock.advance(4)
        self.assertTrue(lateTransport.connected)
        self.clock.advance(1)
        self.assertFalse(lateTransport.connected)
        self.assertEqual(self.factory.errors["idle-timeout"], 102)
        self.clock.advance(self.factory.idle.interval)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_sweepBounds(self) -> None:
        for timeout, interval in [(0.5, 0.1), (10, 1.0), (300, 5.0), (3600, 5.0)]:
            self.assertEqual(
                GreetingFactory(clock=self.clock, idleTimeout=timeout).idle.interval,
                interval,
            )


class WriteTimeoutTests(SynchronousTestCase):
    """
    A peer that reads none of what it is owed is cut after the write
    timeout, open or closing; a closing connection is gone within the idle
    timeout of beginning to close.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.owed = 0
        self.patch(flow, "unsentBytes", lambda transport: self.owed)
        self.factory = GreetingFactory(clock=self.clock, idleTimeout=10, writeTimeout=3)
        self.protocol, self.transport = connect(self.factory)
        # A close waits for the owed bytes, which the peer never takes.
        self.transport.loseConnection = self.hang  # type: ignore[method-assign]

    def hang(self) -> None:
        self.transport.disconnecting = True

    def test_openStalled(self) -> None:
        """
        Owed bytes that do not shrink for the write timeout cut the
        connection, before its idle timeout.
        """
        self.owed = 200000
        self.clock.advance(2.8)
        self.assertFalse(self.transport.aborted)
        self.clock.advance(0.6)
        self.assertTrue(self.transport.aborted)
        self.assertEqual(self.factory.errors["write-timeout"], 1)
        self.assertEqual(self.protocol.ended, "write-timeout")

    def test_progressKeeps(self) -> None:
        """
        A peer that reads, however slowly, is not cut while it talks.
        """
        self.owed = 200000
        for _ in range(50):
            self.clock.advance(1)
            self.owed -= 1
            self.protocol.dataReceived(b"hi\n")
        self.assertFalse(self.transport.aborted)

    def test_growingIsNoProgress(self) -> None:
        """
        Owed bytes that only grow are not being read.
        """
        for _ in range(4):
            self.owed += 1000
            self.clock.advance(1)
        self.assertTrue(self.transport.aborted)

    def test_exitStalled(self) -> None:
        """
        After C{exit}, a peer that does not read the replies before it is
        cut after the write timeout, not kept for ever.
        """
        self.protocol.dataReceived(b"a\nexit\n")
        self.owed = 14
        self.clock.advance(3.5)
        self.assertTrue(self.transport.aborted)
        self.assertEqual(self.protocol.ended, "write-timeout")

    def test_closingWithinIdleTimeout(self) -> None:
        """
        With no write timeout, a close that does not finish is cut the
        idle timeout after it began: no state goes without a deadline.
        """
        factory = GreetingFactory(clock=self.clock, idleTimeout=10, writeTimeout=0)
        protocol, transport = connect(factory)
        transport.loseConnection = lambda: None  # type: ignore[method-assign]
        self.owed = 14
        self.clock.advance(5)
        protocol.dataReceived(b"exit\n")
        self.clock.advance(9.5)
        self.assertFalse(transport.aborted)
        self.clock.advance(1)
        self.assertTrue(transport.aborted)
        self.assertEqual(factory.errors["write-timeout"], 1)

    def test_idleThenStalled(self) -> None:
        """
        An idle peer that reads neither its replies nor its error is cut.
        """
        factory = GreetingFactory(clock=self.clock, idleTimeout=2, writeTimeout=0)
        protocol, transport = connect(factory)
        transport.loseConnection = lambda: None  # type: ignore[method-assign]
        self.clock.advance(2)
        self.assertEqual(protocol.ended, "idle-timeout")
        self.assertFalse(transport.aborted)
        self.clock.advance(2.2)
        self.assertTrue(transport.aborted)
        self.assertEqual(protocol.ended, "write-timeout")

    def test_nothingOwedNoCut(self) -> None:
        self.clock.advance(9.5)
        self.assertFalse(self.transport.aborted)


class BackpressureTests(SynchronousTestCase):
    """
    The protocol is its transport's streaming producer: paused, it stops
    reading from the peer; resumed, it reads again.
    """

    def test_registered(self) -> None:
        protocol, transport = connect(GreetingFactory(clock=Clock()))
        self.assertIs(transport.producer, protocol)
        self.assertTrue(transport.streaming)

    def test_pauseStopsReading(self) -> None:
        protocol, transport = connect(GreetingFactory(clock=Clock()))
        protocol.pauseProducing()
        self.assertEqual(transport.producerState, "paused")
        protocol.resumeProducing()
        self.assertEqual(transport.producerState, "producing")
        protocol.stopProducing()

    def test_closeUnregisters(self) -> None:
        """
        A registered producer would be resumed instead of the connection
        closed once the buffer drains, so closing unregisters it.
        """
        protocol, transport = connect(GreetingFactory(clock=Clock()))
        transport.loseConnection = lambda: None  # type: ignore[method-assign]
        protocol.dataReceived(b"exit")
        self.assertIsNone(transport.producer)


class InternalErrorTests(SynchronousTestCase):
    def test_errorClosesOnlyThatClient(self) -> None:
        """
        A bug met while answering one client aborts that connection and is
        logged once; other clients go on.
        """
        events = captureLogs(self, GreetingProtocol)
        factory = GreetingFactory(clock=Clock())
        bad, badTransport = connect(factory)
        good, goodTransport = connect(factory)
        self.patch(bad, "send", lambda data: 1 / 0)
        bad.dataReceived(b"boom")
        self.assertTrue(badTransport.aborted)
        self.assertEqual(factory.errors["internal"], 1)
        failures = [event for event in events if "log_failure" in event]
        self.assertEqual(len(failures), 1)
        failures[0]["log_failure"].trap(ZeroDivisionError)
        good.dataReceived(b"fine")
        self.assertEqual(goodTransport.value(), b"WelcomeHello, fine!")
        self.flushLoggedErrors(ZeroDivisionError)


class CloseAllTests(SynchronousTestCase):
    def test_nothingOpen(self) -> None:
        self.successResultOf(GreetingFactory(clock=Clock()).closeAll(5))

    def test_drains(self) -> None:
        clock = Clock()
        factory = GreetingFactory(clock=clock)
        protocol, transport = connect(factory)
        protocol.dataReceived(b"Ann\n")
        transport.loseConnection = lambda: None  # type: ignore[method-assign]
        drained = factory.closeAll(5)
        self.assertNoResult(drained)
        self.assertTrue(protocol.closing)
        protocol.dataReceived(b"late\n")
        self.assertEqual(transport.value(), b"WelcomeHello, Ann!\n")
        protocol.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(drained)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_abortsAfterTimeout(self) -> None:
        clock = Clock()
        factory = GreetingFactory(clock=clock, idleTimeout=0, writeTimeout=0)
        _, transport = connect(factory)
        transport.loseConnection = lambda: None  # type: ignore[method-assign]
        drained = factory.closeAll(5)
        clock.advance(4.9)
        self.assertNoResult(drained)
        del transport.loseConnection
        clock.advance(0.1)
        self.assertTrue(transport.aborted)
        self.successResultOf(drained)

    def test_totals(self) -> None:
        factory = GreetingFactory(clock=Clock())
        first, _ = connect(factory)
        second, _ = connect(factory)
        first.dataReceived(b"a\n")
        second.dataReceived(b"bb\nexit\n")
        self.assertEqual(
            factory.totals(),
            {"messages": 2, "bytesReceived": 10, "bytesSent": 14 + 10 + 11},
        )


class SafeDefaultsTests(SynchronousTestCase):
    def test_factoryLimitedByDefault(self) -> None:
        """
        A factory built with no limiter applies C{twistd greetd}'s default
        limits: an embedder gets the safe service unless they opt out.
        """
        limiter = GreetingFactory(clock=Clock()).admission.limiter
        self.assertEqual(
            (limiter.maxConnections, limiter.maxPerHost, limiter.perHostRate),
            (10000, 64, 20),
        )
        factory = GreetingFactory(clock=Clock())
        transports = [connect(factory)[1] for _ in range(21)]
        self.assertEqual(transports[-1].value(), REFUSAL_LINES["rate-per-ip"])


class RefusalDeliveryTests(SynchronousTestCase):
    """
    A refused client gets one line naming the limit, and the connection is
    closed so that the line arrives: the sending side is shut once it is
    written, what the client sends meanwhile is read and discarded, and the
    connection is closed after a bounded linger.
    """

    def test_lineNamesTheLimit(self) -> None:
        for limiter, reason in [
            (ConnectionLimiter(1), "max-connections"),
            (ConnectionLimiter(0, 1), "max-per-ip"),
            (ConnectionLimiter(0, 0, 1), "rate-per-ip"),
        ]:
            factory = GreetingFactory(clock=Clock(), limiter=limiter)
            connect(factory)
            _, transport = connect(factory)
            self.assertEqual(transport.value(), REFUSAL_LINES[reason], reason)
        self.assertIn(b"from your address", REFUSAL_LINES["max-per-ip"])
        self.assertIn(b"try again later", REFUSAL_LINES["rate-per-ip"])

    def test_lingerDiscardsThenCloses(self) -> None:
        clock = Clock()
        factory = GreetingFactory(
            clock=clock, limiter=ConnectionLimiter(1), idleTimeout=0, writeTimeout=0
        )
        connect(factory)
        refused, transport = connect(factory)
        refused.dataReceived(b"x\nexit\n")
        self.assertEqual(transport.value(), REFUSAL_LINES["max-connections"])
        self.assertTrue(transport.connected)
        self.assertEqual(factory.admission.lingering, 1)
        clock.advance(Admission.refusalLinger)
        self.assertFalse(transport.connected)
        self.assertEqual(factory.admission.lingering, 0)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_clientClosingEndsTheLinger(self) -> None:
        clock = Clock()
        factory = GreetingFactory(
            clock=clock, limiter=ConnectionLimiter(1), idleTimeout=0, writeTimeout=0
        )
        connect(factory)
        _, transport = connect(factory)
        transport.loseConnection()
        self.assertEqual(factory.admission.lingering, 0)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_lingeringBounded(self) -> None:
        """
        Past L{Admission.maxLingering}, a refusal is closed at once: a flood
        of refusals holds a bounded number of descriptors.
        """
        clock = Clock()
        factory = GreetingFactory(
            clock=clock, limiter=ConnectionLimiter(1), idleTimeout=0, writeTimeout=0
        )
        factory.admission.maxLingering = 2
        connect(factory)
        transports = [connect(factory)[1] for _ in range(4)]
        self.assertEqual([t.connected for t in transports], [True, True, False, False])
        for transport in transports:
            self.assertEqual(transport.value(), REFUSAL_LINES["max-connections"])
        self.assertEqual(len(clock.getDelayedCalls()), 2)

    def test_accessDeniedToldNothing(self) -> None:
        factory = GreetingFactory(
            clock=Clock(), access=AccessPolicy(deny=[parseNetwork("192.0.2.0/24")])
        )
        _, transport = connect(factory)
        self.assertEqual(transport.value(), b"")
        self.assertFalse(transport.connected)
        self.assertEqual(factory.admission.lingering, 0)


class HealthCheckTests(SynchronousTestCase):
    """
    A load balancer's health check is greeted like anyone, but counted and
    logged apart: not a connection in the metrics, and at debug level only.
    """

    def test_fromHealthCheckNetwork(self) -> None:
        accessLog, events = capturingAccessLog()
        factory = GreetingFactory(
            clock=Clock(),
            accessLog=accessLog,
            healthCheckFrom=[parseNetwork("192.0.2.0/24")],
        )
        protocol, transport = connect(factory)
        self.assertEqual(transport.value(), b"Welcome")
        self.assertTrue(protocol.healthCheck)
        protocol.dataReceived(b"exit")
        self.assertEqual((factory.connectionsTotal, factory.healthChecksTotal), (0, 1))
        self.assertEqual(factory.counts()["tcp.healthChecks"], 1)
        [event] = events
        self.assertEqual(
            (event["greetdEvent"], event["log_level"]),
            ("healthcheck.close", LogLevel.debug),
        )

    def test_checkThatSendsIsAClient(self) -> None:
        """
        A health check connects, perhaps reads the banner or says C{exit},
        and closes; one that sends a message is a client from then on:
        counted in C{connectionsTotal} and logged at info, so that a session
        cannot hide behind a check's address or header.
        """
        accessLog, events = capturingAccessLog()
        clock = Clock()
        factory = GreetingFactory(
            clock=clock,
            accessLog=accessLog,
            healthCheckFrom=[parseNetwork("192.0.2.0/24")],
        )
        for messages in (b"x\n" * 1000, b"x" * 2000):
            protocol, transport = connect(factory)
            protocol.dataReceived(messages)
            for _ in range(10):
                clock.advance(0)  # The turns a pipelined read is answered over.
            self.assertFalse(protocol.healthCheck)
            transport.loseConnection()
        self.assertEqual((factory.connectionsTotal, factory.healthChecksTotal), (2, 2))
        self.assertEqual(
            [(event["greetdEvent"], event["log_level"]) for event in events],
            [
                ("connection.open", LogLevel.debug),
                ("connection.close", LogLevel.info),
            ]
            * 2,
        )
        self.assertEqual(events[1]["messages"], 1000)

    def test_othersAreClients(self) -> None:
        factory = GreetingFactory(
            clock=Clock(), healthCheckFrom=[parseNetwork("198.51.100.0/24")]
        )
        protocol, _ = connect(factory)
        self.assertFalse(protocol.healthCheck)
        self.assertEqual((factory.connectionsTotal, factory.healthChecksTotal), (1, 0))


class GlobalReactorTests(TestCase):
    """
    A factory built without a clock runs on the global reactor; a test of it
    over an in-memory transport, such as an embedder writes, leaves nothing
    behind on that reactor once its connections have closed (trial's
    L{TestCase} fails a test that does).
    """

    def test_closedConnectionLeavesNoTimer(self) -> None:
        from twisted.internet import reactor

        factory = GreetingFactory()
        protocol, transport = connect(factory)
        protocol.dataReceived(b"Ann\n")
        self.assertEqual(transport.value(), b"WelcomeHello, Ann!\n")
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(reactor.getDelayedCalls(), [])
