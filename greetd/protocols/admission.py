"""
Admission: whether a new connection may be served, by access control and
connection limits, with refusals counted and logged at most once a minute
per source.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from greetd.core.access import AccessPolicy
from greetd.core.limits import ConnectionLimiter, Throttle

#: Connections open at once, from everyone.
DEFAULT_MAX_CONNECTIONS = 10000

#: Connections open at once from one address: room for a NAT's users.
DEFAULT_MAX_PER_IP = 64

#: New connections per second from one address (xinetd's cps).
DEFAULT_RATE_PER_IP = 20


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
    @ivar refused: Connections refused, by the limit that refused them.
    """

    _log = Logger()

    def __init__(
        self, limiter: ConnectionLimiter, access: AccessPolicy, clock: IReactorTime
    ) -> None:
        self.limiter = limiter
        self.access = access
        self.clock = clock
        self.refused: Counter[str] = Counter()
        self._refusalLog: Throttle[str | None] = Throttle()

    def admit(self, host: str | None, peer: Callable[[], str]) -> str | None:
        """
        Decide whether a new connection from C{host} may be served, and
        take its place if so.

        @param host: The source address; C{None} for a peer without one (a
            UNIX socket), to which only the total limit applies.
        @param peer: Returns the peer as logs show it, called only to log.
        @return: C{None} to serve it, which the caller must match with
            L{release}; otherwise why not: C{"access"} or the name of the
            connection limit it is over.
        """
        now = self.clock.seconds()
        if host is not None and not self.access.permits(host):
            refusal: str | None = "access"
        else:
            refusal = self.limiter.admit(host, now)
        if refusal is not None:
            self.refused[refusal] += 1
            if self._refusalLog.ready(host, now):
                self._log.info(
                    "Refused a connection from {peer}: {reason}",
                    peer=peer(),
                    reason=refusal,
                    greetdEvent="connection.refused",
                )
        return refusal

    def release(self, host: str | None) -> None:
        """
        Give back the place an admitted connection from C{host} held.
        """
        self.limiter.release(host)
