"""
Tests for L{greetd.protocols.tls}: the greeting protocol over Twisted's
real TLS transport, client and server connected in memory.
"""

from __future__ import annotations

import sys
from unittest import mock

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.protocol import ClientFactory, Protocol, connectionDone
from twisted.internet.ssl import Certificate, PrivateCertificate, optionsForClientTLS
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from greetd.core.access import TrustedPeers, parseNetwork
from greetd.core.limits import ConnectionLimiter
from greetd.core.tls import requireTLS, tlsProblem
from greetd.daemon.endpoints import GatedServerEndpoint, tlsServerFactory
from greetd.daemon.plan import streamServerFromString
from greetd.protocols.greeting import GreetingFactory
from greetd.protocols.tls import HandshakeGate, HandshakeGateFactory
from tests.certificates import SERVER_NAME, credentials, temporaryCredentials
from tests.helpers import PEER, AbortableTransport, capturingAccessLog

#: What the server may have written and the client not read before the
#: server's "kernel" stops taking more: its send buffer, in the pump.
SEND_BUFFER = 64 * 1024


class Reader(Protocol):
    """
    The client's application: keeps what it is sent.
    """

    def __init__(self) -> None:
        self.received = b""
        self.lost = False

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost = True


def serverTLS(factory: IProtocolFactory, clock: Clock) -> TLSMemoryBIOFactory:
    """
    C{factory} behind TLS with the test certificate, as Twisted's C{ssl:}
    endpoint serves it (without L{HandshakeGate}, unless C{factory} is one),
    its small writes sent on C{clock}'s next turn.
    """
    made = credentials()
    options = PrivateCertificate.loadPEM(made.certificate + made.key).options()
    return TLSMemoryBIOFactory(options, False, factory, clock)


class Connection:
    """
    A TLS client connected in memory to a server protocol.  Bytes move only
    in L{pump}, and, as over TCP, never to a server that has paused reading,
    and never beyond L{SEND_BUFFER} unread: then the server's transport
    pauses its producer, as a full socket buffer makes Twisted's do.  An
    abort shows as C{disconnected} on the server's transport.

    Twisted's TLS transports send small writes on the next reactor turn:
    C{clock} is the reactor of both sides, turned in L{pump}.

    @ivar clientReads: Whether the client reads what the server sends.
    @ivar serverRead: How many bytes the server has read.
    """

    def __init__(self, server: IProtocolFactory, clock: Clock) -> None:
        self.clock = clock
        made = credentials()
        clientOptions = optionsForClientTLS(
            SERVER_NAME, trustRoot=Certificate.loadPEM(made.authority)
        )
        self.reader = Reader()
        clientFactory = TLSMemoryBIOFactory(
            clientOptions, True, ClientFactory.forProtocol(lambda: self.reader), clock
        )
        self.clientReads = True
        self.serverRead = 0
        self.server = server.buildProtocol(PEER)
        self.client = clientFactory.buildProtocol(PEER)
        assert self.server is not None and self.client is not None
        self.serverTransport = StringTransport(peerAddress=PEER)
        self.clientTransport = StringTransport()
        self.closed = False
        self.server.makeConnection(self.serverTransport)
        self.client.makeConnection(self.clientTransport)

    def pump(self) -> None:
        """
        Move bytes both ways until none can move; then, if either side has
        closed, both see the connection lost, as after a TCP close.
        """
        moved = True
        while moved and not self.closed:
            moved = False
            self.clock.advance(0)
            if self.serverTransport.producerState != "paused":
                data = self.clientTransport.value()
                self.clientTransport.clear()
                if data:
                    moved = True
                    self.serverRead += len(data)
                    self.server.dataReceived(data)
            if self.clientReads:
                data = self.serverTransport.value()
                self.serverTransport.clear()
                if data:
                    moved = True
                    self.client.dataReceived(data)
            producer = self.serverTransport.producer
            unread = len(self.serverTransport.value())
            if (
                unread > SEND_BUFFER
                and producer is not None
                and self.serverTransport.producerState == "producing"
            ):
                producer.pauseProducing()
        disconnecting = self.serverTransport.disconnecting
        if not self.closed and (disconnecting or self.clientTransport.disconnecting):
            self.closed = True
            for protocol in (self.server, self.client):
                protocol.connectionLost(Failure(ConnectionDone()))

    def send(self, data: bytes) -> None:
        """
        The client sends C{data}, and it moves.
        """
        self.client.write(data)
        self.pump()


class GreetingOverTLSTests(SynchronousTestCase):
    """
    The greeting protocol behind a L{HandshakeGate} over Twisted's TLS.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.factory = GreetingFactory(clock=self.clock, idleTimeout=10)

    def connect(self) -> Connection:
        return Connection(
            serverTLS(HandshakeGateFactory(self.factory), self.clock), self.clock
        )

    def test_withoutGateStalls(self) -> None:
        """
        The stall the gate is for: without it, the TLS layer holds the
        banner until its handshake is done and pauses the greeting
        protocol, which stops the TCP connection reading, so the handshake
        never completes and the client never gets the banner.  Nor does
        the idle timeout close the connection: TLS holds the error reply,
        and the close, until a handshake that cannot complete.
        """
        connection = Connection(serverTLS(self.factory, self.clock), self.clock)
        connection.pump()
        self.assertEqual(connection.serverTransport.producerState, "paused")
        self.assertEqual(connection.reader.received, b"")
        self.clock.pump([1] * 11)
        connection.pump()
        self.assertEqual(self.factory.errors["idle-timeout"], 1)
        self.assertFalse(connection.serverTransport.disconnecting)
        self.assertEqual(len(self.factory.connections), 1)

    def test_session(self) -> None:
        """
        Banner, reply and C{exit} work as over TCP, and C{exit} closes the
        connection (TLS close notifications and all).
        """
        connection = self.connect()
        connection.pump()
        self.assertEqual(connection.reader.received, b"Welcome")
        connection.send(b"M\n")
        self.assertEqual(connection.reader.received, b"WelcomeHello, M!\n")
        connection.send(b"exit\n")
        self.assertTrue(connection.closed)
        self.assertFalse(connection.serverTransport.disconnected)
        self.assertTrue(connection.reader.lost)
        self.assertEqual(self.factory.connections, set())
        self.assertEqual(self.factory.totals()["messages"], 1)

    def test_backpressure(self) -> None:
        """
        A client that sends without end and never reads stops being read
        once the server's unread replies fill its send buffer; reading
        resumes when the client reads.
        """
        connection = self.connect()
        connection.pump()
        connection.clientReads = False
        for _ in range(200):
            connection.send(b"flood\n" * 1000)
        self.assertEqual(connection.serverTransport.producerState, "paused")
        # 1.2 MB sent: the server read one buffer's worth of input (whose
        # replies are larger) and a handful of TLS records more.
        self.assertLess(connection.serverRead, 2 * SEND_BUFFER)
        connection.clientReads = True
        connection.pump()
        connection.serverTransport.producer.resumeProducing()
        connection.pump()
        self.assertEqual(connection.serverTransport.producerState, "producing")
        self.assertGreater(connection.serverRead, 2 * SEND_BUFFER)

    def test_idleTimeoutDuringHandshake(self) -> None:
        """
        A client that connects and never finishes its handshake is cut at
        the idle timeout: a TLS transport holding unsent data would
        otherwise wait for the handshake for ever.
        """
        connection = self.connect()
        self.clock.pump([1] * 11)
        self.assertTrue(connection.serverTransport.disconnected)
        connection.pump()
        self.assertEqual(self.factory.connections, set())
        self.assertEqual(self.factory.errors["idle-timeout"], 1)

    def test_unsentBeforeHandshakeNotCounted(self) -> None:
        """
        What the protocol wrote before a handshake that never finished (the
        banner, the idle timeout's error) never reached the peer: the
        access log and the totals count it as not sent.
        """
        accessLog, events = capturingAccessLog()
        self.factory.accessLog = accessLog
        connection = self.connect()
        self.clock.pump([1] * 11)
        connection.pump()
        [closed] = [e for e in events if e["greetdEvent"] == "connection.close"]
        self.assertEqual((closed["ended"], closed["bytesSent"]), ("idle-timeout", 0))
        self.assertEqual(self.factory.totals()["bytesSent"], 0)

    def test_sentAfterHandshakeCounted(self) -> None:
        connection = self.connect()
        connection.pump()
        connection.send(b"exit\n")
        self.assertEqual(self.factory.totals()["bytesSent"], len(b"Welcome"))

    def test_refusedBeforeHandshake(self) -> None:
        """
        A connection over a limit is cut at once, before any handshake
        work: a refusal must stay cheap under a flood, and could not be
        told before the handshake anyway.
        """
        self.factory.admission.limiter = ConnectionLimiter(maxConnections=1)
        first = self.connect()
        second = self.connect()
        for connection in (first, second):
            connection.pump()
        self.assertEqual(first.reader.received, b"Welcome")
        self.assertTrue(second.serverTransport.disconnected)
        self.assertEqual(second.reader.received, b"")
        self.assertEqual(self.factory.admission.refused["max-connections"], 1)
        self.assertEqual(self.factory.admission.lingering, 0)

    def test_idleTimeoutAfterHandshake(self) -> None:
        """
        After the handshake, the idle timeout says so and closes cleanly.
        """
        connection = self.connect()
        connection.pump()
        self.clock.pump([1] * 11)
        connection.pump()
        self.assertEqual(connection.reader.received, b"WelcomeError: idle timeout")
        self.assertFalse(connection.serverTransport.disconnected)
        self.assertTrue(connection.reader.lost)


class HandshakeGateTests(SynchronousTestCase):
    """
    L{HandshakeGate} alone, on an in-memory transport standing for TLS.
    """

    def setUp(self) -> None:
        self.transport = StringTransport()
        self.inner = Protocol()
        self.gate = HandshakeGateFactory(ClientFactory.forProtocol(lambda: self.inner))
        gate = self.gate.buildProtocol(PEER)
        assert isinstance(gate, HandshakeGate)
        self.protocol = gate
        gate.makeConnection(self.transport)

    def test_pauseWaitsForHandshake(self) -> None:
        """
        A pause before the handshake leaves the transport reading until the
        handshake completes; after it, pauses and resumptions pass.
        """
        self.protocol.pauseProducing()
        self.assertEqual(self.transport.producerState, "producing")
        self.protocol.handshakeCompleted()
        self.assertEqual(self.transport.producerState, "paused")
        self.protocol.resumeProducing()
        self.assertEqual(self.transport.producerState, "producing")
        self.protocol.pauseProducing()
        self.assertEqual(self.transport.producerState, "paused")

    def test_resumedBeforeHandshake(self) -> None:
        """
        A pause taken back before the handshake completes never reaches
        the transport.
        """
        self.protocol.pauseProducing()
        self.protocol.resumeProducing()
        self.protocol.handshakeCompleted()
        self.assertEqual(self.transport.producerState, "producing")

    def test_closeBeforeHandshakeAborts(self) -> None:
        transport = AbortableTransport()
        gate = self.gate.buildProtocol(PEER)
        assert gate is not None
        transport.protocol = gate
        gate.makeConnection(transport)
        gate.loseConnection()  # type: ignore[attr-defined]
        self.assertTrue(transport.aborted)

    def test_handshakeListenerTold(self) -> None:
        """
        A wrapped protocol that listens for the handshake still hears of it.
        """
        told = []
        self.inner.handshakeCompleted = lambda: told.append(True)  # type: ignore[attr-defined]
        from twisted.internet.interfaces import IHandshakeListener
        from zope.interface import directlyProvides

        directlyProvides(self.inner, IHandshakeListener)
        self.protocol.handshakeCompleted()
        self.assertEqual(told, [True])


class ServerFromStringTests(SynchronousTestCase):
    """
    C{ssl:} descriptions, for a listener and for a shared socket.
    """

    def setUp(self) -> None:
        _, key, certificate = temporaryCredentials(self)
        self.description = f"ssl:0:privateKey={key}:certKey={certificate}"
        self.factory = GreetingFactory(clock=Clock())

    def test_endpointGated(self) -> None:
        """
        An C{ssl:} listener serves its factory behind a L{HandshakeGate},
        on Twisted's own TLS.
        """
        reactor = MemoryReactorClock()
        endpoint = streamServerFromString(reactor, self.description)
        self.assertIsInstance(endpoint, GatedServerEndpoint)
        endpoint.listen(self.factory)
        [listened] = reactor.sslServers
        factory = listened[1]
        self.assertIsInstance(factory, HandshakeGateFactory)
        self.assertIs(factory.wrappedFactory, self.factory)  # type: ignore[attr-defined]

    def test_sharedSocketFactory(self) -> None:
        """
        L{tlsServerFactory} serves the description's TLS on a socket bound
        elsewhere: a client trusting the authority is greeted.
        """
        reactor = MemoryReactorClock()
        wrapped = tlsServerFactory(reactor, self.description, self.factory)
        connection = Connection(wrapped, reactor)
        connection.send(b"M\n")
        self.assertEqual(connection.reader.received, b"WelcomeHello, M!\n")

    def test_proxyHeaderBeforeTLS(self) -> None:
        """
        C{haproxy:ssl:} reads the PROXY header in clear, before the TLS
        handshake, where HAProxy and nginx send it; the greeting sees the
        client's address, when the balancer is trusted (C{--proxy-from}).
        """
        self.factory.admission.proxyFrom = TrustedPeers([parseNetwork(PEER.host)])
        reactor = MemoryReactorClock()
        endpoint = streamServerFromString(reactor, f"haproxy:{self.description}")
        endpoint.listen(self.factory)
        [(port, factory, _, interface)] = reactor.tcpServers
        self.assertEqual((port, interface), (0, ""))
        connection = Connection(factory, reactor)
        connection.server.dataReceived(b"PROXY TCP4 192.0.2.9 127.0.0.1 5000 9999\r\n")
        connection.send(b"M\n")
        self.assertEqual(connection.reader.received, b"WelcomeHello, M!\n")
        [protocol] = self.factory.connections
        self.assertEqual(protocol.host, "192.0.2.9")

    def test_proxyHeaderBeforeSNIRefused(self) -> None:
        """
        C{haproxy:tls:} would read the header inside TLS: refused.
        """
        with self.assertRaises(ValueError) as raised:
            streamServerFromString(MemoryReactorClock(), "haproxy:tls:/etc/certs")
        self.assertIn("use ssl:", str(raised.exception))

    def test_sharedSocketOnlySSL(self) -> None:
        with self.assertRaises(ValueError) as raised:
            tlsServerFactory(MemoryReactorClock(), "tcp:0", self.factory)
        self.assertIn("only ssl:", str(raised.exception))

    def test_missingCertificate(self) -> None:
        """
        A certificate that cannot be read is an error from the description.
        """
        with self.assertRaises(OSError):
            streamServerFromString(
                MemoryReactorClock(), "ssl:0:privateKey=/nonexistent/key.pem"
            )

    def test_notInstalled(self) -> None:
        """
        Without pyOpenSSL, the error says what to install.
        """
        with mock.patch.dict(sys.modules, {"OpenSSL": None}):
            with self.assertRaises(ValueError) as raised:
                requireTLS()
            self.assertRaises(
                ValueError,
                streamServerFromString,
                MemoryReactorClock(),
                self.description,
            )
        self.assertIn("pip install 'greetd[tls]'", str(raised.exception))
        self.assertIn("OpenSSL is not installed", str(raised.exception))


class TLSProblemTests(SynchronousTestCase):
    """
    L{tlsProblem} words TLS failures for the one line C{greet} prints.
    """

    def test_openSSL(self) -> None:
        from OpenSSL.SSL import Error

        problem = Error([("SSL routines", "", "certificate verify failed")])
        self.assertEqual(tlsProblem(problem), "certificate verify failed")
        self.assertEqual(tlsProblem(Error()), "Error")

    def test_otherName(self) -> None:
        from service_identity import VerificationError
        from service_identity.exceptions import IPAddressMismatch
        from service_identity.hazmat import IPAddress_ID

        mismatch = IPAddressMismatch(IPAddress_ID("127.0.0.2"))
        self.assertEqual(
            tlsProblem(VerificationError([mismatch])),
            "the certificate is not for 127.0.0.2",
        )

    def test_notTLS(self) -> None:
        self.assertIsNone(tlsProblem(ConnectionDone()))
        self.assertIsNone(tlsProblem(None))
