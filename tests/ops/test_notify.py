"""
Tests for L{greetd.ops.notify}.
"""

from __future__ import annotations

import os
import socket
import tempfile
from functools import partial

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor
from twisted.logger import formatEvent
from twisted.trial.unittest import SynchronousTestCase

from greetd.daemon.listening import ListeningService
from greetd.ops.notify import (
    DatagramSender,
    NotifyService,
    notifyAddress,
    notifyServiceFromEnvironment,
    watchdogInterval,
)
from tests.helpers import captureLogs


def listener(reactor: MemoryReactor, kind: str = "TCP") -> ListeningService:
    endpoint = TCP4ServerEndpoint(reactor, 9999, interface="127.0.0.1")
    return ListeningService(
        kind, "tcp:9999", partial(endpoint.listen, Factory.forProtocol(Protocol))
    )


class FakeSender:
    """
    Record notifications, or fail with C{error} when set.
    """

    error: OSError | None = None

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def __call__(self, message: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.sent.append(message)


class NotifyServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.sender = FakeSender()
        self.reactor = MemoryReactor()
        self.listeners = [listener(self.reactor), listener(self.reactor, "UDP")]

    def service(self, interval: float | None = None) -> NotifyService:
        return NotifyService(self.listeners, self.clock, self.sender, interval)

    def test_readyOnceListening(self) -> None:
        """
        C{READY=1} waits for every listener and then says where each serves.
        """
        service = self.service()
        self.listeners[0].privilegedStartService()
        service.startService()
        self.assertEqual(self.sender.sent, [])
        self.assertFalse(service.ready)
        self.listeners[1].privilegedStartService()
        self.assertEqual(
            self.sender.sent,
            [b"READY=1\nSTATUS=Serving TCP on 0.0.0.0:9999, UDP on 0.0.0.0:9999"],
        )
        self.assertTrue(service.ready)

    def test_readyWhenAlreadyListening(self) -> None:
        for child in self.listeners:
            child.startService()
        self.service().startService()
        self.assertEqual(len(self.sender.sent), 1)
        self.assertTrue(self.sender.sent[0].startswith(b"READY=1\n"))

    def test_notReadyAfterStop(self) -> None:
        """
        A listener that only listens after the stop gets no C{READY=1}.
        """
        service = self.service()
        service.startService()
        service.stopService()
        for child in self.listeners:
            child.startService()
        self.assertEqual(self.sender.sent, [b"STOPPING=1"])

    def test_stopping(self) -> None:
        for child in self.listeners:
            child.startService()
        service = self.service()
        service.startService()
        self.successResultOf(service.stopService())
        self.assertEqual(self.sender.sent[-1], b"STOPPING=1")
        self.assertFalse(service.running)

    def test_watchdog(self) -> None:
        """
        C{WATCHDOG=1} at once and then every interval, until stopped.
        """
        for child in self.listeners:
            child.startService()
        service = self.service(interval=5.0)
        service.startService()
        self.assertEqual(self.sender.sent.count(b"WATCHDOG=1"), 1)
        self.clock.advance(4.9)
        self.assertEqual(self.sender.sent.count(b"WATCHDOG=1"), 1)
        self.clock.advance(0.1)
        self.assertEqual(self.sender.sent.count(b"WATCHDOG=1"), 2)
        self.clock.pump([5, 5])
        self.assertEqual(self.sender.sent.count(b"WATCHDOG=1"), 4)
        service.stopService()
        self.clock.advance(60)
        self.assertEqual(self.sender.sent.count(b"WATCHDOG=1"), 4)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_noWatchdog(self) -> None:
        service = self.service()
        service.startService()
        self.clock.advance(3600)
        self.assertNotIn(b"WATCHDOG=1", self.sender.sent)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_sendFailureLogged(self) -> None:
        """
        A notification that cannot be sent is logged, and the service goes
        on (the next watchdog ping is still tried).
        """
        events = captureLogs(self, NotifyService)
        self.sender.error = ConnectionRefusedError(111, "Connection refused")
        service = self.service(interval=1.0)
        service.startService()
        self.clock.advance(1)
        self.assertEqual(len(events), 2)
        self.assertEqual(
            formatEvent(events[0]),
            "Cannot notify the service manager (WATCHDOG=1): "
            "[Errno 111] Connection refused",
        )
        self.assertEqual(events[0]["greetdEvent"], "notify.failed")


class EnvironmentTests(SynchronousTestCase):
    def test_notifyAddress(self) -> None:
        self.assertEqual(notifyAddress("/run/systemd/notify"), "/run/systemd/notify")
        self.assertEqual(notifyAddress("@greetd/1"), b"\0greetd/1")
        self.assertRaises(ValueError, notifyAddress, "vsock:2:1234")
        self.assertRaises(ValueError, notifyAddress, "relative")

    def test_watchdogInterval(self) -> None:
        """
        Half of C{WATCHDOG_USEC}, for this process or any when
        C{WATCHDOG_PID} is unset.
        """
        self.assertEqual(watchdogInterval({"WATCHDOG_USEC": "30000000"}, 7), 15.0)
        self.assertEqual(
            watchdogInterval({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "7"}, 7),
            0.5,
        )
        for environ in [
            {},
            {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "8"},
            {"WATCHDOG_USEC": "0"},
            {"WATCHDOG_USEC": "soon"},
        ]:
            self.assertIsNone(watchdogInterval(environ, 7), environ)

    def test_fromEnvironment(self) -> None:
        clock = Clock()
        self.assertIsNone(notifyServiceFromEnvironment([], clock, {}, 7))
        self.assertIsNone(
            notifyServiceFromEnvironment([], clock, {"NOTIFY_SOCKET": ""}, 7)
        )
        service = notifyServiceFromEnvironment(
            [],
            clock,
            {"NOTIFY_SOCKET": "@greetd-test", "WATCHDOG_USEC": "4000000"},
            7,
        )
        assert service is not None
        self.addCleanup(service._sender._socket.close)  # type: ignore[attr-defined]
        self.assertEqual(service.interval, 2.0)
        self.assertEqual(service._sender.address, b"\0greetd-test")  # type: ignore[attr-defined]

    def test_unusableSocketLogged(self) -> None:
        events = captureLogs(self, NotifyService)
        self.assertIsNone(
            notifyServiceFromEnvironment([], Clock(), {"NOTIFY_SOCKET": "vsock:1"}, 7)
        )
        self.assertIn("vsock:1", formatEvent(events[0]))


class DatagramSenderTests(SynchronousTestCase):
    """
    L{DatagramSender} against real UNIX datagram sockets.
    """

    def receiver(self, address: str | bytes) -> socket.socket:
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(receiver.close)
        receiver.bind(address)
        receiver.settimeout(5)
        return receiver

    def sender(self, address: str | bytes) -> DatagramSender:
        sender = DatagramSender(address)
        self.addCleanup(sender._socket.close)
        return sender

    def test_path(self) -> None:
        directory = tempfile.mkdtemp()
        self.addCleanup(os.rmdir, directory)
        path = os.path.join(directory, "notify")
        receiver = self.receiver(path)
        self.addCleanup(os.unlink, path)
        self.sender(notifyAddress(path))(b"READY=1")
        self.assertEqual(receiver.recv(100), b"READY=1")

    def test_abstract(self) -> None:
        name = f"@greetd-test-{os.getpid()}-{id(self)}"
        receiver = self.receiver(notifyAddress(name))
        self.sender(notifyAddress(name))(b"WATCHDOG=1")
        self.assertEqual(receiver.recv(100), b"WATCHDOG=1")

    def test_nobodyListening(self) -> None:
        sender = self.sender(b"\0greetd-test-nobody-listens-here")
        self.assertRaises(OSError, sender, b"READY=1")


class WhenListeningTests(SynchronousTestCase):
    def test_firesOnceListening(self) -> None:
        reactor = MemoryReactor()
        service = listener(reactor)
        waiting: Deferred[IListeningPort] = service.whenListening()
        self.assertNoResult(waiting)
        service.startService()
        self.assertIs(self.successResultOf(waiting), service.port)
        self.assertIs(self.successResultOf(service.whenListening()), service.port)
