"""
Tests for L{greetd.daemon.listening}.
"""

from __future__ import annotations

from functools import partial

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactor, RaisingMemoryReactor
from twisted.logger import LogLevel, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from greetd.daemon.listening import ListenFailed, ListeningService
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

    def test_cannotListen(self) -> None:
        """
        A port that cannot be bound as the service starts raises
        L{ListenFailed}, after one critical log line naming the endpoint and
        the reason: the service does not end the process itself.
        """
        events = captureLogs(self, ListeningService)
        reason = OSError(98, "Address already in use")
        reactor = RaisingMemoryReactor(CannotListenError("127.0.0.1", 9999, reason))
        service = tcpService(reactor)
        error = self.assertRaises(ListenFailed, service.privilegedStartService)
        self.assertIs(error.service, service)
        self.assertNotIsInstance(error, SystemExit)
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
        self.assertRaises(ListenFailed, tcpService(reactor).privilegedStartService)
        self.assertIn("no inherited socket 3", formatEvent(events[0]))


class PendingListen:
    """
    A listen that fires only when the test says, and records whether it
    was cancelled.

    @ivar calls: The L{Deferred} of each listen, in order.
    @ivar cancelled: The L{Deferred}s cancelled, in order.
    """

    def __init__(self) -> None:
        self.calls: list[Deferred[IListeningPort]] = []
        self.cancelled: list[Deferred[IListeningPort]] = []

    def __call__(self) -> Deferred[IListeningPort]:
        listening: Deferred[IListeningPort] = Deferred(self.cancelled.append)
        self.calls.append(listening)
        return listening


def pendingService() -> tuple[ListeningService, PendingListen, list[Failure]]:
    """
    A service listening through a L{PendingListen}, and the failures its
    L{ListeningService.whenListening} fails with.
    """
    listen = PendingListen()
    service = ListeningService("TCP", "pending:1", listen)
    failures: list[Failure] = []
    service.whenListening().addErrback(failures.append)
    return service, listen, failures


class AsynchronousListenTests(SynchronousTestCase):
    """
    Endpoints that listen later than C{listen} returns: their failure is
    logged as an immediate one and fails L{ListeningService.whenListening},
    and stopping the service cancels them.
    """

    def test_lateFailure(self) -> None:
        """
        A listen that fails once the reactor runs logs the same critical
        line as an immediate failure and fails L{whenListening
        <ListeningService.whenListening>}, for the application to act on.
        """
        events = captureLogs(self, ListeningService)
        service, listen, failures = pendingService()
        service.privilegedStartService()
        service.startService()
        self.assertEqual((failures, events), ([], []))
        reason = OSError(98, "Address already in use")
        listen.calls[0].errback(CannotListenError("127.0.0.1", 1, reason))
        [failure] = failures
        self.assertIsInstance(failure.value, CannotListenError)
        self.assertEqual(
            [(event["log_level"], formatEvent(event)) for event in events],
            [
                (
                    LogLevel.critical,
                    "Cannot listen for TCP on pending:1: Address already in use",
                )
            ],
        )
        self.assertEqual(len(listen.calls), 1)

    def test_lateSuccess(self) -> None:
        service, listen, failures = pendingService()
        service.startService()
        ready = service.whenListening()
        self.assertNoResult(ready)
        port = self.successResultOf(
            TCP4ServerEndpoint(MemoryReactor(), 1).listen(Factory())
        )
        listen.calls[0].callback(port)
        self.assertIs(self.successResultOf(ready), port)
        self.assertIs(service.port, port)
        self.assertEqual(failures, [])

    def test_stopCancelsPendingListen(self) -> None:
        """
        Stopping the service cancels a listen still under way, quietly: the
        cancellation is neither logged nor fatal.
        """
        events = captureLogs(self, ListeningService)
        service, listen, failures = pendingService()
        service.startService()
        self.successResultOf(service.stopService())
        self.assertEqual(listen.cancelled, listen.calls)
        self.assertEqual((failures, events), ([], []))
        self.assertFalse(service.running)

    def test_restart(self) -> None:
        """
        A stopped service listens again when started again.
        """
        reactor = MemoryReactor()
        service = tcpService(reactor)
        service.startService()
        self.successResultOf(service.stopService())
        service.startService()
        self.assertEqual(len(reactor.tcpServers), 2)
        self.assertIsNotNone(service.port)
        self.assertTrue(service.running)

    def test_restartWhilePending(self) -> None:
        service, listen, failures = pendingService()
        service.startService()
        self.successResultOf(service.stopService())
        service.startService()
        self.assertEqual(len(listen.calls), 2)
        self.assertEqual(listen.cancelled, listen.calls[:1])
        listen.calls[1].errback(CannotListenError("127.0.0.1", 1, OSError("no")))
        self.assertEqual(len(failures), 1)
