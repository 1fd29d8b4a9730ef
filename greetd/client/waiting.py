"""
Timing each wait for the server.
"""

from __future__ import annotations

from typing import Callable, cast

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from greetd.client.errors import GreetTimeout

#: How long any one wait for the server lasts by default, in seconds.
DEFAULT_TIMEOUT = 5.0


def defaultClock(clock: IReactorTime | None) -> IReactorTime:
    if clock is None:
        from twisted.internet import reactor

        clock = cast(IReactorTime, reactor)
    return clock


class Waiter:
    """
    A timer on one wait for the server, which calls C{onTimeout} with a
    L{GreetTimeout} unless it is cancelled first.
    """

    def __init__(self, clock: IReactorTime, timeout: float) -> None:
        self.clock = clock
        self.timeout = timeout
        self._call: IDelayedCall | None = None

    def start(
        self,
        waitingFor: str,
        onTimeout: Callable[[GreetTimeout], None],
        seconds: float | None = None,
    ) -> None:
        """
        Time a new wait, replacing any current one: for C{seconds}, or the
        timeout.
        """
        self.cancel()

        def expired() -> None:
            self._call = None
            onTimeout(GreetTimeout(waitingFor, self.timeout))

        wait = self.timeout if seconds is None else seconds
        self._call = self.clock.callLater(wait, expired)

    def cancel(self) -> None:
        """
        Stop timing the current wait, if any.
        """
        if self._call is not None:
            self._call.cancel()
            self._call = None
