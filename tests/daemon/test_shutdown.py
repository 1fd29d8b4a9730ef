"""
Tests for L{greetd.daemon.shutdown}.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from greetd.daemon.shutdown import DrainService
from greetd.protocols.greeting import GreetingFactory
from tests.helpers import connect


class DrainServiceTests(SynchronousTestCase):
    def test_stopClosesConnections(self) -> None:
        """
        Stopping shuts each connection's sending side after its owed
        replies, reads on until the client closes (so a client still
        sending is never reset mid-reply), and the returned Deferred waits
        for the last one.
        """
        factory = GreetingFactory(clock=Clock())
        protocol, transport = connect(factory)
        protocol.dataReceived(b"Ann\n")
        service = DrainService(factory, timeout=5)
        service.startService()
        stopped = service.stopService()
        self.assertFalse(service.running)
        self.assertEqual(transport.value(), b"WelcomeHello, Ann!\n")
        self.assertTrue(transport.writeClosed)
        protocol.dataReceived(b"still sending\n")
        self.assertEqual(transport.value(), b"WelcomeHello, Ann!\n")
        self.assertNoResult(stopped)
        transport.loseConnection()
        self.successResultOf(stopped)

    def test_timeoutPassedOn(self) -> None:
        """
        The service's timeout is how long the factory waits before cutting
        (L{GreetingFactory.closeAll}'s own tests cover the cutting).
        """
        factory = GreetingFactory(clock=Clock())
        timeouts: list[float] = []

        def closeAll(timeout: float) -> Deferred[None]:
            timeouts.append(timeout)
            return succeed(None)

        self.patch(factory, "closeAll", closeAll)
        self.successResultOf(DrainService(factory, timeout=2).stopService())
        self.assertEqual(timeouts, [2])
