"""
TLS for a protocol that speaks first and pauses its reading for
backpressure.

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
replies is not read either.  The listeners that put it there are
L{greetd.daemon.endpoints}'.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.interfaces import (
    IHandshakeListener,
    ILoggingContext,
    IProtocolFactory,
)
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from zope.interface import implementer


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

    def loseWriteConnection(self) -> None:
        # TLS has no half-close of its own (shutting TCP's sending side under
        # it would cut the TLS stream): close, as TLS closes, after what is
        # owed is sent; before the handshake, that means cutting at once.
        self.loseConnection()


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
