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

from typing import cast

from twisted.internet.interfaces import (
    IDelayedCall,
    IProtocolFactory,
    IReactorTime,
    ITransport,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.protocols.haproxy._wrapper import (  # Twisted's parser, not public
    HAProxyProtocolWrapper,
    HAProxyWrappingFactory,
)
from twisted.python.failure import Failure
from zope.interface import directlyProvides, providedBy

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
