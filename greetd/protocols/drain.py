"""
Draining on shutdown: close every connection once what it is owed is
written, and cut whatever is left after a timeout.
"""

from __future__ import annotations

from typing import Any, Collection

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from greetd.protocols.connection import IdleConnection


def cancelling(result: Any, call: IDelayedCall) -> Any:
    """
    A callback that cancels C{call} (a deadline) when the L{Deferred} it is
    added to fires, and passes the result on.
    """
    if call.active():
        call.cancel()
    return result


class Drain:
    """
    Waits for a set of connections to empty, closing them first.

    @ivar connections: The open connections, owned by the caller, who calls
        L{emptied} when the last one is gone.
    """

    def __init__(
        self, clock: IReactorTime, connections: Collection[IdleConnection]
    ) -> None:
        self.clock = clock
        self.connections = connections
        self._waiting: list[Deferred[None]] = []

    def closeAll(self, timeout: float) -> Deferred[None]:
        """
        Close every connection once its owed replies are written, aborting
        those still open after C{timeout} seconds.

        @return: A L{Deferred} that fires when no connection is left.
        """
        if not self.connections:
            return succeed(None)
        drained: Deferred[None] = Deferred()
        self._waiting.append(drained)
        for connection in list(self.connections):
            if not connection.closing:
                connection.shutdown()
        deadline = self.clock.callLater(timeout, self.abortAll)
        drained.addBoth(cancelling, deadline)
        return drained

    def abortAll(self) -> None:
        """
        Cut every connection still open.
        """
        for connection in list(self.connections):
            connection.abort()

    def emptied(self) -> None:
        """
        The last connection is gone: whoever waits for that is told.
        """
        if not self._waiting:
            # The common case, at every connection of a one-at-a-time client.
            return
        waiting, self._waiting = self._waiting, []
        for drained in waiting:
            drained.callback(None)
