"""
The TCP greeting service: a banner on connect, then a reply to every message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from greetd.framing import FRAMINGS, MessageFramer, MessageTooLong
from greetd.log import formatAddress
from greetd.template import ReplyTemplate

if TYPE_CHECKING:
    from twisted.internet.interfaces import ITransport

#: The seed's banner, sent as is, without a line ending.
DEFAULT_WELCOME = b"Welcome"

#: The seed's read size, and so the longest message it could answer whole.
DEFAULT_MAX_LENGTH = 1024

#: The message that ends a session, as in the seed.
EXIT = b"exit"


class GreetingProtocol(Protocol):
    """
    Greet one client: send the banner, answer each message with the reply
    template, and close on C{exit} or on a message that is too long.

    @ivar factory: The L{GreetingFactory} holding the configuration.
    @ivar messages: How many messages have been answered.
    @ivar bytesReceived: How many bytes the peer has sent.
    @ivar bytesSent: How many bytes have been written to the peer.
    @ivar closing: Whether the connection is being closed, after which input
        is ignored.
    """

    factory: GreetingFactory
    _log = Logger()

    messages = 0
    bytesReceived = 0
    bytesSent = 0
    closing = False

    def connectionMade(self) -> None:
        factory = self.factory
        self._framer = MessageFramer(factory.framing, factory.maxLength)
        self._openedAt = factory.clock.seconds()
        self.peer = formatAddress(self._transport().getPeer())
        factory.connectionOpened(self)
        self._log.info(
            "Connection from {peer} opened",
            peer=self.peer,
            greetdEvent="connection.open",
        )
        if factory.banner:
            self.send(factory.banner)

    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            return
        self.bytesReceived += len(data)
        template = self.factory.template
        try:
            for message in self._framer.feed(data):
                if message.payload == EXIT:
                    self.close()
                    return
                self.messages += 1
                self.send(template.format(message.payload) + message.ending)
        except MessageTooLong as error:
            self.send(b"Error: %s%s" % (str(error).encode("ascii"), error.ending))
            self.close()

    def send(self, data: bytes) -> None:
        """
        Write C{data} to the peer and count it.
        """
        self.bytesSent += len(data)
        self._transport().write(data)

    def close(self) -> None:
        """
        Close once every reply already written has been sent, and ignore
        anything the peer sends meanwhile.
        """
        self.closing = True
        self._transport().loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        factory = self.factory
        factory.connectionClosed(self)
        self._log.info(
            "Connection from {peer} closed after {duration:.3f}s: "
            "{messages} messages, {bytesReceived} bytes received, "
            "{bytesSent} bytes sent",
            peer=self.peer,
            duration=factory.clock.seconds() - self._openedAt,
            messages=self.messages,
            bytesReceived=self.bytesReceived,
            bytesSent=self.bytesSent,
            greetdEvent="connection.close",
        )

    def _transport(self) -> ITransport:
        transport = self.transport
        assert transport is not None, "not connected"
        return transport


if TYPE_CHECKING:
    _FactoryBase = Factory[GreetingProtocol]
else:
    # Factory is generic only from Twisted 25.x on; PyPy's Python 3.9 gets
    # an older Twisted, where subscripting it fails.
    _FactoryBase = Factory


class GreetingFactory(_FactoryBase):
    """
    Configuration and bookkeeping shared by every L{GreetingProtocol}.

    @ivar welcome: The banner text; empty for none.
    @ivar template: The L{ReplyTemplate} for replies.
    @ivar framing: One of L{greetd.framing.FRAMINGS}.
    @ivar maxLength: The longest message answered.
    @ivar clock: The time source for durations.
    @ivar connections: The connections open now.
    @ivar connectionsTotal: How many connections have been opened.
    """

    protocol = GreetingProtocol
    noisy = False

    def __init__(
        self,
        welcome: bytes = DEFAULT_WELCOME,
        template: ReplyTemplate | None = None,
        framing: str = "auto",
        maxLength: int = DEFAULT_MAX_LENGTH,
        clock: IReactorTime | None = None,
    ) -> None:
        if framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {', '.join(FRAMINGS)}")
        if maxLength < 1:
            raise ValueError("the maximum message length must be at least 1")
        if clock is None:
            from twisted.internet import reactor

            clock = cast(IReactorTime, reactor)
        self.welcome = welcome
        self.template = template if template is not None else ReplyTemplate()
        self.framing = framing
        self.maxLength = maxLength
        self.clock = clock
        self.connections: set[GreetingProtocol] = set()
        self.connectionsTotal = 0

    @property
    def banner(self) -> bytes:
        """
        What a new connection is sent first: the welcome as is, or, when
        every message is a line, as a line of its own so a line client can
        tell it from the first reply.
        """
        if self.welcome and self.framing == "line":
            return self.welcome + b"\r\n"
        return self.welcome

    def connectionOpened(self, protocol: GreetingProtocol) -> None:
        """
        Track a connection that has just been made.
        """
        self.connections.add(protocol)
        self.connectionsTotal += 1

    def connectionClosed(self, protocol: GreetingProtocol) -> None:
        """
        Forget a connection that has been lost.
        """
        self.connections.discard(protocol)
