"""
Tests for L{greetd.twisted_private}: each fails loudly, naming the Twisted
version, when a private Twisted name greetd relies on changes.
"""

from __future__ import annotations

import gc
import inspect
import select
import socket

from twisted.internet import endpoints, main, tcp, udp
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import serverFromString
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.pollreactor import PollReactor
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.python.systemd import ListenFDs
from twisted.trial.unittest import SynchronousTestCase

import twisted
from greetd.twisted_private import (
    AddressSparingPort,
    NamedOnDemandServer,
    adoptedPort,
    epollDispatch,
    inheritedSockets,
    readExclusively,
    readReceived,
    sendsNothingFirst,
    sslContextFactory,
    sslListeningArguments,
    unsentBytes,
)
from tests.certificates import temporaryCredentials
from tests.helpers import EPOLLEXCLUSIVE, epollRegistrations, serverConnection


class PrivateNamesTests(SynchronousTestCase):
    def requirePrivate(self, owner: object, name: str, where: str) -> None:
        if not hasattr(owner, name):
            self.fail(
                f"Twisted {twisted.version.short()} changed {where}: {name} is "
                "gone, and greetd.twisted_private relies on it"
            )

    def test_tcpServerBuffers(self) -> None:
        """
        C{tcp.Server} keeps C{_tempDataBuffer}, C{dataBuffer}, C{offset} and
        C{_writeDisconnected}, and they mean what write-through reads.
        """
        server, _ = serverConnection(self)
        for name in ("_tempDataBuffer", "dataBuffer", "offset", "_writeDisconnected"):
            self.requirePrivate(server, name, "twisted.internet.tcp.Server")
        self.assertTrue(sendsNothingFirst(server))
        server.write(b"queued")
        self.assertFalse(sendsNothingFirst(server))

    def test_tcpServerWriteShutdown(self) -> None:
        """
        A C{tcp.Server} whose sending side is shut down, or which is closing,
        sends nothing more through its socket.
        """
        server, _ = serverConnection(self)
        server.loseWriteConnection()
        server.doWrite()  # The reactor's next turn: the sending side shuts.
        self.requirePrivate(server, "_writeDisconnected", "twisted.internet.tcp.Server")
        self.assertTrue(server._writeDisconnected)
        self.assertFalse(sendsNothingFirst(server))
        other, _ = serverConnection(self)
        other.loseConnection()
        self.assertFalse(sendsNothingFirst(other))

    def test_epollDispatch(self) -> None:
        """
        C{EPollReactor} keeps its epoll object as C{_poller}, its
        selectables by descriptor as C{_selectables}, runs one event with
        C{_doReadOrWrite} and disconnects a selectable with
        C{_disconnectSelectable}, which greetd's reactor calls.
        """
        reactor = EPollReactor()
        self.addCleanup(reactor._poller.close)
        self.addCleanup(reactor.waker.connectionLost, None)
        for name in (
            "_poller",
            "_selectables",
            "_doReadOrWrite",
            "_disconnectSelectable",
        ):
            self.requirePrivate(reactor, name, "twisted.internet.epollreactor")
        poller, selectables, dispatch, disconnect = epollDispatch(reactor)
        self.assertTrue(hasattr(poller, "poll"))
        self.assertIn(reactor.waker.fileno(), selectables)
        self.assertEqual(
            list(inspect.signature(dispatch).parameters), ["selectable", "fd", "event"]
        )
        self.assertEqual(
            list(inspect.signature(disconnect).parameters)[:3],
            ["selectable", "why", "isRead"],
        )

    def test_readExclusively(self) -> None:
        """
        C{EPollReactor} keeps its epoll object as C{_poller} and the
        descriptors it reads and writes in C{_reads} and C{_writes}:
        L{readExclusively} registers a reader again there with
        C{EPOLLEXCLUSIVE}, and Twisted's C{removeReader} still removes it.
        """
        reactor = EPollReactor()
        self.addCleanup(reactor._poller.close)
        self.addCleanup(reactor.waker.connectionLost, None)
        for name in ("_poller", "_reads", "_writes"):
            self.requirePrivate(reactor, name, "twisted.internet.epollreactor")
        port = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
        self.addCleanup(port.socket.close)
        fd = port.fileno()

        def events() -> dict[int, int]:
            # The kernel adds EPOLLERR and EPOLLHUP to every registration.
            asked = select.EPOLLIN | select.EPOLLOUT | EPOLLEXCLUSIVE
            return {
                registered: events & asked
                for registered, events, _ in epollRegistrations()
                if registered == fd
            }

        self.assertEqual(events(), {fd: select.EPOLLIN})
        self.assertTrue(readExclusively(reactor, port))
        self.assertEqual(events(), {fd: select.EPOLLIN | EPOLLEXCLUSIVE})
        reactor.removeReader(port)
        self.assertEqual(events(), {})

    def test_readExclusivelyRefused(self) -> None:
        """
        Where the kernel refuses C{EPOLLEXCLUSIVE} (Linux does for a
        descriptor that is itself an epoll object), L{readExclusively} says
        so and leaves the reader read as Twisted registered it.
        """
        reactor = EPollReactor()
        self.addCleanup(reactor._poller.close)
        self.addCleanup(reactor.waker.connectionLost, None)
        inner = select.epoll()
        self.addCleanup(inner.close)

        class Reader:
            def fileno(self) -> int:
                return inner.fileno()

            def logPrefix(self) -> str:
                return "Reader"

        reader = Reader()
        reactor.addReader(reader)
        self.addCleanup(reactor.removeReader, reader)
        fd = inner.fileno()
        self.assertFalse(readExclusively(reactor, reader))
        registered = {
            where: events & (select.EPOLLIN | EPOLLEXCLUSIVE)
            for where, events, _ in epollRegistrations()
            if where == fd
        }
        self.assertEqual(registered, {fd: select.EPOLLIN})

    def test_readExclusivelyElsewhere(self) -> None:
        """
        L{readExclusively} changes nothing on a reactor without epoll.
        """
        reactor = PollReactor()
        self.addCleanup(reactor.waker.connectionLost, None)
        port = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
        self.addCleanup(port.socket.close)
        self.assertFalse(readExclusively(reactor, port))
        self.assertIn(port, reactor.getReaders())
        self.assertFalse(readExclusively(MemoryReactorClock(), port))

    def test_systemdReading(self) -> None:
        """
        Twisted's C{systemd:} parser keeps its reading of the inherited
        sockets as C{_SystemdParser._sddaemon}, which greetd shares.
        """
        self.requirePrivate(endpoints, "_SystemdParser", "twisted.internet.endpoints")
        parser = endpoints._SystemdParser  # type: ignore[attr-defined]
        self.requirePrivate(parser, "_sddaemon", "_SystemdParser")
        self.assertIsInstance(parser._sddaemon, ListenFDs)
        self.assertIs(inheritedSockets(), parser._sddaemon)

    def test_sslEndpoint(self) -> None:
        """
        Twisted's C{ssl:} endpoint keeps its parsed TLS options as
        C{_sslContextFactory} and where it listens as C{_port}, C{_backlog}
        and C{_interface}.
        """
        _, key, certificate = temporaryCredentials(self)
        endpoint = serverFromString(
            MemoryReactorClock(),
            f"ssl:7:privateKey={key}:certKey={certificate}:interface=127.0.0.1",
        )
        for name in ("_sslContextFactory", "_port", "_backlog", "_interface"):
            self.requirePrivate(endpoint, name, "SSL4ServerEndpoint")
        self.assertEqual(sslListeningArguments(endpoint), (7, 50, "127.0.0.1"))
        self.assertTrue(hasattr(sslContextFactory(endpoint), "getContext"))

    def test_adoptedPort(self) -> None:
        """
        C{tcp.Port} and C{udp.Port} build a port of their own type on an
        inherited socket with C{_fromListeningDescriptor}, which
        L{adoptedPort} calls for a subclass.
        """

        class StreamPort(tcp.Port):
            pass

        class DatagramPort(udp.Port):
            pass

        for portType in (tcp.Port, udp.Port):
            self.requirePrivate(portType, "_fromListeningDescriptor", portType.__name__)
        for portType, kind, args in (
            (StreamPort, socket.SOCK_STREAM, (Factory(),)),
            (DatagramPort, socket.SOCK_DGRAM, (DatagramProtocol(), 100)),
        ):
            bound = socket.socket(socket.AF_INET, kind)
            self.addCleanup(bound.close)
            bound.bind(("127.0.0.1", 0))
            if kind == socket.SOCK_STREAM:
                bound.listen(1)
            bound.setblocking(False)
            port = adoptedPort(
                portType, MemoryReactorClock(), bound.fileno(), socket.AF_INET, *args
            )
            self.assertIs(type(port), portType)
            port.startListening()
            self.addCleanup(port.stopListening)
            self.assertEqual(port.getHost().port, bound.getsockname()[1])

    def test_readReceived(self) -> None:
        """
        C{tcp.Connection._dataReceived} hands what was read to the protocol
        and returns what the protocol's C{dataReceived} does, or end of
        file for nothing read: what L{readReceived} returns for C{doRead}.
        """
        server, _ = serverConnection(self)
        self.requirePrivate(server, "_dataReceived", "twisted.internet.tcp.Server")
        received: list[bytes] = []
        server.protocol.dataReceived = received.append  # type: ignore[method-assign]
        self.assertIsNone(readReceived(server, b"Michael"))
        self.assertEqual(received, [b"Michael"])
        self.assertIs(readReceived(server, b""), main.CONNECTION_DONE)

    def test_unsentBytes(self) -> None:
        """
        C{tcp.Server} keeps what it has not sent in C{dataBuffer} (from
        C{offset}) and C{_tempDataLen}, which L{unsentBytes} adds up, through
        any transports wrapping it.
        """
        server, _ = serverConnection(self)
        for name in ("dataBuffer", "offset", "_tempDataLen"):
            self.requirePrivate(server, name, "twisted.internet.tcp.Server")
        self.assertEqual(unsentBytes(server), 0)
        server.write(b"x" * 100)
        self.assertEqual(unsentBytes(server), 100)
        wrapper = ProtocolWrapper(WrappingFactory(Factory()), Protocol())
        wrapper.makeConnection(server)
        self.assertEqual(unsentBytes(wrapper), 100)
        server.doWrite()
        self.assertEqual(unsentBytes(wrapper), 0)
        self.assertEqual(unsentBytes(StringTransport()), 0)

    def test_unsentBytesUnderTLS(self) -> None:
        """
        Under TLS a protocol's transport is a C{TLSMemoryBIOProtocol}, a
        C{ProtocolWrapper} whose C{__getattr__} hands C{dataBuffer} and the
        rest over from the TCP transport beneath it: L{unsentBytes} counts
        what that transport holds, encrypted replies included.
        """
        _, key, certificate = temporaryCredentials(self)
        endpoint = serverFromString(
            MemoryReactorClock(), f"ssl:7:privateKey={key}:certKey={certificate}"
        )
        factory = TLSMemoryBIOFactory(
            sslContextFactory(endpoint), False, Factory.forProtocol(Protocol)
        )
        server, _ = serverConnection(self)
        tls = factory.buildProtocol(server.getPeer())
        self.assertIsInstance(tls, ProtocolWrapper)
        self.assertNotIn("dataBuffer", vars(type(tls)))
        tls.makeConnection(server)
        server.write(b"x" * 100)
        self.assertEqual(unsentBytes(tls), unsentBytes(server))
        self.assertGreaterEqual(unsentBytes(tls.wrappedProtocol.transport), 100)
        server.doWrite()
        self.assertEqual(unsentBytes(tls), 0)


class Recording(Factory):
    """
    A factory that records the address each connection is built for.
    """

    protocol = Protocol

    def __init__(self) -> None:
        self.addresses: list[object] = []

    def buildProtocol(self, addr: object) -> Protocol | None:
        self.addresses.append(addr)
        return super().buildProtocol(addr)  # type: ignore[arg-type]


class AddressSparingPortTests(SynchronousTestCase):
    def accept(self, factory: Factory) -> None:
        """
        Listen on loopback with C{factory}, connect once, and accept it as
        the reactor would.
        """
        port = AddressSparingPort(
            0, factory, interface="127.0.0.1", reactor=MemoryReactorClock()
        )
        port.startListening()
        self.addCleanup(port.connectionLost, None)
        client = socket.create_connection(port.socket.getsockname())
        self.addCleanup(client.close)
        port.doRead()
        self.assertEqual(port.sessionno, 1, "nothing accepted")
        for transport in list(port.reactor.readers):
            if isinstance(transport, tcp.Server):
                self.addCleanup(transport.socket.close)

    def test_buildAddr(self) -> None:
        self.requirePrivate(tcp.Port, "_buildAddr", "tcp.Port")

    requirePrivate = PrivateNamesTests.requirePrivate

    def test_doReadHandsBuiltAddress(self) -> None:
        """
        C{tcp.Port.doRead} hands each accepted connection's factory what
        C{_buildAddr} returns, so that overriding it is enough.
        """
        factory = Recording()
        marker = object()
        self.patch(AddressSparingPort, "_buildAddr", lambda port, address: marker)
        self.accept(factory)
        self.assertEqual(factory.addresses, [marker])

    def test_ignoredAddressNotBuilt(self) -> None:
        """
        For a factory whose C{buildProtocol} is C{Factory}'s own, which
        ignores it, no address is built.
        """
        built: list[tuple[object, ...]] = []
        original = tcp.Port._buildAddr
        self.patch(
            tcp.Port,
            "_buildAddr",
            lambda port, address: built.append(address) or original(port, address),
        )
        self.accept(Factory.forProtocol(Protocol))
        self.assertEqual(built, [])
        self.accept(Recording())
        self.assertEqual(len(built), 1)

    def test_addressBuiltForInstanceOverride(self) -> None:
        """
        A factory whose C{buildProtocol} was replaced on the instance is
        given the address.
        """
        addresses: list[object] = []
        factory = Factory.forProtocol(Protocol)
        factory.buildProtocol = lambda addr: addresses.append(addr) or Protocol()  # type: ignore[method-assign]
        self.accept(factory)
        [address] = addresses
        self.assertIsInstance(address, IPv4Address)

    def test_addressBuiltForOthers(self) -> None:
        """
        A factory with a C{buildProtocol} of its own is given the peer's
        address, as C{tcp.Port} gives it.
        """
        factory = Recording()
        self.accept(factory)
        [address] = factory.addresses
        self.assertIsInstance(address, IPv4Address)
        self.assertEqual(address.host, "127.0.0.1")


class Named(Protocol):
    def logPrefix(self) -> str:
        return "Named prefix"


class NamedOnDemandServerTests(SynchronousTestCase):
    """
    L{NamedOnDemandServer} is C{tcp.Server} but for when its names are
    made: these fail when Twisted's C{tcp.Server.__init__} changes.
    """

    def pair(
        self,
        client: tuple[object, ...],
        portNumber: int | None = 9999,
        protocol: type[Protocol] = Named,
    ) -> tuple[tcp.Server, NamedOnDemandServer]:
        """
        A C{tcp.Server} and a L{NamedOnDemandServer} made alike, each on a
        socket pair of its own, for a C{client} address.
        """
        server = None
        if portNumber is not None:
            server = tcp.Port(portNumber, Factory())
            server._realPortNumber = portNumber
        made = []
        for kind in (tcp.Server, NamedOnDemandServer):
            ours, theirs = socket.socketpair()
            self.addCleanup(ours.close)
            self.addCleanup(theirs.close)
            made.append(kind(ours, protocol(), client, server, 7, MemoryReactorClock()))
        twisteds, ondemand = made
        assert isinstance(ondemand, NamedOnDemandServer)
        return twisteds, ondemand

    def test_sameState(self) -> None:
        """
        Both leave the same attributes with the same values, their names
        apart, and are reading.
        """
        for client in (("127.0.0.2", 4000), ("::1", 4000, 0, 0)):
            twisteds, ondemand = self.pair(client)
            mine = {
                name: value
                for name, value in vars(ondemand).items()
                if name not in ("_protocolName", "_portNumber", "_prefix")
            }
            theirs = {
                name: value
                for name, value in vars(twisteds).items()
                if name not in ("logstr", "repstr")
            }
            self.assertEqual(sorted(mine), sorted(theirs))
            for name in ("client", "sessionno", "hostname", "connected", "server"):
                self.assertEqual(mine[name], theirs[name], name)
            self.assertIs(ondemand._addressType, twisteds._addressType)
            self.assertEqual(ondemand.getPeer(), twisteds.getPeer())
            self.assertIn(ondemand, ondemand.reactor.readers)

    def test_sameNamesPlainProtocol(self) -> None:
        """
        For a protocol whose C{logPrefix} is C{Protocol}'s, the names are
        made from its class when asked for, and are Twisted's.
        """
        twisteds, ondemand = self.pair(("127.0.0.2", 4000), protocol=Protocol)
        self.assertIsNone(ondemand._logstr)
        self.assertEqual(ondemand.logPrefix(), twisteds.logPrefix())
        self.assertEqual(ondemand.logPrefix(), "Protocol,7,127.0.0.2")
        self.assertEqual(repr(ondemand), repr(twisteds))

    def test_sameNames(self) -> None:
        """
        Asked for, the log prefix and C{repr} are Twisted's, and made once.
        """
        twisteds, ondemand = self.pair(("127.0.0.2", 4000))
        self.assertEqual(ondemand.logPrefix(), twisteds.logPrefix())
        self.assertEqual(ondemand.logPrefix(), "Named prefix,7,127.0.0.2")
        self.assertEqual(repr(ondemand), repr(twisteds))
        self.assertIs(ondemand.logPrefix(), ondemand.logPrefix())
        self.assertIs(repr(ondemand), repr(ondemand))

    def test_namedAfterLost(self) -> None:
        """
        Asked for once the connection is lost and its port has stopped,
        its names are what Twisted's were when the connection was made.
        """
        twisteds, ondemand = self.pair(("127.0.0.2", 4000))
        ondemand.server._realPortNumber = None
        ondemand.connectionLost(Failure(main.CONNECTION_DONE))
        self.assertFalse(hasattr(ondemand, "protocol"))
        self.assertEqual(ondemand.logPrefix(), twisteds.logPrefix())
        self.assertEqual(repr(ondemand), repr(twisteds))
        self.assertEqual(repr(ondemand), "<Named #7 on 9999>")

    def test_wrapperNamedAsMade(self) -> None:
        """
        A wrapping protocol's prefix, which names the protocol it wraps, is
        the one it gave when the connection was made, not after the
        wrapper let the wrapped protocol go.
        """
        ours, theirs = socket.socketpair()
        self.addCleanup(ours.close)
        self.addCleanup(theirs.close)
        wrapper = ProtocolWrapper(WrappingFactory(Factory()), Named())
        ondemand = NamedOnDemandServer(
            ours, wrapper, ("127.0.0.2", 4000), None, 7, MemoryReactorClock()
        )
        wrapper.makeConnection(ondemand)
        made = "Named prefix (ProtocolWrapper),7,127.0.0.2"
        ondemand.connectionLost(Failure(main.CONNECTION_DONE))
        self.assertIsNone(wrapper.wrappedProtocol)
        self.assertEqual(ondemand.logPrefix(), made)

    def test_protocolNotKept(self) -> None:
        """
        A lost connection keeps no reference to its protocol, so the two
        are freed without waiting for the cycle collector.
        """
        _, ondemand = self.pair(("127.0.0.2", 4000))
        protocol = ondemand.protocol
        ondemand.connectionLost(Failure(main.CONNECTION_DONE))
        self.assertNotIn(protocol, [value for value in vars(ondemand).values()])
        self.assertFalse(
            any(referrer is ondemand for referrer in gc.get_referrers(protocol))
        )
