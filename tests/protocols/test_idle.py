"""
Tests for L{greetd.protocols.idle}, alone, with fake connections.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from greetd.protocols.idle import IdleSweep


class FakeConnection:
    closing = False

    def __init__(self, lastMessageAt: float) -> None:
        self.lastMessageAt = lastMessageAt
        self.timedOut = 0

    def idleTimedOut(self) -> None:
        self.timedOut += 1
        self.closing = True

    def close(self) -> None:
        self.closing = True

    def shutdown(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True


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
