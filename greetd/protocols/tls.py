"""
TLS listeners: Twisted's C{ssl:} (and C{tls:}) endpoints, made fit for a
protocol that speaks first and pauses its reading for backpressure.

Twisted's TLS transport cannot send application data before its handshake
is done: it holds the greeting's banner and pauses its producer until
then.  The greeting protocol, as a producer, pauses by no longer reading,
and Twisted passes that on to the TCP connection, which then never reads
the rest of the handshake: the connection stalls, banner unsent, for ever.
And a TLS transport that holds unsent data closes only once its handshake
is done, so closing such a connection (at the idle timeout, say) would not
close it either.

L{HandshakeGate} sits between the TLS transport and the protocol until the
handshake is done: a pause asked for meanwhile is put off until the
handshake completes (the peer cannot send the protocol anything before
then), and closing aborts, since nothing can be said to a peer that has
not finished its handshake.  After the handshake it passes everything on,
so backpressure works over TLS as over TCP: a peer that does not read its
replies is not read either.

L{tlsServerFactory} and L{plainServerEndpoint} split an C{ssl:}
description into its TLS and its TCP listener, for a worker (which serves
a socket its parent bound) and for C{haproxy:ssl:} (whose PROXY header
comes before the handshake, L{greetd.protocols.proxy}).

TLS needs pyOpenSSL and service_identity, which C{greetd[tls]} installs
(L{requireTLS}).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    SSL4ServerEndpoint,
    TCP4ServerEndpoint,
    serverFromString,
)
from twisted.internet.interfaces import (
    IHandshakeListener,
    IListeningPort,
    ILoggingContext,
    IProtocolFactory,
    IStreamServerEndpoint,
)
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from zope.interface import implementer

#: The kinds of C{--tcp} description that listen with TLS.
TLS_KINDS = ("ssl", "tls")

#: What to install for TLS, as errors say.
TLS_EXTRA = "greetd[tls]"


def requireTLS() -> None:
    """
    Check that the libraries TLS needs are installed.

    @raise ValueError: Saying what to install, when one is missing (rather
        than Twisted's bare C{No module named 'OpenSSL'}).
    """
    for module in ("OpenSSL", "service_identity"):
        try:
            importlib.import_module(module)
        except ImportError:
            raise ValueError(
                f"TLS needs pyOpenSSL and service_identity, and {module} is "
                f"not installed: pip install '{TLS_EXTRA}'"
            ) from None


@implementer(IHandshakeListener)
class HandshakeGate(ProtocolWrapper):
    """
    The TLS transport of one connection, as its protocol sees it: pausing
    and closing wait on the handshake, as the module says.

    @ivar handshakeDone: Whether the TLS handshake has completed.
    @ivar pauseWanted: Whether the protocol wants reading paused.
    """

    handshakeDone = False
    pauseWanted = False

    def pauseProducing(self) -> None:
        self.pauseWanted = True
        if self.handshakeDone:
            self.transport.pauseProducing()  # type: ignore[union-attr]

    def resumeProducing(self) -> None:
        self.pauseWanted = False
        if self.handshakeDone:
            self.transport.resumeProducing()  # type: ignore[union-attr]

    def handshakeCompleted(self) -> None:
        self.handshakeDone = True
        if self.pauseWanted:
            self.transport.pauseProducing()  # type: ignore[union-attr]
        if IHandshakeListener.providedBy(self.wrappedProtocol):
            self.wrappedProtocol.handshakeCompleted()

    def loseConnection(self) -> None:
        if self.handshakeDone:
            ProtocolWrapper.loseConnection(self)
        else:
            self.disconnecting = 1
            self.transport.abortConnection()  # type: ignore[union-attr]


if TYPE_CHECKING:
    _WrappingFactoryBase = WrappingFactory[HandshakeGate]
else:
    # WrappingFactory is generic only in recent Twisted; PyPy's Python 3.9
    # gets an older one, where subscripting it fails.
    _WrappingFactoryBase = WrappingFactory


class HandshakeGateFactory(_WrappingFactoryBase):
    """
    Puts a L{HandshakeGate} between a TLS transport and each protocol of
    the wrapped factory.
    """

    protocol = HandshakeGate
    noisy = False

    def __init__(self, wrappedFactory: IProtocolFactory) -> None:
        super().__init__(wrappedFactory)  # type: ignore[no-untyped-call]

    def logPrefix(self) -> str:
        # A listener is announced by the name of the factory it serves, as
        # without TLS: the gate is a detail.
        wrapped = self.wrappedFactory
        if ILoggingContext.providedBy(wrapped):
            return str(wrapped.logPrefix())
        return type(wrapped).__name__


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

    # Twisted keeps what ssl: parsed as private state of its endpoint; no
    # public API parses the options alone.
    contextFactory = _sslEndpoint(reactor, description)._sslContextFactory
    return TLSMemoryBIOFactory(
        contextFactory, False, HandshakeGateFactory(factory), reactor
    )


def plainServerEndpoint(reactor: Any, description: str) -> IStreamServerEndpoint:
    """
    The TCP endpoint under the C{ssl:} C{description} (its port, backlog
    and interface) without its TLS, for what comes before the handshake.

    @raise ValueError: As L{tlsServerFactory} does.
    """
    endpoint = _sslEndpoint(reactor, description)
    return TCP4ServerEndpoint(
        reactor, endpoint._port, endpoint._backlog, endpoint._interface
    )


def tlsProblem(error: BaseException | None) -> str | None:
    """
    What went wrong in TLS, when C{error} is one of pyOpenSSL's errors (in
    OpenSSL's words, such as C{certificate verify failed}) or
    service_identity's (a certificate for another name); otherwise C{None}.
    """
    module = type(error).__module__
    if error is None or not module.startswith(("OpenSSL.", "service_identity.")):
        return None
    if module.startswith("service_identity."):
        names = []
        for mismatch in getattr(error, "errors", []):
            identity = getattr(mismatch, "mismatched_id", None)
            name = getattr(identity, "ip", None) or getattr(identity, "hostname", "")
            names.append(name.decode() if isinstance(name, bytes) else str(name))
        named = " or ".join(filter(None, names)) or "this host"
        return f"the certificate is not for {named}"
    queue = error.args[0] if error.args else None
    reasons = [
        str(entry[-1])
        for entry in (queue if isinstance(queue, list) else [])
        if isinstance(entry, tuple) and entry and entry[-1]
    ]
    return "; ".join(reasons) or type(error).__name__
