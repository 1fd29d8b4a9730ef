"""
One connection of the TCP greeting service: the banner on connect, a reply
to every message, and its close.  Its factory, with the configuration
every connection shares, is L{greetd.protocols.greeting.GreetingFactory}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IConsumer,
    IDelayedCall,
    IPushProducer,
    ITCPTransport,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from greetd.core.accessline import Closed
from greetd.core.framing import EXIT, Message, MessageFramer, MessageTooLong
from greetd.core.sources import sourceKey
from greetd.protocols.admission import REFUSAL_LINES
from greetd.protocols.fastwrite import closeNow, supportsWriteThrough, writeThrough
from greetd.protocols.flow import SHORT_READ, FlowControl
from greetd.protocols.peer import describePeer, peerForLog, peerHost
from greetd.protocols.refusal import sendRefusal, stopLinger

if TYPE_CHECKING:
    from greetd.protocols.greeting import GreetingFactory


class IStreamTransport(ITCPTransport, IConsumer, IPushProducer):
    """
    What the greeting protocol uses of its transport: TCP, UNIX, TLS and
    PROXY-wrapped transports all provide it.
    """


class GreetingProtocol(FlowControl, Protocol):
    """
    Greet one client: send the banner, answer each message with the reply
    template, and close on C{exit}, on a message that is too long, or when
    the client has been idle too long.

    The protocol is the transport's producer (L{FlowControl}): when replies
    pile up unread in the transport's buffer, the transport pauses it and it
    stops reading, so a client that sends without reading cannot grow the
    daemon's memory.

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
    @ivar closingAt: When it began to close, for its deadline
        (L{greetd.protocols.idle}).
    @ivar healthCheck: Whether it is a load balancer's health check (a PROXY
        v2 C{LOCAL} header, or C{--health-check-from}): served as usual,
        counted and logged apart.
    @ivar ended: How it ended, for the access log (one of
        L{greetd.core.accessline.ENDINGS}), once known.
    @ivar writesThrough: Whether replies are sent at once rather than on the
        next reactor turn (plain TCP only; see L{greetd.protocols.fastwrite}).
    @ivar producing: Whether it has become its transport's producer: at
        once, or once a reply is queued if it L{writesThrough}.  It stays
        true once the connection closes and stops producing, so that a
        reply queued then does not make it one again.
    """

    factory: GreetingFactory
    _log = Logger()

    messages = 0
    bytesReceived = 0
    bytesSent = 0
    admitted = False
    closing = False
    writesThrough = False
    producing = False
    ended: str | None = None
    healthCheck = False
    closingAt = 0.0
    _linger: IDelayedCall | None = None

    def connectionMade(self) -> None:
        factory = self.factory
        transport = self._transport()
        self.host = host = peerHost(transport)
        self.source = (
            None
            if host is None
            else sourceKey(host, factory.admission.limiter.ipv6Prefix)
        )
        self.healthCheck = bool(
            getattr(transport, "healthCheck", False)
        ) or factory.admission.isHealthCheck(host)
        refusal = factory.admit(self)
        if refusal is not None:
            self.refuse(refusal)
            return
        self.admitted = True
        self.writesThrough = supportsWriteThrough(transport)
        self._framer = MessageFramer(factory.framing, factory.maxLength)
        self.openedAt = self.lastMessageAt = factory.clock.seconds()
        self.writeProgressAt = self.openedAt
        self.budget = factory.budget
        self.paced = False  # On the instance: read for every message.
        if not self.writesThrough:
            self._produce(transport)
        accessLog = factory.accessLog
        if accessLog.wantsOpened() and not self.healthCheck:
            accessLog.opened(self.peer)
        banner = factory.banner
        if banner:
            self.send(banner)

    def refuse(self, refusal: str) -> None:
        """
        Tell a refused client why, in one line, and close so that the line
        arrives (L{sendRefusal}); what it sends meanwhile is discarded.
        """
        self.closing = True
        self.ended = "refused"
        transport = self._transport()
        line = REFUSAL_LINES.get(refusal)
        admission = self.factory.admission
        if admission.refusalLogged:
            # At most once a minute per source, as the refusal's own line.
            self._logClosed(0.0, 0, len(line or b""))
        self._linger = sendRefusal(transport, line, admission)

    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            return
        size = len(data)
        self.bytesReceived += size
        # FlowControl.pipelined, inline: this runs for every read.
        if self.paced or (size > SHORT_READ and data.count(b"\n") > 1):
            data = self.pace(data)
            if not data:
                return
        try:
            self._answer(data)
        except Exception:
            self._failed()

    def answer(self, data: bytes) -> None:
        """
        Answer the messages C{data} completes, held from an earlier turn.
        """
        try:
            self._answer(data)
        except Exception:
            self._failed()

    def _failed(self) -> None:
        """
        Answering met an internal error: log it, and close the connection.
        """
        self._log.failure(
            "Closing the connection from {peer} after an internal error",
            peer=self.peer,
            greetdEvent="connection.error",
        )
        self.factory.countError("internal")
        self.ended = "error"
        self.abort()

    def splittable(self, data: bytes | bytearray) -> bool:
        framer = self._framer
        return framer.lineMode or (framer.framing != "raw" and b"\n" in data)

    def _answer(self, data: bytes) -> None:
        """
        Answer every message C{data} completes, in one write: the replies
        before an C{exit} and then close; the replies before a message that
        is too long and then the error.
        """
        try:
            messages = self._framer.feed(data)
        except MessageTooLong as error:
            self._answerAll(error.messages, error)
            return
        if len(messages) == 1:
            # One message, as a client waiting for each reply sends: its
            # reply alone, or the close, without the general case's list.
            payload, ending = messages[0]
            if payload == EXIT:
                self.ended = "exit"
                self.close()
                return
            if not self.healthCheck:
                self.messages += 1
                factory = self.factory
                self.lastMessageAt = factory.clock.seconds()
                self.send(factory.template.format(payload) + ending)
                return
        self._answerAll(messages, None)

    def _answerAll(
        self, messages: list[Message], tooLong: MessageTooLong | None
    ) -> None:
        """
        Answer C{messages} in one write, as L{_answer} says, and then
        C{tooLong}'s error if there is one.
        """
        template = self.factory.template
        replies: list[bytes] = []
        exited = False
        for payload, ending in messages:
            if payload == EXIT:
                exited = True
                break
            replies.append(template.format(payload) + ending)
        if self.healthCheck and (replies or tooLong is not None):
            self._becomeClient()
        if replies:
            self.messages += len(replies)
            self.lastMessageAt = self.factory.clock.seconds()
            self.send(replies[0] if len(replies) == 1 else b"".join(replies))
        if exited:
            self.ended = "exit"
            self.close()
        elif tooLong is not None:
            self.factory.countError("length")
            self.ended = "error"
            self.sendError(str(tooLong))

    def _becomeClient(self) -> None:
        """
        A health check that sends a message is a client: a check connects,
        perhaps reads the banner (or says C{exit}), and closes.  From its
        first message on it is counted and logged as a client, so that a
        session cannot hide behind a v2 C{LOCAL} header or
        C{--health-check-from}.
        """
        self.healthCheck = False
        self.factory.connectionsTotal += 1
        accessLog = self.factory.accessLog
        if accessLog.wantsOpened():
            accessLog.opened(self.peer)

    def send(self, data: bytes) -> None:
        """
        Write C{data} to the peer and count it.
        """
        self.bytesSent += len(data)
        transport: IStreamTransport = self.transport
        if self.writesThrough:
            data = writeThrough(transport, data)
            if not data:
                return
            if not self.producing:
                self._produce(transport)
        transport.write(data)

    def _produce(self, transport: IStreamTransport) -> None:
        """
        Become C{transport}'s producer, so that it pauses reading while
        replies wait unsent.  A connection that writes through does so
        only once a reply is queued: until then nothing waits, and most
        connections never queue one, so they skip the registration and
        its undoing.
        """
        self.producing = True
        transport.registerProducer(self, True)

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
        self._beginClosing()
        transport: IStreamTransport = self.transport
        if self.writesThrough and closeNow(transport):
            return
        # A registered producer would be resumed, not the connection closed,
        # once the buffer drains.
        transport.unregisterProducer()
        transport.loseConnection()

    def shutdown(self) -> None:
        """
        Close for shutdown: send every reply already written, then shut the
        sending side, and go on reading (and discarding) what the peer sends
        until it closes its side.  A client that sends without reading would
        otherwise block in its send once greetd stopped reading, never read
        its replies, and be cut mid-reply when the drain's time ran out.
        Input read but not answered yet is dropped, and reading resumes
        even where pacing or backpressure paused it: a paused connection
        would never see the peer close, and would hold the drain until its
        deadline.
        """
        self._beginClosing()
        transport = self._transport()
        transport.unregisterProducer()
        self.held, self.heldFrom = b"", 0
        transport.resumeProducing()
        halfClose = getattr(transport, "loseWriteConnection", None)
        if halfClose is None:
            transport.loseConnection()
        else:
            halfClose()

    def _beginClosing(self) -> None:
        """
        Ignore input from now on, and start the clock on closing.
        """
        self.closing = True
        self.closingAt = self.factory.clock.seconds()

    def abort(self) -> None:
        """
        Close now, dropping whatever is unwritten.
        """
        self.closing = True
        self._transport().abortConnection()

    def writeTimedOut(self) -> None:
        """
        The peer has not read what it is owed for the write timeout, or has
        not let a close finish within the idle timeout: cut it, since
        waiting on would let a peer that never reads hold the connection
        (and its place under the limits) for as long as it likes.
        """
        self.factory.countError("write-timeout")
        self.ended = "write-timeout"
        self.abort()

    def idleTimedOut(self) -> None:
        """
        The peer completed no message for the factory's idle timeout: say so
        and close.
        """
        self.factory.countError("idle-timeout")
        self.ended = "idle-timeout"
        self.sendError("idle timeout")

    @property
    def peer(self) -> str:
        """
        The peer's address, escaped for logs; worked out when logged rather
        than kept, since idle connections are many and logs are few.
        """
        return describePeer(self._transport())

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.closing = True
        if not self.admitted:
            linger, self._linger = self._linger, None
            stopLinger(linger, self.factory.admission)
            return
        if not getattr(self.transport, "handshakeDone", True):
            # TLS whose handshake never finished: nothing written was sent.
            self.bytesSent = 0
        factory = self.factory
        factory.connectionClosed(self)
        if self.ended is None:
            # Failure.check compares class names up the MRO: a class test
            # is a tenth of its cost.
            self.ended = (
                "closed" if isinstance(reason.value, ConnectionDone) else "reset"
            )
        self._logClosed(
            factory.clock.seconds() - self.openedAt,
            self.bytesReceived,
            self.bytesSent,
        )

    def _logClosed(self, duration: float, received: int, sent: int) -> None:
        peer, port, via = peerForLog(self.transport)
        accessLog = self.factory.accessLog
        close = accessLog.healthCheckClosed if self.healthCheck else accessLog.closed
        close(
            Closed(
                peer,
                self.host,
                port,
                duration,
                self.messages,
                received,
                sent,
                self.ended or "closed",
                via,
            )
        )

    def _transport(self) -> IStreamTransport:
        transport = self.transport
        assert transport is not None, "not connected"
        return cast(IStreamTransport, transport)
