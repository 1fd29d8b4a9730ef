"""
The PROXY protocol (HAProxy's C{send-proxy}), so that a greeting behind a
load balancer sees its client's own address.

Twisted's C{haproxy:} endpoint connects the wrapped protocol as soon as
the TCP connection opens, before the PROXY header has arrived: the
greeting protocol would apply its limits and access control to the load
balancer's address, and send its banner before knowing whom to.  Here the
wrapped protocol is connected only once the header has been read, by
greetd's own strict parser (L{greetd.core.proxyheader}), so that a hostile
header costs one throttled warning line and no traceback.

A header is believed only from a trusted peer (C{--proxy-from}, loopback
by default): from anyone else the connection is dropped as a bad header
at once, holding nothing.  From the moment it is accepted until its
header is read, a trusted peer's connection holds a place under the total
cap (L{Admission.hold}; not under the per-source cap, since a balancer
carries many clients), a header of at most L{MAX_STREAM_HEADER} bytes and
a deadline, so connections that never finish a header cannot take every
descriptor or grow the memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IProtocolFactory,
    IReactorTime,
    ITransport,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from zope.interface import directlyProvides, providedBy

from greetd.core.escaping import formatAddress
from greetd.core.proxyheader import (
    MAX_STREAM_HEADER,
    UNTRUSTED_PEER,
    Address,
    ProxyHeader,
    ProxyHeaderParser,
)
from greetd.core.sources import sourceKey
from greetd.protocols.admission import PROXY_TIMEOUT, REFUSAL_LINES, Admission
from greetd.protocols.peer import peerHost
from greetd.protocols.refusal import sendRefusal, stopLinger

#: Seconds a connection may take to send its PROXY header.  A load balancer
#: sends it at once; a client that does not is not one.
DEFAULT_HEADER_TIMEOUT = 10.0


def _address(address: Address) -> IAddress:
    """
    The address a header names, as Twisted spells addresses.
    """
    host, port = address
    return (IPv6Address if ":" in host else IPv4Address)("TCP", host, port)


class ProxyHeaderProtocol(ProtocolWrapper):
    """
    Read the PROXY header with a L{ProxyHeaderParser}, then connect the
    wrapped protocol to this wrapper as its transport, whose C{getPeer}
    and C{getHost} are the addresses the header names.

    A header that is not one, or any header from a peer the wrapped
    factory's L{Admission} does not trust (L{Admission.proxyFrom}), drops
    the connection: counted as a C{proxy-header} refusal and logged as one
    warning line, at most once a minute per source, so a hostile peer
    cannot fill the log.  An untrusted peer is dropped as soon as it
    connects, since nothing it could send would be believed.

    @ivar header: The parsed header, once there is one.
    @ivar balancer: The address of the peer that sent a header naming a
        client (the load balancer), which logs show beside the client's;
        C{None} until then, and for a header that names none (C{LOCAL}).
        L{getPeer} is the client's own address, a plain Twisted one.
    """

    factory: ProxyHeaderFactory
    header: ProxyHeader | None = None
    balancer: IAddress | None = None
    _headerTimeout: IDelayedCall | None = None
    _linger: IDelayedCall | None = None
    _held = False
    _source: str | None = None

    def makeConnection(self, transport: ITransport) -> None:
        directlyProvides(self, providedBy(transport))
        Protocol.makeConnection(self, transport)
        factory = self.factory
        factory.registerProtocol(self)  # type: ignore[no-untyped-call]
        self._parser = ProxyHeaderParser(maxLength=factory.maxHeaderLength)
        if factory.admission is not None and not self._hold(factory.admission):
            return
        timeout = factory.headerTimeout
        if timeout:
            self._headerTimeout = factory.clock.callLater(timeout, self._late)

    def _hold(self, admission: Admission) -> bool:
        """
        Whether the connection may send a header: its peer is trusted, and
        it gets a place under the total cap (L{Admission.hold}), which it
        then holds until its header is read.  An untrusted peer is dropped
        at once; one over the cap is told so in a line, as a client over it
        would be (L{sendRefusal}), unless the wrapped protocol speaks TLS.
        """
        transport = self.transport
        host = peerHost(transport)
        if host is not None:
            self._source = sourceKey(host, admission.limiter.ipv6Prefix)
        if not admission.trustsProxy(host):
            self._refuseHeader(UNTRUSTED_PEER)
            return False
        refusal = admission.hold(self._source, self._peer)
        if refusal is not None:
            self.disconnecting = 1
            line = REFUSAL_LINES[refusal] if self.factory.tellsRefusals else None
            self._linger = sendRefusal(transport, line, admission)
            return False
        self._held = True
        return True

    def _peer(self) -> str:
        """
        The socket's peer (the balancer, or whoever sent the header), as
        logs show it.
        """
        return formatAddress(self.transport.getPeer())  # type: ignore[union-attr]

    def _refuseHeader(self, problem: str) -> None:
        """
        Drop the connection for a header that is not one, or not to be
        believed: counted and logged through the L{Admission}, if any
        (L{Admission.refuseHeader}: a warning at most once a minute per
        source).
        """
        admission = self.factory.admission
        if admission is not None:
            admission.refuseHeader(self._source, self._peer, problem)
        self.loseConnection()  # type: ignore[no-untyped-call]

    def _release(self) -> None:
        admission = self.factory.admission
        if self._held and admission is not None:
            self._held = False
            admission.unhold()

    def dataReceived(self, data: bytes) -> None:
        if self.header is not None:
            self.wrappedProtocol.dataReceived(data)
            return
        if self.disconnecting:
            return
        parsed = self._parser.feed(data)
        if parsed is None:
            return
        self._cancelTimeout()
        if not isinstance(parsed, ProxyHeader):
            self._refuseHeader(parsed.reason)
            return
        self.header = parsed
        if parsed.source is not None:
            self.balancer = self.transport.getPeer()  # type: ignore[union-attr]
        # The client now takes a place of its own, under every limit.
        self._release()
        self.wrappedProtocol.makeConnection(cast(ITransport, self))
        rest, self._parser.rest = self._parser.rest, b""
        if rest and not self.disconnecting:
            self.wrappedProtocol.dataReceived(rest)

    @property
    def healthCheck(self) -> bool:
        """
        Whether the header is a version 2 C{LOCAL} command: the balancer's
        own connection, which HAProxy makes for its health checks
        (C{send-proxy-v2}), not a client's.
        """
        return self.header is not None and self.header.local

    def getPeer(self) -> IAddress:
        header = self.header
        if header is not None and header.source is not None:
            return _address(header.source)
        return cast(IAddress, self.transport.getPeer())  # type: ignore[union-attr]

    def getHost(self) -> IAddress:
        header = self.header
        if header is not None and header.destination is not None:
            return _address(header.destination)
        return cast(IAddress, self.transport.getHost())  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancelTimeout()
        if self.header is not None:
            super().connectionLost(reason)  # type: ignore[no-untyped-call]
        else:
            self._release()
            admission = self.factory.admission
            if admission is not None:
                stopLinger(self._linger, admission)
            self.factory.unregisterProtocol(self)  # type: ignore[no-untyped-call]

    def _late(self) -> None:
        self._headerTimeout = None
        admission = self.factory.admission
        if admission is not None:
            admission.refuse(PROXY_TIMEOUT, self._source, self._peer)
        transport = self.transport
        if transport is not None:
            transport.abortConnection()  # type: ignore[attr-defined]

    def _cancelTimeout(self) -> None:
        call, self._headerTimeout = self._headerTimeout, None
        if call is not None and call.active():
            call.cancel()


if TYPE_CHECKING:
    _WrappingFactoryBase = WrappingFactory[ProxyHeaderProtocol]
else:
    # WrappingFactory is generic only in recent Twisted; PyPy's Python 3.9
    # gets an older one, where subscripting it fails.
    _WrappingFactoryBase = WrappingFactory


class ProxyHeaderFactory(_WrappingFactoryBase):
    """
    Wraps a factory's protocols in L{ProxyHeaderProtocol}.

    @ivar clock: The time source for the header timeout.
    @ivar headerTimeout: Seconds to wait for the header; 0 for ever.
    @ivar admission: The L{Admission} of the greeting factory served (inside
        its TLS, for C{haproxy:ssl:}), which says whom to believe, holds
        each connection's place from accept, and counts and logs bad
        headers with its other refusals; or C{None}, to believe anyone.
    @ivar tellsRefusals: Whether a connection refused before its header is
        told why in a line (L{REFUSAL_LINES}), as a refused client is: not
        when the wrapped protocol speaks TLS, which the line would not be.
    """

    protocol = ProxyHeaderProtocol
    noisy = False

    #: The longest header read (L{MAX_STREAM_HEADER}).
    maxHeaderLength = MAX_STREAM_HEADER

    def __init__(
        self,
        wrappedFactory: IProtocolFactory,
        clock: IReactorTime,
        headerTimeout: float = DEFAULT_HEADER_TIMEOUT,
        admission: Admission | None = None,
        tellsRefusals: bool = True,
    ) -> None:
        super().__init__(wrappedFactory)  # type: ignore[no-untyped-call]
        self.clock = clock
        self.headerTimeout = headerTimeout
        self.admission = admission
        self.tellsRefusals = tellsRefusals
