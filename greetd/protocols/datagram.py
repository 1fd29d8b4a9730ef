"""
The UDP reply service: every datagram gets the reply template back.
"""

from __future__ import annotations

from collections import Counter
from typing import Tuple, Union, cast

from twisted.internet.error import MessageLengthError
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from greetd.core.access import AccessPolicy
from greetd.core.limits import KeyedRateLimiter, Throttle, TokenBucket
from greetd.core.template import ReplyTemplate
from greetd.ops.log import formatAddress
from greetd.protocols.fastwrite import datagramWriter
from greetd.protocols.greeting import DEFAULT_MAX_LENGTH
from greetd.protocols.proxy import splitProxyHeader

#: A datagram source, as Twisted delivers it: C{(host, port)}, or for IPv6
#: C{(host, port, flowinfo, scopeid)}.
DatagramAddress = Union[Tuple[str, int], Tuple[str, int, int, int]]

#: Replies per second to one source address.
DEFAULT_RATE = 10

#: Replies per second in all.
DEFAULT_GLOBAL_RATE = 1000

#: Why a datagram may be left unanswered.
DROP_REASONS = (
    "low-port",
    "access",
    "length",
    "rate",
    "global-rate",
    "send-failed",
    "proxy",
)

#: Source ports below this are the well-known services a spoofed datagram
#: would aim a reply loop or reflection at (echo, chargen, DNS, NTP, ...).
LOW_PORTS = 1024


class ReplyProtocol(DatagramProtocol):
    """
    Answer each datagram C{D} with the template applied to C{D}, sent to the
    datagram's source.

    A reply service is a reflector: anyone can forge a datagram's source, so
    every reply goes to an address nobody has vouched for.  Replies are
    therefore refused, silently, to well-known source ports, to sources the
    access policy denies, for datagrams longer than L{maxLength} (which also
    ends loops between two reply services: each reply is longer than what
    it answers), and beyond a rate per source and a rate in all.  Every
    drop is counted by reason, and logged at most once a minute per source.

    Behind a UDP load balancer that puts a PROXY header at the start of
    each datagram (nginx's C{proxy_protocol on}), C{proxied} makes the
    header's source the datagram's source for all of the above, while the
    reply goes back to the balancer.  A datagram without a valid header is
    dropped (reason C{proxy}).  A balancer waits for one reply to each
    datagram, and counts a datagram it gets none for as a failure of the
    server (nginx's C{max_fails}): one client over its rate would have the
    balancer take a healthy server out.  So a proxied datagram that is
    dropped gets an empty datagram back instead of the reply: nothing to
    the client (C{greet} waits on for its real reply), but an answer to
    the balancer; it is never longer than what it answers.  The balancer's
    own source port must still not be below 1024.

    @ivar template: The L{ReplyTemplate} for replies.
    @ivar maxLength: The longest datagram answered.
    @ivar access: The L{AccessPolicy} for sources.
    @ivar allowLowPorts: Whether sources below port 1024 are answered.
    @ivar proxied: Whether datagrams start with a PROXY header.
    @ivar perSource: The L{KeyedRateLimiter} for each source address.
    @ivar overall: The L{TokenBucket} for all replies, or C{None} for none.
    @ivar clock: The time source for the rates.
    @ivar received: How many datagrams have arrived.
    @ivar replies: How many replies have been sent.
    @ivar bytesReceived: Bytes received in all datagrams.
    @ivar bytesSent: Bytes sent in all replies.
    @ivar dropped: Datagrams left unanswered, by reason.
    """

    noisy = False
    _log = Logger()

    def __init__(
        self,
        template: ReplyTemplate | None = None,
        maxLength: int = DEFAULT_MAX_LENGTH,
        clock: IReactorTime | None = None,
        rate: float = 0,
        globalRate: float = 0,
        access: AccessPolicy | None = None,
        allowLowPorts: bool = False,
        proxied: bool = False,
    ) -> None:
        if maxLength < 1:
            raise ValueError("the maximum message length must be at least 1")
        if clock is None:
            from twisted.internet import reactor

            clock = cast(IReactorTime, reactor)
        self.template = template if template is not None else ReplyTemplate()
        self.maxLength = maxLength
        self.clock = clock
        self.access = access if access is not None else AccessPolicy()
        self.allowLowPorts = allowLowPorts
        self.proxied = proxied
        self.perSource: KeyedRateLimiter[str] = KeyedRateLimiter(rate)
        self.overall = (
            TokenBucket(globalRate, globalRate, clock.seconds()) if globalRate else None
        )
        self.received = 0
        self.replies = 0
        self.bytesReceived = 0
        self.bytesSent = 0
        self.dropped: Counter[str] = Counter()
        self._dropLog: Throttle[str] = Throttle()

    def startProtocol(self) -> None:
        self._send = datagramWriter(self.transport)

    def datagramReceived(self, datagram: bytes, addr: DatagramAddress) -> None:
        self.received += 1
        self.bytesReceived += len(datagram)
        host, port = addr[0], addr[1]
        if port < LOW_PORTS and not self.allowLowPorts:
            self.drop("low-port", addr)
            return
        balancer = None
        if self.proxied:
            try:
                client, datagram = splitProxyHeader(datagram)
            except ValueError as error:
                self.drop("proxy", addr, error=str(error))
                return
            balancer = (host, port)
            if client is not None:
                addr = (host, port) = client
                if port < LOW_PORTS and not self.allowLowPorts:
                    self.drop("low-port", addr, balancer)
                    return
        if self.access and not self.access.permits(host):
            self.drop("access", addr, balancer)
            return
        if len(datagram) > self.maxLength:
            self.drop("length", addr, balancer, length=len(datagram))
            return
        if self.perSource.rate or self.overall is not None:
            now = self.clock.seconds()
            if not self.perSource.allow(host, now):
                self.drop("rate", addr, balancer)
                return
            if self.overall is not None and not self.overall.take(now):
                self.drop("global-rate", addr, balancer)
                return
        reply = self.template.format(datagram)
        try:
            self._send(reply, balancer or (host, port))
        except (OSError, MessageLengthError) as error:
            self.drop("send-failed", addr, error=str(error))
            return
        self.replies += 1
        self.bytesSent += len(reply)

    def drop(
        self,
        reason: str,
        addr: DatagramAddress,
        balancer: tuple[str, int] | None = None,
        **fields: object,
    ) -> None:
        """
        Count a datagram from C{addr} left unanswered; say so at debug level,
        at most once a minute for each source address.  If it came through
        a C{balancer}, answer the balancer with an empty datagram, so that it
        does not take the refusal for this server's failure.
        """
        self.dropped[reason] += 1
        if self._dropLog.ready(addr[0], self.clock.seconds()):
            self._log.debug(
                "Dropped a datagram from {peer}: {reason}",
                peer=formatAddress(addr[:2]),
                reason=reason,
                greetdEvent="datagram.drop",
                **fields,
            )
        if balancer is not None:
            try:
                self._send(b"", balancer)
            except (OSError, MessageLengthError) as error:
                self.drop("send-failed", addr, error=str(error))
