"""
Tests for L{greetd.daemon.listening}.
"""

from __future__ import annotations

from functools import partial

from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactor, RaisingMemoryReactor
from twisted.logger import LogLevel, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from greetd.daemon.listening import ListeningService
from tests.helpers import captureLogs


def tcpService(reactor: MemoryReactor, port: int = 9999) -> ListeningService:
    endpoint = TCP4ServerEndpoint(reactor, port, interface="127.0.0.1")
    factory = Factory.forProtocol(Protocol)
    return ListeningService(
        "TCP", f"tcp:{port}:interface=127.0.0.1", partial(endpoint.listen, factory)
    )


class ListeningServiceTests(SynchronousTestCase):
    def test_listensWhenPrivileged(self) -> None:
        """
        The port is bound in C{privilegedStartService}, before twistd drops
        privileges, and C{startService} does not bind it again.
        """
        events = captureLogs(self, ListeningService)
        reactor = MemoryReactor()
        service = tcpService(reactor)
        service.privilegedStartService()
        service.startService()
        self.assertEqual(len(reactor.tcpServers), 1)
        self.assertEqual(reactor.tcpServers[0][0], 9999)
        self.assertIsNotNone(service.port)
        self.assertEqual(
            [formatEvent(event) for event in events],
            ["Serving TCP on 0.0.0.0:9999"],
        )

    def test_startServiceListensToo(self) -> None:
        reactor = MemoryReactor()
        service = tcpService(reactor)
        service.startService()
        self.assertEqual(len(reactor.tcpServers), 1)
        self.assertTrue(service.running)

    def test_stopService(self) -> None:
        reactor = MemoryReactor()
        service = tcpService(reactor)
        service.startService()
        self.successResultOf(service.stopService())
        self.assertIsNone(service.port)
        self.assertFalse(service.running)

    def test_stopWithoutPort(self) -> None:
        service = tcpService(MemoryReactor())
        self.assertIsNone(self.successResultOf(service.stopService()))

    def test_cannotListenIsFatal(self) -> None:
        """
        A port that cannot be bound ends the process with status 1 after one
        critical log line naming the endpoint and the reason.
        """
        events = captureLogs(self, ListeningService)
        reason = OSError(98, "Address already in use")
        reactor = RaisingMemoryReactor(CannotListenError("127.0.0.1", 9999, reason))
        service = tcpService(reactor)
        error = self.assertRaises(SystemExit, service.privilegedStartService)
        self.assertEqual(error.code, 1)
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["log_level"], LogLevel.critical)
        self.assertEqual(
            formatEvent(events[0]),
            "Cannot listen for TCP on tcp:9999:interface=127.0.0.1: "
            "Address already in use",
        )

    def test_otherListenErrors(self) -> None:
        events = captureLogs(self, ListeningService)
        reactor = RaisingMemoryReactor(IndexError("no inherited socket 3"))
        self.assertRaises(SystemExit, tcpService(reactor).privilegedStartService)
        self.assertIn("no inherited socket 3", formatEvent(events[0]))
