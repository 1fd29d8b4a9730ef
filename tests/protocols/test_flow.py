"""
Tests for L{greetd.protocols.flow}: the turn budget alone, and pacing
through the greeting protocol on in-memory transports and a fake clock.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from greetd.core.limits import ConnectionLimiter
from greetd.protocols import greeter
from greetd.protocols.flow import (
    DEFAULT_PER_TURN,
    SHORT_READ,
    FlowControl,
    TurnBudget,
)
from greetd.protocols.greeting import GreetingFactory
from tests.helpers import connect, oneTurn

OTHER = IPv4Address("TCP", "198.51.100.1", 40002)


class TurnBudgetTests(SynchronousTestCase):
    def test_perSourcePerTurn(self) -> None:
        clock = Clock()
        budget = TurnBudget(clock, 100)
        self.assertEqual(budget.allowance("a"), 100)
        budget.spend("a", 70)
        self.assertEqual((budget.allowance("a"), budget.allowance("b")), (30, 100))
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.advance(0)
        self.assertEqual(budget.allowance("a"), 100)

    def test_noTurnUnlessAsked(self) -> None:
        """
        A turn is asked of the clock only when a source spends.
        """
        clock = Clock()
        TurnBudget(clock)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_unlimited(self) -> None:
        clock = Clock()
        budget = TurnBudget(clock, 0)
        budget.spend("a", 10**9)
        self.assertGreater(budget.allowance("a"), 10**9)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_default(self) -> None:
        self.assertEqual(TurnBudget(Clock()).perTurn, DEFAULT_PER_TURN)

    def test_pipelined(self) -> None:
        long = b"x" * SHORT_READ
        for data, expected in [
            (long + b"\n", False),
            (long + b"\r\n", False),
            (long + b"abc", False),
            (b"", False),
            (b"a\nb\nc\n", False),
            (long + b"a\nb", False),
            (long + b"a\nb\n", True),
            (b"\n" * (SHORT_READ + 1), True),
        ]:
            self.assertEqual(FlowControl.pipelined(data), expected, data)


class PacingTests(SynchronousTestCase):
    """
    A pipelined read is answered a budget's worth per turn, reading paused
    until all of it is; single messages go straight through.
    """

    def setUp(self) -> None:
        # Every read of these short ones paced, as a long one would be.
        self.patch(greeter, "SHORT_READ", 0)
        self.clock = Clock()
        self.factory = GreetingFactory(
            clock=self.clock,
            idleTimeout=0,
            writeTimeout=0,
            framing="line",
            limiter=ConnectionLimiter(),
        )
        self.factory.budget.perTurn = 6
        self.protocol, self.transport = connect(self.factory)
        self.transport.clear()

    def test_inParts(self) -> None:
        self.protocol.dataReceived(b"a\nb\nc\nd\ne\nf\n")
        self.assertEqual(self.transport.value(), b"Hello, a!\nHello, b!\nHello, c!\n")
        self.assertEqual(self.transport.producerState, "paused")
        self.clock.advance(0)
        self.assertEqual(self.protocol.messages, 6)
        self.assertEqual(self.transport.producerState, "producing")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_sameSourceShares(self) -> None:
        """
        Two connections from one source share its budget; another source
        has its own.
        """
        second, _ = connect(self.factory)
        other, _ = connect(self.factory, OTHER)
        self.protocol.dataReceived(b"a\nb\nc\n")
        second.dataReceived(b"a\nb\nc\n")
        other.dataReceived(b"a\nb\nc\n")
        self.assertEqual((self.protocol.messages, second.messages), (3, 0))
        self.assertEqual(other.messages, 3)
        self.clock.advance(0)
        self.assertEqual(second.messages, 3)

    def test_shortReadNotPaced(self) -> None:
        """
        A read of at most L{SHORT_READ} bytes is answered at once, whatever
        it holds.
        """
        self.patch(greeter, "SHORT_READ", SHORT_READ)
        self.protocol.dataReceived(b"a\nb\nc\nd\ne\nf\n")
        self.assertEqual(self.protocol.messages, 6)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_singleMessageNotPaced(self) -> None:
        """
        An honest client's message is answered at once even when its
        source's budget is spent, and asks nothing of the clock.
        """
        self.protocol.dataReceived(b"honest message\n")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        second, _ = connect(self.factory)
        second.dataReceived(b"a\nb\nc\nd\n")
        self.protocol.dataReceived(b"again\n")
        self.assertEqual(self.protocol.messages, 2)

    def test_longLineWhole(self) -> None:
        """
        A line longer than a turn's budget is answered alone in a turn,
        never held for ever.
        """
        self.protocol.dataReceived(b"a\n" + b"x" * 50 + b"\nb\n")
        self.clock.advance(0)
        self.clock.advance(0)
        self.assertEqual(self.protocol.messages, 3)
        self.assertEqual(self.transport.producerState, "producing")

    def test_heldWhileWritePaused(self) -> None:
        """
        While the transport has paused the protocol, nothing held is
        answered; once resumed, it is, a budget per turn.
        """
        self.protocol.dataReceived(b"a\nb\nc\nd\n")
        self.protocol.pauseProducing()
        self.clock.advance(0)
        self.protocol.dataReceived(b"e\n")
        self.assertEqual(self.protocol.messages, 3)
        self.protocol.resumeProducing()
        self.assertEqual(self.transport.producerState, "paused")
        self.clock.advance(0)
        self.assertEqual(self.protocol.messages, 5)
        self.assertEqual(self.transport.producerState, "producing")

    def test_waitsOnce(self) -> None:
        """
        A connection paused and resumed several times in one turn waits for
        the next turn once: its turns cost one call each, however often the
        transport paused it.
        """
        turns: list[int] = []
        answerHeld = self.protocol.answerHeld

        def counted() -> None:
            turns.append(self.protocol.messages)
            answerHeld()

        self.patch(self.protocol, "answerHeld", counted)
        self.protocol.dataReceived(b"a\n" * 12)
        for _ in range(3):
            self.protocol.pauseProducing()
            self.protocol.resumeProducing()
        oneTurn(self.clock)
        oneTurn(self.clock)
        self.assertEqual(turns, [3, 6])
        self.assertEqual(self.protocol.messages, 9)

    def test_nothingAnsweredWhilePaused(self) -> None:
        """
        Reads that arrive after the transport paused the protocol (TLS hands
        over every record of a read at once, and a busy reactor may run
        them late) are held, not answered: what the connection owes does
        not grow, whatever the scheduling.
        """
        self.protocol.pauseProducing()
        for _ in range(100):
            self.protocol.dataReceived(b"a\n" * 100)
        self.protocol.dataReceived(b"one\n")
        self.clock.advance(0)
        self.assertEqual(self.transport.value(), b"")
        self.assertEqual(self.protocol.messages, 0)

    def test_heldGrowsInPlace(self) -> None:
        """
        Reads that come while input is held are appended to it in place, so
        that many small reads cost what they hold, not what came before
        them each time; they are answered all the same.
        """
        self.protocol.dataReceived(b"a\nb\nc\nd\n")
        self.protocol.pauseProducing()
        self.protocol.dataReceived(b"e\n")
        held = self.protocol.held
        for _ in range(10):
            self.protocol.dataReceived(b"f\n")
        self.assertIs(self.protocol.held, held)
        self.protocol.resumeProducing()
        for _ in range(5):
            self.clock.advance(0)
        self.assertEqual(self.protocol.messages, 15)
        self.assertTrue(
            self.transport.value().endswith(b"Hello, e!\n" + b"Hello, f!\n" * 10)
        )

    def test_exitDropsHeld(self) -> None:
        self.protocol.dataReceived(b"a\nexit\nb\nc\nd\n")
        self.clock.advance(0)
        self.assertEqual(self.protocol.messages, 1)
        self.assertFalse(self.transport.connected)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_lostDropsHeld(self) -> None:
        self.protocol.dataReceived(b"a\nb\nc\nd\n")
        self.transport.loseConnection()
        self.clock.advance(0)
        self.assertEqual(self.protocol.messages, 3)
        self.assertEqual(self.protocol.held, b"")

    def test_shutdownReadsOn(self) -> None:
        """
        Shutdown drops what is held and reads again, whether pacing or
        backpressure paused reading, so that the peer's close is seen.
        """
        for writePaused in (False, True):
            protocol, transport = connect(self.factory, OTHER)
            protocol.dataReceived(b"a\nb\nc\nd\n")
            if writePaused:
                protocol.pauseProducing()
            self.assertEqual(transport.producerState, "paused")
            protocol.shutdown()
            self.assertEqual(transport.producerState, "producing")
            self.assertEqual(protocol.held, b"")
            self.clock.advance(0)
            self.assertEqual(protocol.messages, 3)

    def test_rawNotSplit(self) -> None:
        """
        Under raw framing a read is one message, so it is never cut.
        """
        factory = GreetingFactory(clock=self.clock, framing="raw")
        factory.budget.perTurn = 2
        protocol, transport = connect(factory)
        transport.clear()
        protocol.dataReceived(b"a\nb\nc")
        self.assertEqual(transport.value(), b"Hello, a\nb\nc!")

    @settings(max_examples=50, deadline=None)
    @given(
        st.lists(st.binary(max_size=40), max_size=12),
        st.sampled_from(["auto", "line", "raw"]),
        st.integers(1, 30),
    )
    def test_sameAnswers(self, chunks: list[bytes], framing: str, perTurn: int) -> None:
        """
        Whatever the chunks and the budget, pacing changes when replies are
        sent, never what they are.
        """

        def run(limit: int) -> bytes:
            clock = Clock()
            factory = GreetingFactory(
                clock=clock, framing=framing, idleTimeout=0, writeTimeout=0
            )
            factory.budget.perTurn = limit
            protocol, transport = connect(factory)
            for chunk in chunks:
                protocol.dataReceived(chunk)
                clock.advance(0)
            for _ in range(200):
                clock.advance(0)
            return transport.value()

        self.assertEqual(run(perTurn), run(0))
