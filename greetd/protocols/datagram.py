"""
The UDP reply service: every datagram gets the reply template back.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence, Tuple, Union, cast

from twisted.internet.error import MessageLengthError
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from greetd.core.access import LOOPBACK, AccessPolicy, Network, TrustedPeers
from greetd.core.counters import DROP_REASONS, Counts, key
from greetd.core.escaping import formatAddress
from greetd.core.framing import DEFAULT_MAX_LENGTH
from greetd.core.limits import KeyedRateLimiter, Throttle, TokenBucket
from greetd.core.proxyheader import UNTRUSTED_PEER, splitDatagramHeader
from greetd.core.sources import DEFAULT_IPV6_PREFIX, sourceKey
from greetd.core.template import ReplyTemplate
from greetd.protocols.fastwrite import datagramWriter

#: A datagram source, as Twisted delivers it: C{(host, port)}, or for IPv6
#: C{(host, port, flowinfo, scopeid)}.
DatagramAddress = Union[Tuple[str, int], Tuple[str, int, int, int]]

#: Replies per second to one source address.
DEFAULT_RATE = 10

#: Replies per second in all.
DEFAULT_GLOBAL_RATE = 1000

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
    it answers), and beyond a rate per source and a rate in all (checked in
    that order, so a datagram the global rate refuses costs its source
    nothing).  Every drop is counted by reason, and logged at most once a
    minute per source.

    @ivar template: The L{ReplyTemplate} for replies.
    @ivar maxLength: The longest datagram answered.
    @ivar access: The L{AccessPolicy} for sources.
    @ivar allowLowPorts: Whether sources below port 1024 are answered.
    @ivar ipv6Prefix: How many leading bits of an IPv6 address name its
        source, for the rate and the log (L{sourceKey}).
    @ivar proxied: Whether datagrams start with a PROXY header naming their
        client, as nginx's C{proxy_protocol} sends for UDP (C{--udp
        haproxy:udp:...}): limits, access control and logs then apply to
        the client, and the reply goes back to the balancer.
    @ivar proxyFrom: The L{TrustedPeers}: the sources whose headers are
        believed (C{--proxy-from}, loopback unless given): a datagram
        from any other source is dropped as C{proxy}, unanswered, so that
        nobody can spend another address's budget by naming it.  The last
        source found trusted is remembered, so that a balancer's
        datagrams are not checked against the networks one by one.
    @ivar refusalAnswers: The L{TokenBucket} the empty answers to a
        balancer's refused datagrams spend: their own, at the global rate
        (L{DEFAULT_GLOBAL_RATE} when that is off), so that a flood of
        refused datagrams gets a bounded number of answers.
    @ivar perSource: The L{KeyedRateLimiter} for each source.
    @ivar overall: The L{TokenBucket} for all replies, or C{None} for none.
    @ivar clock: The time source for the rates.
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
        rate: float = DEFAULT_RATE,
        globalRate: float = DEFAULT_GLOBAL_RATE,
        access: AccessPolicy | None = None,
        allowLowPorts: bool = False,
        ipv6Prefix: int = DEFAULT_IPV6_PREFIX,
        proxied: bool = False,
        proxyFrom: Sequence[Network] = LOOPBACK,
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
        self.ipv6Prefix = ipv6Prefix
        self.proxied = proxied
        self.proxyFrom = TrustedPeers(proxyFrom)
        self._trustedHost: str | None = None
        answers = globalRate or DEFAULT_GLOBAL_RATE
        self.refusalAnswers = TokenBucket(answers, answers, clock.seconds())
        self.perSource: KeyedRateLimiter[str] = KeyedRateLimiter(rate)
        self.overall = (
            TokenBucket(globalRate, globalRate, clock.seconds()) if globalRate else None
        )
        self.replies = 0
        self.bytesReceived = 0
        self.bytesSent = 0
        self.dropped: Counter[str] = Counter()
        self._dropLog: Throttle[str] = Throttle()

    def startProtocol(self) -> None:
        self._send = datagramWriter(self.transport)

    def datagramReceived(self, datagram: bytes, addr: DatagramAddress) -> None:
        self.bytesReceived += len(datagram)
        host, port = addr[0], addr[1]
        source = sourceKey(host, self.ipv6Prefix)
        if port < LOW_PORTS and not self.allowLowPorts:
            self.drop("low-port", addr, source)
            return
        balancer = None
        if self.proxied:
            if host != self._trustedHost:
                if not self.proxyFrom.trusts(host):
                    self.drop("proxy", addr, source, proxyError=UNTRUSTED_PEER)
                    return
                self._trustedHost = host
            try:
                client, datagram = splitDatagramHeader(datagram)
            except ValueError as error:
                self.drop("proxy", addr, source, proxyError=str(error))
                return
            balancer = (host, port)
            if client is not None:
                addr = (host, port) = client
                source = sourceKey(host, self.ipv6Prefix)
                if port < LOW_PORTS and not self.allowLowPorts:
                    self.drop("low-port", addr, source, balancer)
                    return
        if self.access and not self.access.permits(host):
            self.drop("access", addr, source, balancer)
            return
        if len(datagram) > self.maxLength:
            self.drop("length", addr, source, balancer, length=len(datagram))
            return
        if self.perSource.rate or self.overall is not None:
            now = self.clock.seconds()
            if not self.perSource.allow(source, now):
                self.drop("rate", addr, source, balancer)
                return
            if self.overall is not None and not self.overall.take(now):
                # The source kept to its rate: the reply it is not sent
                # must not count against it.
                self.perSource.refund(source)
                self.drop("global-rate", addr, source, balancer)
                return
        reply = self.template.format(datagram)
        try:
            # The source as delivered, not a copy, where it is (host, port):
            # a DatagramPort sends a reply to the datagram's own source
            # without parsing its address again.
            self._send(reply, balancer or (addr if len(addr) == 2 else (host, port)))
        except (OSError, MessageLengthError) as error:
            self.drop("send-failed", addr, source, error=str(error))
            return
        self.replies += 1
        self.bytesSent += len(reply)

    def counts(self) -> Counts[str]:
        """
        The UDP counts of the schema (L{greetd.core.counters}), now.
        """
        counts: Counts[str] = Counter()
        counts[key("udp", "messages")] = self.replies
        counts[key("udp", "bytesReceived")] = self.bytesReceived
        counts[key("udp", "bytesSent")] = self.bytesSent
        for reason in DROP_REASONS:
            counts[key("udp", "dropped", reason)] = self.dropped[reason]
        return counts

    def drop(
        self,
        reason: str,
        addr: DatagramAddress,
        source: str,
        balancer: tuple[str, int] | None = None,
        **fields: object,
    ) -> None:
        """
        Count a datagram left unanswered; say so at debug level, at most once
        a minute for each source.  If it came through a C{balancer}, answer
        the balancer with an empty datagram, so that it does not take the
        refusal for this server's failure (nginx counts an unanswered
        datagram against the server), while L{refusalAnswers} has a token.

        @param addr: Where the datagram came from, for the log.
        @param source: The key of its source (L{sourceKey}), for the throttle.
        @param balancer: The balancer it came through, if any, which the
            log names beside the client (C{via}).
        """
        self.dropped[reason] += 1
        if self._dropLog.ready(source, self.clock.seconds()):
            peer = formatAddress(addr[:2])
            if balancer is not None:
                fields["via"] = via = formatAddress(balancer)
                peer = f"{peer} via {via}"
            self._log.debug(
                "Dropped a datagram from {peer}: {reason}",
                peer=peer,
                reason=reason,
                greetdEvent="datagram.drop",
                **fields,
            )
        if balancer is not None and self.refusalAnswers.take(self.clock.seconds()):
            try:
                self._send(b"", balancer)
            except (OSError, MessageLengthError) as error:
                self.drop("send-failed", addr, source, error=str(error))
