"""
The PROXY protocol (HAProxy's C{send-proxy}), so that a greeting behind a
load balancer sees its client's own address.

Twisted's C{haproxy:} endpoint connects the wrapped protocol as soon as
the TCP connection opens, before the PROXY header has arrived: the
greeting protocol would apply its limits and access control to the load
balancer's address, and send its banner before knowing whom to.  Here the
wrapped protocol is connected only once the header has been read.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, cast

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
from twisted.protocols.haproxy._wrapper import (  # Twisted's parser, not public
    HAProxyProtocolWrapper,
    HAProxyWrappingFactory,
)
from twisted.python.failure import Failure
from zope.interface import directlyProvides, implementer, providedBy

from greetd.daemon.endpoints import streamServerFromString as checkedServerFromString
from greetd.protocols.tls import plainServerEndpoint, tlsServerFactory

#: The prefix of a C{--tcp} description that expects a PROXY header.
PREFIX = "haproxy:"

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
        inner: Callable[[IProtocolFactory], IProtocolFactory] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.clock = clock
        self.headerTimeout = headerTimeout
        self.inner = inner

    def listen(self, factory: IProtocolFactory) -> Deferred[IListeningPort]:
        if self.inner is not None:
            factory = self.inner(factory)
        wrapped = ProxyHeaderFactory(factory, self.clock, self.headerTimeout)
        return self.endpoint.listen(wrapped)


def streamServerFromString(reactor: Any, description: str) -> IStreamServerEndpoint:
    """
    Like Twisted's C{serverFromString}, except that C{haproxy:} endpoints
    connect their protocols only once the PROXY header is read, and
    C{systemd:} ones are checked (L{greetd.daemon.endpoints.streamServerFromString}).

    C{haproxy:ssl:} reads the header before the TLS handshake, where
    HAProxy's C{send-proxy} and nginx's C{proxy_protocol} put it (Twisted's
    own C{haproxy:ssl:} would expect it inside TLS).
    """
    if not description.startswith(PREFIX):
        return checkedServerFromString(reactor, description)
    inner = description[len(PREFIX) :]
    kind = inner.split(":", 1)[0]
    if kind == "ssl":
        tls = partial(tlsServerFactory, reactor, inner)
        return ProxiedServerEndpoint(
            plainServerEndpoint(reactor, inner), reactor, inner=tls
        )
    if kind == "tls":
        raise ValueError("haproxy: in front of tls: is not supported (use ssl:)")
    return ProxiedServerEndpoint(checkedServerFromString(reactor, inner), reactor)
