"""
Tests for L{greetd.protocols.drain}, alone, with fake connections.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from greetd.protocols.drain import Drain
from tests.helpers import FakeConnection


class DrainTests(SynchronousTestCase):
    def test_nothingOpen(self) -> None:
        self.successResultOf(Drain(Clock(), set()).closeAll(5))

    def test_closesThenWaits(self) -> None:
        clock = Clock()
        connection = FakeConnection(0)
        connections = {connection}
        drain = Drain(clock, connections)  # type: ignore[arg-type]
        drained = drain.closeAll(5)
        self.assertTrue(connection.closing)
        self.assertNoResult(drained)
        connections.clear()
        drain.emptied()
        self.successResultOf(drained)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_abortsAfterTimeout(self) -> None:
        clock = Clock()
        aborted: list[bool] = []
        connection = FakeConnection(0)
        connection.abort = lambda: aborted.append(True)  # type: ignore[method-assign]
        drain = Drain(clock, {connection})  # type: ignore[arg-type]
        drain.closeAll(5)
        clock.advance(5)
        self.assertEqual(aborted, [True])
