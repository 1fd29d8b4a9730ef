"""
The TCP greeting service: a banner on connect, then a reply to every message.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import (
    IConsumer,
    IDelayedCall,
    IPushProducer,
    IReactorTime,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from greetd.core.access import AccessPolicy
from greetd.core.counters import ERROR_REASONS, REFUSAL_REASONS, Counts, key
from greetd.core.escaping import formatAddress
from greetd.core.framing import EXIT, FRAMINGS, MessageFramer, MessageTooLong
from greetd.core.limits import ConnectionLimiter, Throttle
from greetd.core.sources import sourceKey
from greetd.core.template import ReplyTemplate
from greetd.protocols.fastwrite import supportsWriteThrough, writeThrough

#: The seed's banner, sent as is, without a line ending.
DEFAULT_WELCOME = b"Welcome"

#: The seed's read size, and so the longest message it could answer whole.
DEFAULT_MAX_LENGTH = 1024

#: Seconds a connection may go without completing a message.
DEFAULT_IDLE_TIMEOUT = 300.0

#: What a connection over a limit is told before it is closed.
TOO_MANY_CONNECTIONS = b"Error: too many connections\r\n"


class IStreamTransport(ITCPTransport, IConsumer, IPushProducer):
    """
    What the greeting protocol uses of its transport: TCP, UNIX, TLS and
    PROXY-wrapped transports all provide it.
    """


@implementer(IPushProducer)
class GreetingProtocol(Protocol):
    """
    Greet one client: send the banner, answer each message with the reply
    template, and close on C{exit}, on a message that is too long, or when
    the client has been idle too long.

    The protocol is the transport's producer: when replies pile up unread
    in the transport's buffer, the transport pauses it and it stops reading,
    so a client that sends without reading cannot grow the daemon's memory.

    @ivar factory: The L{GreetingFactory} holding the configuration.
    @ivar host: The peer's IP address, or C{None} (a UNIX socket).
    @ivar source: The key of L{host} in per-source limits
        (L{greetd.core.sources.sourceKey}), or C{None}.
    @ivar messages: How many messages have been answered.
    @ivar bytesReceived: How many bytes the peer has sent.
    @ivar bytesSent: How many bytes have been written to the peer.
    @ivar admitted: Whether the connection got past the limits and access
        control; one that did not is closed at once and counted apart.
    @ivar closing: Whether the connection is being closed, after which input
        is ignored.
    @ivar paused: Whether reading is paused until the peer reads its replies.
    @ivar writesThrough: Whether replies are sent at once rather than on the
        next reactor turn (plain TCP only; see L{greetd.protocols.fastwrite}).
    """

    factory: GreetingFactory
    _log = Logger()

    messages = 0
    bytesReceived = 0
    bytesSent = 0
    admitted = False
    closing = False
    paused = False
    writesThrough = False

    def connectionMade(self) -> None:
        factory = self.factory
        transport = self._transport()
        self.host = host = getattr(transport.getPeer(), "host", None)
        self.source = (
            None if host is None else sourceKey(host, factory.limiter.ipv6Prefix)
        )
        refusal = factory.admit(self)
        if refusal is not None:
            self.closing = True
            if refusal != "access":
                transport.write(TOO_MANY_CONNECTIONS)
            transport.loseConnection()
            return
        self.admitted = True
        self.writesThrough = supportsWriteThrough(transport)
        self._framer = MessageFramer(factory.framing, factory.maxLength)
        self.openedAt = self.lastMessageAt = factory.clock.seconds()
        transport.registerProducer(self, True)
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
        try:
            self._answer(data)
        except Exception:
            self._log.failure(
                "Closing the connection from {peer} after an internal error",
                peer=self.peer,
                greetdEvent="connection.error",
            )
            self.factory.errors["internal"] += 1
            self.closing = True
            self._transport().abortConnection()

    def _answer(self, data: bytes) -> None:
        template = self.factory.template
        answered = self.messages
        try:
            for message in self._framer.feed(data):
                if message.payload == EXIT:
                    self.close()
                    return
                self.messages += 1
                self.send(template.format(message.payload) + message.ending)
        except MessageTooLong as error:
            self.factory.errors["length"] += 1
            self.sendError(str(error))
        finally:
            if self.messages != answered:
                self.lastMessageAt = self.factory.clock.seconds()

    def send(self, data: bytes) -> None:
        """
        Write C{data} to the peer and count it.
        """
        self.bytesSent += len(data)
        if self.writesThrough:
            writeThrough(self.transport, data)
        else:
            self._transport().write(data)

    def sendError(self, text: str) -> None:
        """
        Send C{Error: text}, ended as the connection's lines are, and close.
        """
        self.send(b"Error: " + text.encode("ascii") + self._framer.errorEnding)
        self.close()

    def close(self) -> None:
        """
        Close once every reply already written has been sent, and ignore
        anything the peer sends meanwhile.
        """
        self.closing = True
        transport = self._transport()
        # A registered producer would be resumed, not the connection closed,
        # once the buffer drains.
        transport.unregisterProducer()
        transport.loseConnection()

    def idleTimedOut(self) -> None:
        """
        The peer completed no message for the factory's idle timeout: say so
        and close.
        """
        self.factory.errors["idle-timeout"] += 1
        self.sendError("idle timeout")

    def pauseProducing(self) -> None:
        """
        The peer is not reading its replies: stop reading its messages.
        """
        self.paused = True
        self._transport().pauseProducing()

    def resumeProducing(self) -> None:
        """
        The peer caught up: read again.
        """
        self.paused = False
        self._transport().resumeProducing()

    def stopProducing(self) -> None:
        """
        The transport is going away; L{connectionLost} cleans up.
        """

    @property
    def peer(self) -> str:
        """
        The peer's address, escaped for logs; worked out when logged rather
        than kept, since idle connections are many and logs are few.
        """
        return formatAddress(self._transport().getPeer())

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.admitted:
            return
        factory = self.factory
        factory.connectionClosed(self)
        self._log.info(
            "Connection from {peer} closed after {duration:.3f}s: "
            "{messages} messages, {bytesReceived} bytes received, "
            "{bytesSent} bytes sent",
            peer=self.peer,
            duration=factory.clock.seconds() - self.openedAt,
            messages=self.messages,
            bytesReceived=self.bytesReceived,
            bytesSent=self.bytesSent,
            greetdEvent="connection.close",
        )

    def _transport(self) -> IStreamTransport:
        transport = self.transport
        assert transport is not None, "not connected"
        return cast(IStreamTransport, transport)


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
    @ivar framing: One of L{greetd.core.framing.FRAMINGS}.
    @ivar maxLength: The longest message answered.
    @ivar idleTimeout: Seconds a connection may complete no message; 0 for
        no limit.
    @ivar limiter: The L{ConnectionLimiter} new connections must pass.
    @ivar access: The L{AccessPolicy} for source addresses.
    @ivar clock: The time source for durations and timeouts.
    @ivar connections: The admitted connections open now.
    @ivar connectionsTotal: How many connections have been admitted.
    @ivar refused: Connections refused, by the limit that refused them.
    @ivar errors: Connections closed with an error, by reason.
    @ivar closedTotals: Messages and bytes of the connections already closed,
        so totals need no work per message.
    """

    protocol = GreetingProtocol
    noisy = False
    _log = Logger()

    def __init__(
        self,
        welcome: bytes = DEFAULT_WELCOME,
        template: ReplyTemplate | None = None,
        framing: str = "auto",
        maxLength: int = DEFAULT_MAX_LENGTH,
        clock: IReactorTime | None = None,
        idleTimeout: float = DEFAULT_IDLE_TIMEOUT,
        limiter: ConnectionLimiter | None = None,
        access: AccessPolicy | None = None,
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
        self.idleTimeout = idleTimeout
        self.limiter = limiter if limiter is not None else ConnectionLimiter()
        self.access = access if access is not None else AccessPolicy()
        self.clock = clock
        self.connections: set[GreetingProtocol] = set()
        self.connectionsTotal = 0
        self.refused: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.closedTotals: Counter[str] = Counter()
        self._refusalLog: Throttle[str | None] = Throttle()
        self._drained: list[Deferred[None]] = []
        self._idleSweep: LoopingCall | None = None

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

    def admit(self, protocol: GreetingProtocol) -> str | None:
        """
        Decide whether a new connection may be served, and track it if so.

        @return: C{None} to serve it, or why not: C{"access"} or the name
            of the connection limit it is over.
        """
        host = protocol.host
        now = self.clock.seconds()
        if host is not None and not self.access.permits(host):
            refusal: str | None = "access"
        else:
            refusal = self.limiter.admit(protocol.source, now)
        if refusal is not None:
            self.refused[refusal] += 1
            if self._refusalLog.ready(protocol.source, now):
                self._log.info(
                    "Refused a connection from {peer}: {reason}",
                    peer=protocol.peer,
                    reason=refusal,
                    greetdEvent="connection.refused",
                )
            return refusal
        self.connections.add(protocol)
        self.connectionsTotal += 1
        if self.idleTimeout and self._idleSweep is None:
            self._idleSweep = LoopingCall(self._sweepIdle)
            self._idleSweep.clock = self.clock
            self._idleSweep.start(self.sweepInterval, now=False)
        return None

    @property
    def sweepInterval(self) -> float:
        """
        How often idle connections are looked for: a tenth of the timeout,
        between 0.1 and 5 seconds, so a connection is cut at most that late.
        """
        return min(max(self.idleTimeout / 10, 0.1), 5.0)

    def _sweepIdle(self) -> None:
        """
        Time out connections that completed no message for C{idleTimeout}.

        One periodic sweep serves every connection: a timer each would cost
        more memory than the rest of an idle connection's state.
        """
        deadline = self.clock.seconds() - self.idleTimeout
        for protocol in [
            protocol
            for protocol in self.connections
            if protocol.lastMessageAt <= deadline and not protocol.closing
        ]:
            protocol.idleTimedOut()

    def connectionClosed(self, protocol: GreetingProtocol) -> None:
        """
        Forget an admitted connection that has been lost.
        """
        self.connections.discard(protocol)
        self.limiter.release(protocol.source)
        totals = self.closedTotals
        totals["messages"] += protocol.messages
        totals["bytesReceived"] += protocol.bytesReceived
        totals["bytesSent"] += protocol.bytesSent
        if not self.connections:
            sweep, self._idleSweep = self._idleSweep, None
            if sweep is not None and sweep.running:
                sweep.stop()
            drained, self._drained = self._drained, []
            for waiting in drained:
                waiting.callback(None)

    def totals(self) -> Counter[str]:
        """
        Messages and bytes over every connection so far, open ones included.
        """
        totals = Counter(self.closedTotals)
        for protocol in self.connections:
            totals["messages"] += protocol.messages
            totals["bytesReceived"] += protocol.bytesReceived
            totals["bytesSent"] += protocol.bytesSent
        return totals

    def counts(self) -> Counts[str]:
        """
        The TCP counts of the schema (L{greetd.core.counters}), now.
        """
        counts: Counts[str] = Counter()
        counts[key("tcp", "connections")] = self.connectionsTotal
        counts[key("tcp", "open")] = len(self.connections)
        totals = self.totals()
        for name in ("messages", "bytesReceived", "bytesSent"):
            counts[key("tcp", name)] = totals[name]
        for reason in ERROR_REASONS:
            counts[key("tcp", "error", reason)] = self.errors[reason]
        for reason in REFUSAL_REASONS:
            counts[key("tcp", "dropped", reason)] = self.refused[reason]
        return counts

    def closeAll(self, timeout: float) -> Deferred[None]:
        """
        Close every connection once its owed replies are written, aborting
        those still open after C{timeout} seconds.

        @return: A L{Deferred} that fires when no connection is left.
        """
        if not self.connections:
            return succeed(None)
        drained: Deferred[None] = Deferred()
        self._drained.append(drained)
        for protocol in list(self.connections):
            if not protocol.closing:
                protocol.close()
        deadline = self.clock.callLater(timeout, self._abortAll)
        drained.addBoth(cancelling, deadline)
        return drained

    def _abortAll(self) -> None:
        for protocol in list(self.connections):
            protocol._transport().abortConnection()


def cancelling(result: Any, call: IDelayedCall) -> Any:
    """
    A callback that cancels C{call} (a deadline) when the L{Deferred} it is
    added to fires, and passes the result on.
    """
    if call.active():
        call.cancel()
    return result
