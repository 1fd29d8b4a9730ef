"""
Tests for L{greetd.protocols.idle}, alone, with fake connections.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from greetd.protocols.idle import IdleSweep
from tests.helpers import FakeConnection


class IdleSweepTests(SynchronousTestCase):
    def test_interval(self) -> None:
        clock = Clock()
        self.assertEqual(IdleSweep(clock, 10, set()).interval, 1.0)
        self.assertEqual(IdleSweep(clock, 0.5, set()).interval, 0.1)
        self.assertEqual(IdleSweep(clock, 3600, set()).interval, 5.0)

    def test_sweepsOnlyWhileAwake(self) -> None:
        clock = Clock()
        connections: set[FakeConnection] = set()
        sweep = IdleSweep(clock, 10, connections)  # type: ignore[arg-type]
        old, fresh = FakeConnection(0), FakeConnection(5)
        connections |= {old, fresh}
        sweep.wake()
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.advance(10)
        self.assertEqual((old.timedOut, fresh.timedOut), (1, 0))
        clock.advance(5)
        self.assertEqual((old.timedOut, fresh.timedOut), (1, 1))
        sweep.rest()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_stopsItselfWhenEmpty(self) -> None:
        clock = Clock()
        connections: set[FakeConnection] = {FakeConnection(0)}
        sweep = IdleSweep(clock, 10, connections)  # type: ignore[arg-type]
        sweep.wake()
        connections.clear()
        clock.advance(sweep.interval)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_noTimeoutNoSweep(self) -> None:
        clock = Clock()
        IdleSweep(clock, 0, set()).wake()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_emptiedUnserved(self) -> None:
        """
        Emptied with no port serving, the sweep stops at once.
        """
        clock = Clock()
        sweep = IdleSweep(clock, 10, set())
        sweep.wake()
        sweep.emptied(served=False)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_emptiedServed(self) -> None:
        """
        Emptied while a port serves, the sweep waits for its next round.
        """
        clock = Clock()
        sweep = IdleSweep(clock, 10, set())
        sweep.wake()
        sweep.emptied(served=True)
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.advance(sweep.interval)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_intervalFromShorterTimeout(self) -> None:
        clock = Clock()
        self.assertEqual(IdleSweep(clock, 300, set(), 2).interval, 0.2)
        self.assertEqual(IdleSweep(clock, 0, set(), 20).interval, 2.0)
        self.assertEqual(IdleSweep(clock, 3, set(), 0).interval, 0.3)

    def test_writeOnly(self) -> None:
        """
        With only a write timeout, the sweep runs and cuts stalled writers.
        """
        clock = Clock()
        stuck = FakeConnection(0)
        stuck.owed = 10
        sweep = IdleSweep(clock, 0, {stuck}, 1)  # type: ignore[arg-type]
        sweep.wake()
        clock.advance(1)
        self.assertEqual((stuck.stalled, stuck.timedOut), (1, 0))

    def test_closingHasDeadline(self) -> None:
        """
        A closing connection is not exempt: still there the idle timeout
        after it began closing, it is cut.
        """
        clock = Clock()
        closing = FakeConnection(0)
        closing.closing, closing.closingAt = True, 5.0
        sweep = IdleSweep(clock, 10, {closing})  # type: ignore[arg-type]
        sweep.wake()
        clock.advance(14)
        self.assertEqual(closing.stalled, 0)
        clock.advance(1)
        self.assertEqual((closing.stalled, closing.timedOut), (1, 0))
