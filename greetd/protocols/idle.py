"""
The deadline sweep: one periodic check for every connection of a factory,
rather than a timer each, which would cost more memory than the rest of an
idle connection's state.

Every state of a connection has a deadline here, as HAProxy's C{timeout
client} and nginx's C{client_body_timeout} and C{send_timeout} give one:

  - open: it completes a message within the idle timeout;
  - owing bytes the peer has not made room for (open or closing): the
    peer takes some of them within the write timeout;
  - closing: it is gone within the idle timeout of beginning to close.

A connection past a deadline of the first kind is told and closed
(L{IdleConnection.idleTimedOut}); past one of the others, it has shown it
will not read what it is sent, so it is cut
(L{IdleConnection.writeTimedOut}).  The drain on shutdown has its own
deadline (L{greetd.protocols.drain}), and the sweep rests meanwhile.
"""

from __future__ import annotations

from typing import Collection

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from greetd.protocols.connection import IdleConnection


class IdleSweep:
    """
    Hold connections to their deadlines (as the module says), checking
    every L{interval}: a connection is cut at most that late.

    The sweep runs only while there are connections: L{wake} when one is
    added; a sweep that finds none stops it (L{rest} stops it at once).
    Stopping it when the last connection goes would start and stop a timer
    for every connection of a client that connects one at a time.

    @ivar timeout: Seconds a connection may complete no message, and may
        take to close; 0 for no limit.
    @ivar writeTimeout: Seconds a peer may take none of the bytes it is
        owed; 0 for no limit.
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
        writeTimeout: float = 0.0,
    ) -> None:
        self.clock = clock
        self.timeout = timeout
        self.writeTimeout = writeTimeout
        self.connections = connections
        self._call: LoopingCall | None = None

    @property
    def interval(self) -> float:
        """
        How often deadlines are checked: a tenth of the shorter timeout,
        between L{minInterval} and L{maxInterval} seconds.
        """
        shortest = min(t for t in (self.timeout, self.writeTimeout, 1e9) if t)
        return min(max(shortest / 10, self.minInterval), self.maxInterval)

    def wake(self) -> None:
        """
        A connection was added: make sure the sweep runs.
        """
        if (self.timeout or self.writeTimeout) and self._call is None:
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
        Close or cut every connection past one of its deadlines.
        """
        if not self.connections:
            self.rest()
            return
        now = self.clock.seconds()
        idle, write = self.timeout, self.writeTimeout
        idleSince = now - idle if idle else -1.0
        idled: list[IdleConnection] = []
        stalled: list[IdleConnection] = []
        for connection in self.connections:
            if write:
                owed = connection.unsent()
                if not owed or owed < connection.writeMark:
                    connection.writeProgressAt = now
                connection.writeMark = owed
                if owed and now - connection.writeProgressAt >= write:
                    stalled.append(connection)
                    continue
            if not connection.closing:
                if connection.lastMessageAt <= idleSince:
                    idled.append(connection)
            elif connection.closingAt <= idleSince:
                stalled.append(connection)
        for connection in idled:
            connection.idleTimedOut()
        for connection in stalled:
            connection.writeTimedOut()
