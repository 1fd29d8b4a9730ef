"""
Tests for L{greetd.protocols.fastwrite}, on a real C{tcp.Server} transport over a
socket pair, with an in-memory reactor that never runs.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import error, main, tcp, udp
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import DatagramProtocol, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor, MemoryReactorClock, StringTransport
from twisted.protocols.haproxy._wrapper import HAProxyProtocolWrapper
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from greetd.protocols.datagramport import DatagramPort, readsDirectly
from greetd.protocols.fastwrite import (
    _DONE,
    closeNow,
    datagramWriter,
    supportsWriteThrough,
    writeThrough,
)
from greetd.protocols.greeting import GreetingFactory
from greetd.protocols.proxy import ProxyHeaderFactory
from tests.helpers import SOCKET_PEER, capturingAccessLog, serverConnection


class SupportsWriteThroughTests(SynchronousTestCase):
    def test_plainTCP(self) -> None:
        server, _ = serverConnection(self)
        self.assertTrue(supportsWriteThrough(server))

    def test_others(self) -> None:
        """
        In-memory, wrapping (PROXY) and TLS transports keep plain C{write}.
        """
        self.assertFalse(supportsWriteThrough(StringTransport()))
        wrapper = HAProxyProtocolWrapper(
            ProxyHeaderFactory(GreetingFactory(clock=Clock()), Clock()), Protocol()
        )
        self.assertFalse(supportsWriteThrough(wrapper))
        server, _ = serverConnection(self)
        server.TLS = True
        self.assertFalse(supportsWriteThrough(server))


class WriteThroughTests(SynchronousTestCase):
    def test_sentAtOnce(self) -> None:
        """
        With nothing queued, the bytes reach the peer without a reactor turn.
        """
        server, peer = serverConnection(self)
        self.assertEqual(writeThrough(server, b"Hello, Michael!\n"), b"")
        self.assertEqual(peer.recv(100), b"Hello, Michael!\n")
        self.assertFalse(server._tempDataBuffer)

    def test_queuedFirstKeepsOrder(self) -> None:
        """
        Behind bytes already queued, nothing is sent: all of it is left to
        queue after them.
        """
        server, peer = serverConnection(self)
        server.write(b"first ")
        self.assertEqual(writeThrough(server, b"second"), b"second")
        self.assertEqual(server._tempDataBuffer, [b"first "])
        peer.setblocking(False)
        self.assertRaises(BlockingIOError, peer.recv, 100)

    def test_partialSendLeavesRest(self) -> None:
        """
        What the kernel does not take is left to the caller to queue, and
        once it is queued, later bytes are left to queue behind it.
        """
        server, _ = serverConnection(self)
        big = b"x" * (8 * 1024 * 1024)
        rest = writeThrough(server, big)
        self.assertTrue(0 < len(rest) < len(big))
        self.assertTrue(big.endswith(rest))
        self.assertFalse(server._tempDataBuffer)
        server.write(rest)
        self.assertEqual(writeThrough(server, b"after"), b"after")

    def test_closingLeavesAll(self) -> None:
        """
        A transport that is closing is sent nothing directly.
        """
        server, _ = serverConnection(self)
        server.disconnecting = True
        self.assertEqual(writeThrough(server, b"late"), b"late")

    def test_greetingUsesIt(self) -> None:
        """
        A greeting connection on plain TCP sends its banner and replies at
        once.
        """
        ours, peer = socket.socketpair()
        self.addCleanup(ours.close)
        self.addCleanup(peer.close)
        ours.setblocking(False)
        peer.settimeout(5)
        factory = GreetingFactory(clock=Clock())
        protocol = factory.buildProtocol(IPv4Address("TCP", *SOCKET_PEER))
        assert protocol is not None
        server = tcp.Server(ours, protocol, SOCKET_PEER, None, 1, MemoryReactor())  # type: ignore[arg-type]
        protocol.makeConnection(server)
        self.assertTrue(protocol.writesThrough)
        self.assertEqual(peer.recv(100), b"Welcome")
        protocol.dataReceived(b"Michael")
        self.assertEqual(peer.recv(100), b"Hello, Michael!")

    def test_greetingProducesOnceQueued(self) -> None:
        """
        A greeting connection writing through becomes its transport's
        producer only once a reply is queued, and before it is queued, so
        that the write that fills the transport's buffer pauses it.
        """
        ours, peer = socket.socketpair()
        self.addCleanup(ours.close)
        self.addCleanup(peer.close)
        ours.setblocking(False)
        factory = GreetingFactory(clock=Clock(), maxLength=1 << 22)
        protocol = factory.buildProtocol(IPv4Address("TCP", *SOCKET_PEER))
        assert protocol is not None
        server = tcp.Server(ours, protocol, SOCKET_PEER, None, 1, MemoryReactor())  # type: ignore[arg-type]
        protocol.makeConnection(server)
        protocol.dataReceived(b"Michael")
        self.assertIsNone(server.producer)
        self.assertFalse(protocol.producing)
        # More than the socket pair's buffers and the transport's hold.
        protocol.dataReceived(b"x" * (1 << 21))
        self.assertIs(server.producer, protocol)
        self.assertTrue(protocol.writePaused)
        self.assertTrue(server._tempDataBuffer)


def endings(events: list[dict[str, Any]]) -> list[str]:
    """
    How each connection the access log C{events} tell of closed ended.
    """
    return [
        event["ended"] for event in events if event["greetdEvent"] == "connection.close"
    ]


class CleanCloseTests(SynchronousTestCase):
    """
    The failure a connection closed at once is lost with answers C{check}
    as any L{Failure} of C{ConnectionDone} does, by a class test.
    """

    CHECKED: tuple[str | type[BaseException], ...] = (
        error.ConnectionDone,
        error.ConnectionLost,
        error.ConnectionAborted,
        error.ConnectionClosed,
        Exception,
        BaseException,
        KeyboardInterrupt,
        ValueError,
        "twisted.internet.error.ConnectionDone",
        "twisted.internet.error.ConnectionAborted",
        "builtins.Exception",
    )

    def test_checkAgrees(self) -> None:
        plain = Failure(error.ConnectionDone())
        for one in self.CHECKED:
            self.assertIs(_DONE.check(one), plain.check(one), one)
        for first in self.CHECKED:
            for second in self.CHECKED:
                self.assertIs(_DONE.check(first, second), plain.check(first, second))
        self.assertIsNone(_DONE.check())

    def test_isFailure(self) -> None:
        self.assertIsInstance(_DONE, Failure)
        self.assertIsInstance(_DONE.value, error.ConnectionDone)


class CloseNowTests(SynchronousTestCase):
    def greeting(self) -> tuple[tcp.Server, socket.socket, list[dict[str, Any]]]:
        """
        A greeting connection on a real C{tcp.Server} over a socket pair,
        its reactor in memory, and the endings its access log records.
        """
        ours, peer = socket.socketpair()
        self.addCleanup(ours.close)
        self.addCleanup(peer.close)
        ours.setblocking(False)
        peer.settimeout(5)
        accessLog, events = capturingAccessLog()
        factory = GreetingFactory(clock=Clock(), accessLog=accessLog)
        protocol = factory.buildProtocol(IPv4Address("TCP", *SOCKET_PEER))
        assert protocol is not None
        reactor = MemoryReactor()
        server = tcp.Server(ours, protocol, SOCKET_PEER, None, 1, reactor)  # type: ignore[arg-type]
        reactor.addReader(server)
        protocol.makeConnection(server)
        self.assertEqual(peer.recv(100), b"Welcome")
        return server, peer, events

    def test_exitClosesAtOnce(self) -> None:
        """
        C{exit} on a connection that owes nothing closes it before
        C{dataReceived} returns: the reactor forgets it, the peer reads the
        end of the stream, and the access log has its line, ended C{exit},
        with no turn of the reactor.
        """
        server, peer, events = self.greeting()
        server.protocol.dataReceived(b"Michael\nexit\n")
        self.assertTrue(server.disconnected)
        self.assertNotIn(server, server.reactor.getReaders())
        self.assertEqual(peer.recv(100), b"Hello, Michael!\n")
        self.assertEqual(peer.recv(100), b"")
        self.assertEqual(endings(events), ["exit"])

    def test_owedWaitsForTheWriteLoop(self) -> None:
        """
        With bytes queued the peer has not taken, the close is the write
        loop's, once they are sent: nothing is cut.
        """
        server, peer, events = self.greeting()
        server.write(b"queued")
        self.assertFalse(closeNow(server))
        self.assertFalse(server.disconnected)
        server.protocol.dataReceived(b"exit\n")
        self.assertFalse(server.disconnected)
        self.assertEqual(endings(events), [])
        self.assertEqual(server.doWrite(), main.CONNECTION_DONE)
        self.assertEqual(peer.recv(100), b"queued")

    def test_errorClosingLogged(self) -> None:
        """
        An exception from the protocol's C{connectionLost} (the access
        log's disk full) is logged, as the reactor would log it, not raised
        to whoever closed: the idle sweep goes on to close the others.
        """
        server, peer = serverConnection(self)

        class Failing(Protocol):
            def connectionLost(self, reason: object = None) -> None:
                raise OSError(28, "No space left on device")

        server.protocol = Failing()
        self.assertTrue(closeNow(server))
        self.assertTrue(server.disconnected)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertEqual(peer.recv(100), b"")


class DatagramWriterTests(SynchronousTestCase):
    def test_plainUDPSendsDirectly(self) -> None:
        """
        On a real UDP port the writer is the socket's own C{sendto}, and the
        datagram arrives.
        """
        port = udp.Port(
            0, DatagramProtocol(), "127.0.0.1", reactor=MemoryReactorClock()
        )
        port.startListening()
        self.addCleanup(port.stopListening)
        writer = datagramWriter(port)
        self.assertEqual(writer, port.socket.sendto)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.bind(("127.0.0.1", 0))
            peer.settimeout(5)
            writer(b"Hello, x!", peer.getsockname())
            self.assertEqual(peer.recv(100), b"Hello, x!")

    def test_datagramPortRepliesToSources(self) -> None:
        """
        On a L{DatagramPort} that reads through the C library (PyPy) the
        writer is its C{replyTo}; on one that does not (CPython), it is the
        socket's own C{sendto}, one Python call fewer a reply.
        """
        port = DatagramPort(
            0, DatagramProtocol(), "127.0.0.1", reactor=MemoryReactorClock()
        )
        port.startListening()
        self.addCleanup(port.stopListening)
        expected = port.replyTo if readsDirectly() else port.socket.sendto
        self.assertEqual(datagramWriter(port), expected)

    def test_othersUseWrite(self) -> None:
        transport = StringTransport()
        self.assertEqual(datagramWriter(transport), transport.write)
