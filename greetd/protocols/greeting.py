"""
The TCP greeting service: a banner on connect, then a reply to every message;
its connections are L{GreetingProtocol <greetd.protocols.greeter.GreetingProtocol>}.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Sequence, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IReactorTime,
)
from twisted.internet.protocol import Factory

from greetd.core.access import LOOPBACK, AccessPolicy, Network
from greetd.core.accessline import AccessLog
from greetd.core.counters import ERROR_REASONS, REFUSAL_REASONS, Counts, key
from greetd.core.framing import (
    DEFAULT_MAX_LENGTH,
    FRAMINGS,
)
from greetd.core.limits import ConnectionLimiter
from greetd.core.template import ReplyTemplate
from greetd.protocols.accesslog import LoggerAccessLog
from greetd.protocols.admission import Admission, defaultLimiter
from greetd.protocols.drain import Drain
from greetd.protocols.flow import TurnBudget
from greetd.protocols.greeter import GreetingProtocol
from greetd.protocols.idle import IdleSweep

#: The seed's banner, sent as is, without a line ending.
DEFAULT_WELCOME = b"Welcome"

#: Seconds a connection may go without completing a message.
DEFAULT_IDLE_TIMEOUT = 300.0

#: Seconds a peer may take none of the replies it is owed (nginx's
#: C{send_timeout} default).
DEFAULT_WRITE_TIMEOUT = 60.0


if TYPE_CHECKING:
    _FactoryBase = Factory[GreetingProtocol]
else:
    # Factory is generic only from Twisted 25.x on; PyPy's Python 3.9 gets
    # an older Twisted, where subscripting it fails.
    _FactoryBase = Factory


class GreetingFactory(_FactoryBase):
    """
    The configuration every L{GreetingProtocol} shares, and its admitted
    connections, with one collaborator for each job: L{Admission} decides
    who may connect, L{IdleSweep} cuts idle connections, L{Drain} closes
    them all on shutdown.

    A protocol talks to its factory through L{admit}, L{connectionClosed}
    and L{countError}, and reads L{banner}, C{template}, C{framing},
    C{maxLength} and C{clock}.

    @ivar welcome: The banner text; empty for none.
    @ivar template: The L{ReplyTemplate} for replies.
    @ivar framing: One of L{greetd.core.framing.FRAMINGS}.
    @ivar maxLength: The longest message answered.
    @param clock: The time source for durations and timeouts: the global
        reactor unless given (L{IdleSweep.emptied} says what is left on it).
    @ivar admission: The L{Admission} new connections pass; without a
        C{limiter}, C{twistd greetd}'s default limits apply
        (L{defaultLimiter}): pass C{ConnectionLimiter()} for none.  It also
        says which peers may send a PROXY header (C{proxyFrom}, loopback
        unless given; L{Admission.proxyFrom}).
    @ivar idle: The L{IdleSweep}, which holds every connection to its
        deadlines: C{idleTimeout} and C{writeTimeout} seconds.
    @ivar drain: The L{Drain}, for shutdown.
    @ivar budget: The L{TurnBudget} every connection's answering shares.
    @ivar accessLog: Where each connection's line goes when it closes
        (L{LoggerAccessLog} unless given).
    @ivar connections: The admitted connections open now.
    @ivar connectionsTotal: How many connections have been admitted, health
        checks apart, with the checks that went on to send a message.
    @ivar healthChecksTotal: How many health checks have been admitted.
    @ivar errors: Connections closed with an error, by reason.
    @ivar closedMessages: Messages answered on the connections already
        closed, so totals need no work per message.
    @ivar closedBytesReceived: Bytes received on them.
    @ivar closedBytesSent: Bytes sent on them.
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
        idleTimeout: float = DEFAULT_IDLE_TIMEOUT,
        writeTimeout: float = DEFAULT_WRITE_TIMEOUT,
        limiter: ConnectionLimiter | None = None,
        access: AccessPolicy | None = None,
        accessLog: AccessLog | None = None,
        healthCheckFrom: Sequence[Network] = (),
        proxyFrom: Sequence[Network] = LOOPBACK,
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
        self.healthChecksTotal = 0
        self.errors: Counter[str] = Counter()
        self.closedMessages = 0
        self.closedBytesReceived = 0
        self.closedBytesSent = 0
        self.admission = Admission(
            limiter if limiter is not None else defaultLimiter(),
            access if access is not None else AccessPolicy(),
            clock,
            healthCheckFrom,
            proxyFrom,
        )
        self.idle = IdleSweep(clock, idleTimeout, self.connections, writeTimeout)
        self.accessLog = accessLog if accessLog is not None else LoggerAccessLog()
        self.drain = Drain(clock, self.connections)
        self.budget = TurnBudget(clock)

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

        @return: C{None} to serve it, or why not (L{Admission.admit}).
        """
        refusal = self.admission.admit(
            protocol.host, protocol.source, lambda: protocol.peer
        )
        if refusal is None:
            self.connections.add(protocol)
            if protocol.healthCheck:
                self.healthChecksTotal += 1
            else:
                self.connectionsTotal += 1
            self.idle.wake()
        return refusal

    def connectionClosed(self, protocol: GreetingProtocol) -> None:
        """
        Forget an admitted connection that has been lost.
        """
        connections = self.connections
        connections.discard(protocol)
        self.admission.release(protocol.source)
        # Integers, not a Counter: this runs for every connection, and a
        # Counter's item update costs several times an attribute's.
        self.closedMessages += protocol.messages
        self.closedBytesReceived += protocol.bytesReceived
        self.closedBytesSent += protocol.bytesSent
        if not connections:
            self.drain.emptied()
            self.idle.emptied(served=self.numPorts > 0)

    def countError(self, reason: str) -> None:
        """
        Count a connection closed with an error (L{ERROR_REASONS}).
        """
        self.errors[reason] += 1

    def totals(self) -> Counter[str]:
        """
        Messages and bytes over every connection so far, open ones included.
        """
        totals: Counter[str] = Counter(
            messages=self.closedMessages,
            bytesReceived=self.closedBytesReceived,
            bytesSent=self.closedBytesSent,
        )
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
        counts[key("tcp", "healthChecks")] = self.healthChecksTotal
        counts[key("tcp", "open")] = len(self.connections)
        counts[key("tcp", "headersOpen")] = self.admission.limiter.held
        totals = self.totals()
        for name in ("messages", "bytesReceived", "bytesSent"):
            counts[key("tcp", name)] = totals[name]
        for reason in ERROR_REASONS:
            counts[key("tcp", "error", reason)] = self.errors[reason]
        for reason in REFUSAL_REASONS:
            counts[key("tcp", "dropped", reason)] = self.admission.refused[reason]
        return counts

    def closeAll(self, timeout: float) -> Deferred[None]:
        """
        Close every connection once its owed replies are written, aborting
        those still open after C{timeout} seconds (L{Drain.closeAll}).
        """
        self.idle.rest()
        for protocol in self.connections:
            if protocol.ended is None:
                protocol.ended = "shutdown"
        return self.drain.closeAll(timeout)
