"""
The endpoints greetd listens on beyond Twisted's own: datagram endpoints
(Twisted has stream endpoints only), a datagram socket inherited through
socket activation, a stream endpoint whose connections start with a
PROXY header, and TLS ones whose protocols sit behind a
L{HandshakeGate <greetd.protocols.tls.HandshakeGate>}.  Their descriptions
are parsed by L{greetd.daemon.plan}.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Callable

from twisted.internet.defer import Deferred, execute, fail
from twisted.internet.endpoints import (
    SSL4ServerEndpoint,
    TCP4ServerEndpoint,
    serverFromString,
)
from twisted.internet.error import AlreadyListened
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IReactorSocket,
    IReactorTime,
    IReactorUDP,
    IStreamServerEndpoint,
)
from twisted.internet.protocol import DatagramProtocol
from twisted.python.systemd import ListenFDs
from zope.interface import Interface, implementer

from greetd.core.tls import requireTLS
from greetd.protocols.greeting import GreetingFactory
from greetd.protocols.proxy import DEFAULT_HEADER_TIMEOUT, ProxyHeaderFactory
from greetd.protocols.tls import HandshakeGateFactory
from greetd.twisted_private import (
    inheritedSockets,
    sslContextFactory,
    sslListeningArguments,
)

#: The largest UDP payload, and so the largest useful receive buffer.
MAX_DATAGRAM = 65535


class IDatagramServerEndpoint(Interface):
    """
    Something a L{DatagramProtocol} can listen on, like
    L{IStreamServerEndpoint <twisted.internet.interfaces.IStreamServerEndpoint>}
    for streams.
    """

    def listen(protocol: DatagramProtocol) -> Deferred[IListeningPort]:
        """
        Start receiving datagrams for C{protocol}.
        """


@implementer(IDatagramServerEndpoint)
class UDPServerEndpoint:
    """
    A UDP port on an IPv4 or IPv6 address.

    @ivar maxPacketSize: The receive buffer size; a longer datagram arrives
        truncated to it, so make it one more than the longest datagram you
        answer to tell such datagrams apart.
    """

    def __init__(
        self,
        reactor: IReactorUDP,
        port: int,
        interface: str = "",
        maxPacketSize: int = MAX_DATAGRAM,
    ) -> None:
        self._reactor = reactor
        self.port = port
        self.interface = interface
        self.maxPacketSize = maxPacketSize

    def listen(self, protocol: DatagramProtocol) -> Deferred[IListeningPort]:
        return execute(
            self._reactor.listenUDP,
            self.port,
            protocol,
            self.interface,
            self.maxPacketSize,
        )


@implementer(IDatagramServerEndpoint)
class AdoptedDatagramServerEndpoint:
    """
    A datagram socket someone else bound, such as systemd for socket
    activation, adopted by file descriptor, the way Twisted's
    L{AdoptedStreamServerEndpoint
    <twisted.internet.endpoints.AdoptedStreamServerEndpoint>} adopts stream
    sockets: made non-blocking first (inherited sockets are blocking, and a
    blocking read would hang the reactor), then closed once the reactor
    holds its own duplicate.

    @ivar fileno: The inherited file descriptor.
    @ivar addressFamily: Its address family (C{socket.AF_INET} or C{AF_INET6}).
    @ivar maxPacketSize: As for L{UDPServerEndpoint}.
    """

    def __init__(
        self,
        reactor: IReactorSocket,
        fileno: int,
        addressFamily: socket.AddressFamily,
        maxPacketSize: int = MAX_DATAGRAM,
    ) -> None:
        self._reactor = reactor
        self.fileno = fileno
        self.addressFamily = addressFamily
        self.maxPacketSize = maxPacketSize
        self._used = False

    _close = staticmethod(os.close)

    def listen(self, protocol: DatagramProtocol) -> Deferred[IListeningPort]:
        if self._used:
            return fail(AlreadyListened())
        self._used = True
        return execute(self._adopt, protocol)

    def _adopt(self, protocol: DatagramProtocol) -> IListeningPort:
        os.set_blocking(self.fileno, False)
        port = self._reactor.adoptDatagramPort(
            self.fileno, self.addressFamily, protocol, self.maxPacketSize
        )
        self._close(self.fileno)
        return port


def inheritedDescriptor(
    sockets: ListenFDs, index: str | None = None, name: str | None = None
) -> int:
    """
    The inherited file descriptor at C{index} or named C{name}.

    @raise ValueError: Unless exactly one of C{index} and C{name} is given
        and it names an inherited socket; the message says what was
        inherited, which is the first thing an operator needs to know.
    """
    if (index is None) == (name is None):
        raise ValueError("give exactly one of index= and name=")
    descriptors = sockets.inheritedDescriptors()
    if name is not None:
        named = sockets.inheritedNamedDescriptors()
        if name not in named:
            names = ", ".join(sorted(named)) or "none"
            raise ValueError(
                f"no inherited socket is named {name!r} (LISTEN_FDNAMES names: {names})"
            )
        return named[name]
    assert index is not None
    try:
        position = int(index)
    except ValueError:
        raise ValueError(f"index {index!r} is not a number") from None
    if not 0 <= position < len(descriptors):
        raise ValueError(
            f"no inherited socket at index {position} "
            f"({len(descriptors)} inherited, LISTEN_FDS)"
        )
    return descriptors[position]


def inheritedSocket(
    kind: socket.SocketKind,
    domain: str | None = None,
    index: str | None = None,
    name: str | None = None,
) -> tuple[int, socket.AddressFamily]:
    """
    The inherited descriptor a C{systemd:} description names, and its
    family, once checked to be a socket of the family and C{kind} asked for:
    adopting the wrong kind of socket fails late and obscurely.

    @raise ValueError: Saying what is wrong, and what was inherited.
    """
    if domain is None:
        raise ValueError("an address family is required: domain=INET or INET6")
    if domain not in ("INET", "INET6"):
        raise ValueError(f"domain {domain!r} is not INET or INET6")
    family = socket.AF_INET if domain == "INET" else socket.AF_INET6
    fileno = inheritedDescriptor(inheritedSockets(), index, name)
    probe = socket.socket(fileno=fileno)
    try:
        actual = (probe.family, probe.type)
    finally:
        probe.detach()
    if actual != (family, kind):
        raise ValueError(
            f"inherited socket {name or index} is {actual[0].name} "
            f"{actual[1].name}, not {family.name} {kind.name}"
            + (" (say domain=INET6)" if actual[0] == socket.AF_INET6 else "")
        )
    return fileno, family


@implementer(IStreamServerEndpoint)
class ProxiedServerEndpoint:
    """
    An endpoint whose connections start with a PROXY header.

    @ivar inner: Wraps the factory inside the PROXY layer, if given: TLS
        for C{haproxy:ssl:}, whose header comes before the handshake, where
        HAProxy's C{send-proxy} and nginx's C{proxy_protocol} put it.
    """

    def __init__(
        self,
        endpoint: IStreamServerEndpoint,
        clock: IReactorTime,
        headerTimeout: float = DEFAULT_HEADER_TIMEOUT,
        inner: Callable[[IProtocolFactory], IProtocolFactory] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.clock = clock
        self.headerTimeout = headerTimeout
        self.inner = inner

    def listen(self, factory: IProtocolFactory) -> Deferred[IListeningPort]:
        admission = factory.admission if isinstance(factory, GreetingFactory) else None
        if self.inner is not None:
            factory = self.inner(factory)
        wrapped = ProxyHeaderFactory(
            factory,
            self.clock,
            self.headerTimeout,
            admission,
            tellsRefusals=self.inner is None,
        )
        return self.endpoint.listen(wrapped)


@implementer(IStreamServerEndpoint)
class GatedServerEndpoint:
    """
    A TLS server endpoint whose protocols are behind a L{HandshakeGate}.

    @ivar endpoint: The TLS endpoint, such as Twisted's C{ssl:}.
    """

    def __init__(self, endpoint: IStreamServerEndpoint) -> None:
        self.endpoint = endpoint

    def listen(self, factory: IProtocolFactory) -> Deferred[IListeningPort]:
        return self.endpoint.listen(HandshakeGateFactory(factory))


def tlsServerFromString(reactor: Any, description: str) -> IStreamServerEndpoint:
    """
    The endpoint for an C{ssl:} or C{tls:} description, with every option
    Twisted's own takes, behind a L{HandshakeGate}.

    @raise ValueError: When TLS is not installed, or (as Twisted raises
        them) for bad options and unreadable certificate files.
    """
    requireTLS()
    return GatedServerEndpoint(serverFromString(reactor, description))


def _sslEndpoint(reactor: Any, description: str) -> SSL4ServerEndpoint:
    requireTLS()
    endpoint = serverFromString(reactor, description)
    if not isinstance(endpoint, SSL4ServerEndpoint):
        raise ValueError(
            "only ssl: can be served on a shared socket or behind haproxy:"
        )
    return endpoint


def tlsServerFactory(
    reactor: Any, description: str, factory: IProtocolFactory
) -> IProtocolFactory:
    """
    C{factory} with the TLS of the C{ssl:} C{description}, to serve on a
    socket that someone else bound (a worker's, L{greetd.daemon.worker}) or
    behind a PROXY header (L{greetd.protocols.proxy}): what Twisted's
    C{ssl:} endpoint listens with, behind a L{HandshakeGate}.

    @param reactor: Parses C{description}, and sends TLS records.

    @raise ValueError: As L{tlsServerFromString} does, and for a
        description that is not C{ssl:}.
    """
    from twisted.protocols.tls import TLSMemoryBIOFactory

    contextFactory = sslContextFactory(_sslEndpoint(reactor, description))
    return TLSMemoryBIOFactory(
        contextFactory, False, HandshakeGateFactory(factory), reactor
    )


def plainServerEndpoint(reactor: Any, description: str) -> IStreamServerEndpoint:
    """
    The TCP endpoint under the C{ssl:} C{description} (its port, backlog
    and interface) without its TLS, for what comes before the handshake.

    @raise ValueError: As L{tlsServerFactory} does.
    """
    port, backlog, interface = sslListeningArguments(_sslEndpoint(reactor, description))
    return TCP4ServerEndpoint(reactor, port, backlog, interface)
