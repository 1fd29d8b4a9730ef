"""
The idle sweep: one periodic check for every connection of a factory,
rather than a timer each, which would cost more memory than the rest of an
idle connection's state.
"""

from __future__ import annotations

from typing import Collection

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from greetd.protocols.connection import IdleConnection


class IdleSweep:
    """
    Time out connections that complete no message for C{timeout} seconds,
    checking every L{interval}: a connection is cut at most that late.

    The sweep runs only while there are connections: L{wake} when one is
    added; a sweep that finds none stops it (L{rest} stops it at once).
    Stopping it when the last connection goes would start and stop a timer
    for every connection of a client that connects one at a time.

    @ivar timeout: Seconds a connection may complete no message; 0 for no
        limit, and no sweep.
    @ivar connections: The connections to check, owned by the caller.
    """

    #: The shortest and longest time between two sweeps.
    minInterval = 0.1
    maxInterval = 5.0

    def __init__(
        self,
        clock: IReactorTime,
        timeout: float,
        connections: Collection[IdleConnection],
    ) -> None:
        self.clock = clock
        self.timeout = timeout
        self.connections = connections
        self._call: LoopingCall | None = None

    @property
    def interval(self) -> float:
        """
        How often idle connections are looked for: a tenth of the timeout,
        between L{minInterval} and L{maxInterval} seconds.
        """
        return min(max(self.timeout / 10, self.minInterval), self.maxInterval)

    def wake(self) -> None:
        """
        A connection was added: make sure the sweep runs.
        """
        if self.timeout and self._call is None:
            self._call = LoopingCall(self.sweep)
            self._call.clock = self.clock
            self._call.start(self.interval, now=False)

    def rest(self) -> None:
        """
        No connection is left: stop sweeping until the next one.
        """
        call, self._call = self._call, None
        if call is not None and call.running:
            call.stop()

    def emptied(self, served: bool) -> None:
        """
        The last connection has closed.  While a port serves them, the sweep
        waits for its next round, so that a client connecting one connection
        at a time does not start and stop it every time.  Served by none (a
        test over an in-memory transport), it stops now: nothing is left on
        the clock, even when that is the global reactor.

        @param served: Whether a port serves the connections' factory.
        """
        if not served:
            self.rest()

    def sweep(self) -> None:
        """
        Time out every connection idle for L{timeout} seconds or more.
        """
        if not self.connections:
            self.rest()
            return
        deadline = self.clock.seconds() - self.timeout
        for connection in [
            connection
            for connection in self.connections
            if connection.lastMessageAt <= deadline and not connection.closing
        ]:
            connection.idleTimedOut()
