"""
From checked options to the factory and protocols that answer clients:
one builder, used by a single process and by each worker process alike.
"""

from __future__ import annotations

from typing import Any

from greetd.core.access import AccessPolicy
from greetd.core.counters import Counts, HasCounts, readCounts
from greetd.core.limits import ConnectionLimiter
from greetd.core.proxyheader import MAX_DATAGRAM_HEADER
from greetd.core.template import ReplyTemplate
from greetd.daemon.options import Options
from greetd.ops.accepterrors import processAcceptErrors
from greetd.ops.accesslog import FastAccessLog
from greetd.protocols.accesslog import LoggerAccessLog, NoAccessLog
from greetd.protocols.datagram import ReplyProtocol
from greetd.protocols.greeting import GreetingFactory


class Servers:
    """
    What answers clients, as the options describe it, before it listens
    anywhere: built once per process, by L{greetd.daemon.single} for the
    listeners it binds and by a worker (L{greetd.daemon.worker}) for the
    sockets it inherits.

    @ivar factory: The one L{GreetingFactory} every TCP listener shares, so
        that connection limits count across them; C{None} without TCP.
    @ivar replies: A L{ReplyProtocol} for each C{--udp} listener, in order
        (a datagram port owns its protocol).
    @ivar maxPacketSize: The receive buffer of a UDP port: one more than the
        longest datagram answered, so a longer one is seen to be too long
        (and room for a PROXY header when a listener expects one).
    """

    def __init__(
        self,
        factory: GreetingFactory | None,
        replies: list[ReplyProtocol],
        maxPacketSize: int,
    ) -> None:
        self.factory = factory
        self.replies = replies
        self.maxPacketSize = maxPacketSize
        self._acceptErrors = processAcceptErrors() if factory is not None else None

    def counts(self) -> Counts[str]:
        """
        The counters of every server, for metrics, with the process's failed
        accepts (L{processAcceptErrors}) when it serves TCP.
        """
        tcp: list[HasCounts] = []
        if self.factory is not None and self._acceptErrors is not None:
            tcp = [self.factory, self._acceptErrors]
        return readCounts([*tcp, *self.replies])


def buildServers(options: Options, reactor: Any) -> Servers:
    """
    The factory and protocols that serve C{options}.

    @param options: Parsed L{Options}.
    @param reactor: The clock for timeouts and rates.
    """
    template: ReplyTemplate = options["template"]
    maxLength: int = options["max-length"]
    access: AccessPolicy = options["access"]
    factory = None
    if options["plan"].tcp:
        factory = GreetingFactory(
            welcome=options["welcome"].encode("utf-8"),
            template=template,
            framing=options["framing"],
            maxLength=maxLength,
            clock=reactor,
            idleTimeout=options["idle-timeout"],
            writeTimeout=options["write-timeout"],
            limiter=ConnectionLimiter(
                options["max-connections"],
                options["max-per-ip"],
                options["rate-per-ip"],
                options["ipv6-prefix"],
            ),
            access=access,
            healthCheckFrom=options["health-check-from"],
            proxyFrom=options["proxy-from"],
            accessLog=NoAccessLog()
            if options["no-access-log"]
            else FastAccessLog(options["log"], LoggerAccessLog()),
        )
    replies = [
        ReplyProtocol(
            template,
            maxLength,
            clock=reactor,
            rate=options["udp-rate"],
            globalRate=options["udp-global-rate"],
            access=access,
            allowLowPorts=options["udp-allow-low-ports"],
            ipv6Prefix=options["ipv6-prefix"],
            proxied=listener.proxied,
            proxyFrom=options["proxy-from"],
        )
        for listener in options["plan"].udp
    ]
    proxied = any(listener.proxied for listener in options["plan"].udp)
    header = MAX_DATAGRAM_HEADER if proxied else 0
    return Servers(factory, replies, maxLength + 1 + header)
