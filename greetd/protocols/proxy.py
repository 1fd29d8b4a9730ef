"""
The PROXY protocol (HAProxy's C{send-proxy}, nginx's C{proxy_protocol}), so
that a greeting or a datagram behind a load balancer is seen to come from its
client's own address.

Twisted's C{haproxy:} endpoint connects the wrapped protocol as soon as
the TCP connection opens, before the PROXY header has arrived: the
greeting protocol would apply its limits and access control to the load
balancer's address, and send its banner before knowing whom to.  Here the
wrapped protocol is connected only once the header has been read.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Tuple, cast

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IDelayedCall,
    IListeningPort,
    IProtocolFactory,
    IReactorTime,
    IStreamServerEndpoint,
    ITransport,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.protocols.haproxy._exceptions import InvalidProxyHeader
from twisted.protocols.haproxy._v1parser import V1Parser  # Twisted's, not public
from twisted.protocols.haproxy._v2parser import V2Parser
from twisted.protocols.haproxy._wrapper import (  # Twisted's parser, not public
    HAProxyProtocolWrapper,
    HAProxyWrappingFactory,
)
from twisted.python.failure import Failure
from zope.interface import directlyProvides, implementer, providedBy

from greetd.daemon.endpoints import PREFIX as PREFIX  # for importers from here
from greetd.daemon.endpoints import streamServerFromString as checkedServerFromString

#: The most bytes a PROXY header at the start of a datagram may take: the
#: 536 bytes of the smallest TCP segment, which the protocol's specification
#: sizes headers to fit (a version 1 line is at most 107; version 2 leaves
#: room for TLVs).
MAX_HEADER = 536

#: Seconds a connection may take to send its PROXY header.  A load balancer
#: sends it at once; a client that does not is not one.
DEFAULT_HEADER_TIMEOUT = 10.0


class _Collector:
    """
    Stands in for the wrapped protocol while the header is parsed, keeping
    any bytes that came after it.
    """

    def __init__(self) -> None:
        self.data = b""

    def dataReceived(self, data: bytes) -> None:
        self.data += data


class ProxyHeaderProtocol(HAProxyProtocolWrapper):
    """
    Read the PROXY header, then connect the wrapped protocol to a transport
    whose C{getPeer} is the client's address.
    """

    factory: ProxyHeaderFactory
    _started = False
    _headerTimeout: IDelayedCall | None = None

    def makeConnection(self, transport: ITransport) -> None:
        directlyProvides(self, providedBy(transport))
        Protocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)  # type: ignore[no-untyped-call]
        timeout = self.factory.headerTimeout
        if timeout:
            self._headerTimeout = self.factory.clock.callLater(timeout, self._late)

    def dataReceived(self, data: bytes) -> None:
        if self._started:
            self.wrappedProtocol.dataReceived(data)
            return
        wrapped, collector = self.wrappedProtocol, _Collector()
        self.wrappedProtocol = collector  # type: ignore[assignment]
        try:
            super().dataReceived(data)
        finally:
            self.wrappedProtocol = wrapped
        if self._proxyInfo is not None and not self.disconnecting:
            self._started = True
            self._cancelTimeout()
            wrapped.makeConnection(cast(ITransport, self))
            if collector.data:
                wrapped.dataReceived(collector.data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancelTimeout()
        if self._started:
            super().connectionLost(reason)  # type: ignore[no-untyped-call]
        else:
            self.factory.unregisterProtocol(self)  # type: ignore[no-untyped-call]

    def _late(self) -> None:
        self._headerTimeout = None
        transport = self.transport
        if transport is not None:
            transport.abortConnection()  # type: ignore[attr-defined]

    def _cancelTimeout(self) -> None:
        call, self._headerTimeout = self._headerTimeout, None
        if call is not None and call.active():
            call.cancel()


class ProxyHeaderFactory(HAProxyWrappingFactory):
    """
    Wraps a factory's protocols in L{ProxyHeaderProtocol}.

    @ivar clock: The time source for the header timeout.
    @ivar headerTimeout: Seconds to wait for the header; 0 for ever.
    """

    protocol = ProxyHeaderProtocol  # type: ignore[assignment]
    noisy = False

    def __init__(
        self,
        wrappedFactory: IProtocolFactory,
        clock: IReactorTime,
        headerTimeout: float = DEFAULT_HEADER_TIMEOUT,
    ) -> None:
        super().__init__(wrappedFactory)  # type: ignore[no-untyped-call]
        self.clock = clock
        self.headerTimeout = headerTimeout


@implementer(IStreamServerEndpoint)
class ProxiedServerEndpoint:
    """
    An endpoint whose connections start with a PROXY header.
    """

    def __init__(
        self,
        endpoint: IStreamServerEndpoint,
        clock: IReactorTime,
        headerTimeout: float = DEFAULT_HEADER_TIMEOUT,
    ) -> None:
        self.endpoint = endpoint
        self.clock = clock
        self.headerTimeout = headerTimeout

    def listen(self, factory: IProtocolFactory) -> Deferred[IListeningPort]:
        wrapped = ProxyHeaderFactory(factory, self.clock, self.headerTimeout)
        return self.endpoint.listen(wrapped)


def streamServerFromString(reactor: Any, description: str) -> IStreamServerEndpoint:
    """
    Like Twisted's C{serverFromString}, except that C{haproxy:} endpoints
    connect their protocols only once the PROXY header is read, and
    C{systemd:} ones are checked (L{greetd.daemon.endpoints.streamServerFromString}).
    """
    if description.startswith(PREFIX):
        inner = checkedServerFromString(reactor, description[len(PREFIX) :])
        return ProxiedServerEndpoint(inner, reactor)
    return checkedServerFromString(reactor, description)


#: The client address a datagram's PROXY header names: C{(host, port)}.
ClientAddress = Tuple[str, int]


def splitProxyHeader(datagram: bytes) -> tuple[ClientAddress | None, bytes]:
    """
    Split the PROXY header (version 1 or 2) a balancer put at the start of a
    datagram from the datagram the client sent, as nginx's
    C{proxy_protocol on} does for UDP: one header per datagram, in the same
    datagram.  It is parsed with Twisted's parsers, as for TCP, and its
    source must then be an IP address and a port.

    @return: The client's address, or L{None} for a header that names none
        (C{UNKNOWN}, C{LOCAL}: the balancer speaking for itself), and the
        client's datagram.
    @raise ValueError: For a datagram that does not start with a complete,
        valid header no longer than L{MAX_HEADER}.
    """
    if (
        datagram[:12] == V2Parser.PREFIX
        and len(datagram) >= 16
        and datagram[12] & 0xF0 == 0x20
    ):
        parser: V1Parser | V2Parser = V2Parser()
    elif datagram[:6] == b"PROXY ":
        parser = V1Parser()
    else:
        raise ValueError("no PROXY header")
    try:
        info, payload = parser.feed(datagram)
    except (InvalidProxyHeader, ValueError) as error:
        raise ValueError(f"invalid PROXY header ({type(error).__name__})") from None
    if info is None or payload is None:
        raise ValueError("incomplete PROXY header")
    if len(datagram) - len(payload) > MAX_HEADER:
        raise ValueError(f"PROXY header longer than {MAX_HEADER} bytes")
    source = info.source
    if source is None:
        return None, payload
    if not isinstance(source, (IPv4Address, IPv6Address)):
        raise ValueError("PROXY header source is not an IP address")
    host: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    try:
        host = ipaddress.ip_address(source.host)
    except ValueError:
        host = None
    if host is None or (host.version == 6) != isinstance(source, IPv6Address):
        raise ValueError("PROXY header source is not an address of its family")
    if not 0 <= source.port <= 65535:
        raise ValueError("PROXY header source port is out of range")
    return (str(host), source.port), payload
