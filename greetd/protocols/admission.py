"""
Admission: whether a new connection may be served, by access control and
connection limits, with refusals counted and logged at most once a minute
per source.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Sequence

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from greetd.core.access import LOOPBACK, AccessPolicy, Network, TrustedPeers
from greetd.core.limits import ConnectionLimiter, Throttle

#: Connections open at once, from everyone.
DEFAULT_MAX_CONNECTIONS = 10000

#: Connections open at once from one address: room for a NAT's users.
DEFAULT_MAX_PER_IP = 64

#: New connections per second from one address (xinetd's cps).
DEFAULT_RATE_PER_IP = 20


#: The refusal of a connection whose PROXY header is not one, or not to be
#: believed (see L{greetd.protocols.proxy}).
PROXY_HEADER = "proxy-header"

#: The refusal of a connection still to send its PROXY header, over the
#: total cap: a C{max-connections} refusal before the client is known.
PROXY_MAX_CONNECTIONS = "proxy-max-connections"

#: The refusal of a connection that did not send its PROXY header in time.
PROXY_TIMEOUT = "proxy-timeout"


#: What a refused client is told, by the limit that refused it: one line
#: that says which limit, so a user knows whether to wait or to close some
#: connections.  A client denied by access control is told nothing.
REFUSAL_LINES = {
    "max-connections": b"Error: too many connections\r\n",
    PROXY_MAX_CONNECTIONS: b"Error: too many connections\r\n",
    "max-per-ip": b"Error: too many connections from your address\r\n",
    "rate-per-ip": b"Error: too many new connections from your address, "
    b"try again later\r\n",
}


#: The kinds of line L{Admission} throttles, each once a minute per source:
#: a refusal, and a PROXY header not believed.
_REFUSED, _BAD_HEADER = "refused", "bad-header"


def defaultLimiter() -> ConnectionLimiter:
    """
    The limits C{twistd greetd} applies by default: what an embedder gets
    unless they choose otherwise.
    """
    return ConnectionLimiter(
        DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_PER_IP, DEFAULT_RATE_PER_IP
    )


class Admission:
    """
    The door of a greeting factory.

    @ivar limiter: The L{ConnectionLimiter} new connections must pass.
    @ivar access: The L{AccessPolicy} for source addresses.
    @ivar healthCheckFrom: The networks whose connections are health checks.
    @ivar proxyFrom: The L{TrustedPeers}: the peers that may send a PROXY
        header on a C{haproxy:} listener (C{--proxy-from}; loopback unless
        given): a header names the client that limits, access control and
        logs apply to, so only a trusted balancer may send one, as nginx's
        C{set_real_ip_from} and HAProxy's C{expect-proxy ... if { src ... }}
        decide.
    @ivar refused: Connections refused, by the limit that refused them.
    @ivar lingering: Refused connections being given their error line.
    @ivar refusalLogged: Whether the last refusal was logged: the access
        log's line for it follows the same throttle, so that a flood of
        refusals writes at most one line a minute per source.
    """

    #: Seconds a refused connection is kept, its sending side shut, reading
    #: and discarding what the client sends, so that its error line is not
    #: destroyed by the reset a close with unread bytes would send.
    refusalLinger = 2.0

    #: The most refused connections kept lingering at once: past it, a
    #: refusal is closed at once, so a flood of refusals holds a bounded
    #: number of descriptors.
    maxLingering = 1024

    _log = Logger()

    def __init__(
        self,
        limiter: ConnectionLimiter,
        access: AccessPolicy,
        clock: IReactorTime,
        healthCheckFrom: Sequence[Network] = (),
        proxyFrom: Sequence[Network] = LOOPBACK,
    ) -> None:
        self.limiter = limiter
        self.access = access
        self.clock = clock
        self.healthCheckFrom = tuple(healthCheckFrom)
        self._healthChecks = TrustedPeers(self.healthCheckFrom)
        self.proxyFrom = TrustedPeers(proxyFrom)
        self.refused: Counter[str] = Counter()
        self.refusalLogged = False
        self.lingering = 0
        # Keyed by the kind of line and the source, so that one kind does
        # not silence the other: a bounded table, O(1) an event.
        self._refusalLog: Throttle[tuple[str, str | None]] = Throttle()

    def admit(
        self, host: str | None, source: str | None, peer: Callable[[], str]
    ) -> str | None:
        """
        Decide whether a new connection from C{host} may be served, and
        take its place if so.

        @param host: The source address; C{None} for a peer without one (a
            UNIX socket), to which only the total limit applies.
        @param source: The key of C{host} in per-source limits and the log
            throttle (L{greetd.core.sources.sourceKey}), or C{None}.
        @param peer: Returns the peer as logs show it, called only to log.
        @return: C{None} to serve it, which the caller must match with
            L{release}; otherwise why not: C{"access"} or the name of the
            connection limit it is over.
        """
        now = self.clock.seconds()
        if host is not None and not self.access.permits(host):
            refusal: str | None = "access"
        else:
            refusal = self.limiter.admit(source, now)
        if refusal is not None:
            self.refuse(refusal, source, peer)
        return refusal

    def hold(self, source: str | None, peer: Callable[[], str]) -> str | None:
        """
        Take a place for a connection from a trusted balancer still sending
        its PROXY header, from the moment it is accepted, under the total
        cap alone (L{ConnectionLimiter.hold}): the per-source cap, the rate
        and access control apply to the client the header names, once it is
        read (L{admit}); the caller gives this place back (L{unhold})
        first.  The header's deadline and size bound what such a
        connection holds.

        @param source: The key of the socket's peer, or C{None}, for the
            log's throttle.
        @param peer: Returns the peer as logs show it, called only to log.
        @return: C{None}, or L{PROXY_MAX_CONNECTIONS}.
        """
        if self.limiter.hold() is None:
            return None
        self.refuse(PROXY_MAX_CONNECTIONS, source, peer)
        return PROXY_MAX_CONNECTIONS

    def unhold(self) -> None:
        """
        Give back the place L{hold} took.
        """
        self.limiter.unhold()

    def trustsProxy(self, host: str | None) -> bool:
        """
        Whether the peer C{host} may send a PROXY header (L{proxyFrom}); a
        peer without an address (a UNIX socket, which the file system
        guards) may.
        """
        return host is None or self.proxyFrom.trusts(host)

    def refuse(self, refusal: str, source: str | None, peer: Callable[[], str]) -> None:
        """
        Count a connection refused for C{refusal}, and log it at most once a
        minute per source (L{refusalLogged} says whether it was).

        @param source: The key of its source, or C{None}.
        @param peer: Returns the peer as logs show it, called only to log.
        """
        self.refused[refusal] += 1
        self.refusalLogged = self._refusalLog.ready(
            (_REFUSED, source), self.clock.seconds()
        )
        if self.refusalLogged:
            self._log.info(
                "Refused a connection from {peer}: {reason}",
                peer=peer(),
                reason=refusal,
                greetdEvent="connection.refused",
            )

    def linger(self) -> bool:
        """
        Take a place for a refused connection to linger, if there is one.

        @return: Whether it may linger; if so, the caller must match it with
            L{lingered}.
        """
        if self.lingering >= self.maxLingering:
            return False
        self.lingering += 1
        return True

    def lingered(self) -> None:
        """
        A lingering refused connection is gone.
        """
        self.lingering -= 1

    def refuseHeader(
        self, source: str | None, peer: Callable[[], str], problem: str
    ) -> None:
        """
        Count a connection dropped for a PROXY header that is not one, as a
        C{proxy-header} refusal, and warn of it at most once a minute per
        source, as other refusals are logged: whoever can reach the port
        can send one.

        @param source: The key of the connection's own peer (the balancer,
            or whoever sent the header), or C{None}.
        @param peer: Returns the peer as logs show it, called only to log.
        @param problem: What is wrong with the header, for the log.
        """
        self.refused[PROXY_HEADER] += 1
        if self._refusalLog.ready((_BAD_HEADER, source), self.clock.seconds()):
            self._log.warn(
                "Dropped a connection from {peer}: bad PROXY header ({proxyError})",
                peer=peer(),
                reason=PROXY_HEADER,
                proxyError=problem,
                greetdEvent="connection.refused",
            )

    def isHealthCheck(self, host: str | None) -> bool:
        """
        Whether a connection from C{host} is a load balancer's health check
        (C{--health-check-from}): served as any other, but counted and
        logged apart, so that checks every 200 ms do not drown the clients.
        """
        return host is not None and self._healthChecks.trusts(host)

    def release(self, source: str | None) -> None:
        """
        Give back the place an admitted connection from C{source} held.
        """
        self.limiter.release(source)
