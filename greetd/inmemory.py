"""
greetd's services served in memory, for the tests of programs that embed
greetd or talk to it: no socket, no reactor running, time moved by hand.

L{InMemoryGreetd} serves a L{GreetingFactory} (TCP) and a L{ReplyProtocol}
(UDP) on one L{Clock}.  Clients connect to it as they would to a daemon:
L{InMemoryGreetd.endpoint} is a client endpoint for L{greetOverTCP} or for
a L{GreetingClientProtocol} of your own, and L{InMemoryGreetd.reactor}
stands in for the reactor L{greetOverUDP} or a L{ReplyClientProtocol}
listens on.  Bytes and datagrams move only when the test says so, with
L{InMemoryGreetd.flush} (as C{treq.testing.StubTreq.flush} does), and time
only with L{InMemoryGreetd.advance}::

    greetd = InMemoryGreetd()
    greeting = greetOverTCP(greetd.endpoint(), [b"Ann"], clock=greetd.clock)
    greetd.flush()
    self.assertEqual(self.successResultOf(greeting).replies, [b"Hello, Ann!"])

TCP connections run through Twisted's in-memory transports
(L{twisted.test.iosim}); datagrams through a queue of this module's own.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IReactorUDP,
    IStreamClientEndpoint,
    IUDPTransport,
)
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock
from twisted.test.iosim import FakeTransport, IOPump, connect
from zope.interface import implementer

from greetd.protocols.datagram import ReplyProtocol
from greetd.protocols.greeting import GreetingFactory

#: Where the in-memory daemon listens, TCP and UDP alike.
SERVER = ("127.0.0.1", 9999)

#: Where clients connect and send from: a documentation address, and the
#: first of the ports handed out in turn.
CLIENT_HOST = "192.0.2.1"
FIRST_CLIENT_PORT = 40000

#: The most rounds of delivery one L{InMemoryGreetd.flush} makes: a bound on
#: the work of two peers that answer each other forever.
MAX_ROUNDS = 1000

#: A datagram on its way: the bytes, where from, where to.
_Datagram = tuple[bytes, tuple[str, int], tuple[str, int]]


@implementer(IStreamClientEndpoint)
class _Endpoint:
    """
    Connects each client to a new protocol of the in-memory daemon's factory.
    """

    def __init__(self, greetd: InMemoryGreetd, peer: IPv4Address | None) -> None:
        self._greetd = greetd
        self._peer = peer

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        greetd = self._greetd
        peer = self._peer or IPv4Address("TCP", CLIENT_HOST, greetd.clientPort())
        host = IPv4Address("TCP", *SERVER)
        client = protocolFactory.buildProtocol(host)
        server = greetd.factory.buildProtocol(peer)
        assert client is not None and server is not None
        greetd.pumps.append(
            connect(
                server,
                FakeTransport(server, True, host, peer),
                client,
                FakeTransport(client, False, peer, host),
                greet=False,
                clock=greetd.clock,
            )
        )
        return succeed(client)


@implementer(IListeningPort, IUDPTransport)
class _DatagramPort:
    """
    A UDP port of the in-memory network: what its protocol writes is queued
    for L{InMemoryGreetd.flush} to deliver.

    @ivar address: Its own C{(host, port)}.
    @ivar peer: Where C{write} without an address sends: set by C{connect}.
    """

    def __init__(
        self, greetd: InMemoryGreetd, protocol: DatagramProtocol, address: Any
    ) -> None:
        self._greetd = greetd
        self.protocol = protocol
        self.address = address
        self.peer: tuple[str, int] | None = None

    def connect(self, host: str, port: int) -> None:
        self.peer = (host, port)

    def write(self, datagram: bytes, addr: tuple[str, int] | None = None) -> None:
        to = addr if addr is not None else self.peer
        assert to is not None, "write without an address on an unconnected port"
        self._greetd.datagrams.append((datagram, self.address, to))

    def getHost(self) -> IPv4Address:
        return IPv4Address("UDP", *self.address)

    def setBroadcastAllowed(self, enabled: bool) -> None:
        pass

    def getBroadcastAllowed(self) -> bool:
        return False

    def startListening(self) -> None:
        self._greetd.ports[self.address] = self
        self.protocol.makeConnection(self)

    def stopListening(self) -> Deferred[None]:
        if self._greetd.ports.pop(self.address, None) is self:
            self.protocol.doStop()
        return succeed(None)


@implementer(IReactorTime, IReactorUDP)
class _Reactor:
    """
    What a UDP client of the in-memory daemon takes for its reactor, as
    L{greetOverUDP} does: the daemon's clock, and C{listenUDP} on the
    in-memory network.
    """

    def __init__(self, greetd: InMemoryGreetd) -> None:
        self._greetd = greetd
        self.callLater = greetd.clock.callLater
        self.seconds = greetd.clock.seconds
        self.getDelayedCalls = greetd.clock.getDelayedCalls

    def listenUDP(
        self, port: int, protocol: DatagramProtocol, interface: str = "", *args: Any
    ) -> IListeningPort:
        greetd = self._greetd
        address = (interface or CLIENT_HOST, port or greetd.clientPort())
        listening = _DatagramPort(greetd, protocol, address)
        listening.startListening()
        return listening


class InMemoryGreetd:
    """
    greetd's TCP and UDP services on an in-memory network, both served on
    L{SERVER}, with every client at L{CLIENT_HOST} on a port of its own.

    @ivar clock: The time of the services, and of clients given it.
    @ivar reactor: Stands in for the reactor of UDP clients: L{clock}, and
        C{listenUDP} on the in-memory network.
    @ivar factory: The L{GreetingFactory} serving TCP connections.
    @ivar replies: The L{ReplyProtocol} serving datagrams.
    @ivar pumps: The L{IOPump} of each TCP connection made.
    @ivar datagrams: Datagrams sent and not yet delivered.
    @ivar ports: The listening UDP ports, by address.
    """

    def __init__(
        self,
        factory: GreetingFactory | None = None,
        replies: ReplyProtocol | None = None,
        clock: Clock | None = None,
    ) -> None:
        """
        @param factory: The TCP service, built on C{clock}; by default a
            L{GreetingFactory} with the defaults of C{twistd greetd}.
        @param replies: The UDP service, likewise; by default a
            L{ReplyProtocol}.
        @param clock: The clock the services were built on; a new one
            unless given.
        """
        self.clock = clock if clock is not None else Clock()
        self.pumps: list[IOPump] = []
        self.datagrams: deque[_Datagram] = deque()
        self.ports: dict[tuple[str, int], _DatagramPort] = {}
        self._nextPort = FIRST_CLIENT_PORT
        self.reactor = _Reactor(self)
        self.factory = (
            factory if factory is not None else GreetingFactory(clock=self.clock)
        )
        self.replies = (
            replies if replies is not None else ReplyProtocol(clock=self.clock)
        )
        _DatagramPort(self, self.replies, SERVER).startListening()

    def clientPort(self) -> int:
        """
        A client port not handed out before.
        """
        self._nextPort += 1
        return self._nextPort

    def endpoint(self, peer: IPv4Address | None = None) -> IStreamClientEndpoint:
        """
        A client endpoint whose every connection reaches L{factory}.

        @param peer: The address the factory sees connecting; a new port of
            L{CLIENT_HOST} each time unless given.
        """
        return _Endpoint(self, peer)

    def flush(self) -> None:
        """
        Deliver every byte and datagram in flight, and what they cause in
        turn, until nothing moves (at most L{MAX_ROUNDS} rounds).  Time
        stands still.
        """
        for _ in range(MAX_ROUNDS):
            moved = False
            for pump in self.pumps:
                moved = pump.flush() or moved
            # Only those already queued: an answer waits for the next round.
            for _ in range(len(self.datagrams)):
                moved = True
                datagram, source, destination = self.datagrams.popleft()
                port = self.ports.get(destination)
                if port is not None:
                    port.protocol.datagramReceived(datagram, source)
            if not moved:
                return
        raise RuntimeError(f"still moving after {MAX_ROUNDS} rounds")

    def advance(self, seconds: float) -> None:
        """
        Move L{clock} on by C{seconds}, firing what falls due, and flush.
        """
        self.clock.advance(seconds)
        self.flush()
