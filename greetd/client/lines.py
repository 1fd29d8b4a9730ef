"""
Names read from standard input, one a line.
"""

from __future__ import annotations

from collections import deque
from typing import Callable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from greetd.client.names import checkName
from greetd.core.framing import EXIT

#: The longest line read from standard input as one name.
MAX_NAME_LENGTH = 65536


@implementer(IHalfCloseableProtocol)
class LineNames(Protocol):
    """
    Names read from a stream (standard input), one a line, handed out one
    at a time by L{nextName}; reading pauses while names wait unused.

    A CR before the LF is dropped, blank lines are skipped, a last line
    without a LF still counts, and the end of input ends the names.

    @ivar problem: Why reading stopped early, if it did: an error for
        L{nextName} to raise.
    """

    def __init__(self, maxLength: int = MAX_NAME_LENGTH) -> None:
        self.maxLength = maxLength
        self._buffer = b""
        self._names: deque[bytes] = deque()
        self._ended = False
        self._waiting: Deferred[bytes | None] | None = None
        self._closedWaiters: list[Deferred[None]] = []
        self._closed = False
        self.problem: ValueError | None = None

    def dataReceived(self, data: bytes) -> None:
        *lines, self._buffer = (self._buffer + data).split(b"\n")
        for line in lines:
            self._addLine(line)
        if len(self._buffer) > self.maxLength:
            self._stop(ValueError(f"a line is longer than {self.maxLength} bytes"))
        elif self._names and self.transport is not None:
            self.transport.pauseProducing()  # type: ignore[attr-defined]
        self._deliver()

    def _addLine(self, line: bytes) -> None:
        if self._ended:
            return
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            return
        try:
            checkName(line)
        except ValueError as problem:
            self._stop(problem)
            return
        self._names.append(line)
        if line == EXIT:
            self._ended = True

    def _stop(self, problem: ValueError) -> None:
        # The names before the bad line are still greeted.
        self.problem = problem
        self._ended = True

    def readConnectionLost(self) -> None:
        self._addLine(self._buffer)
        self._buffer = b""
        self._ended = True
        self._deliver()

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.readConnectionLost()
        self._closed = True
        waiters, self._closedWaiters = self._closedWaiters, []
        for closed in waiters:
            closed.callback(None)

    def close(self) -> Deferred[None]:
        """
        Stop reading, write out what is buffered for output, and close.

        @return: A L{Deferred} firing once that is done.
        """
        if self._closed or self.transport is None:
            return succeed(None)
        closed: Deferred[None] = Deferred()
        self._closedWaiters.append(closed)
        self.transport.loseConnection()
        return closed

    def nextName(self) -> Deferred[bytes | None]:
        """
        The next name, or C{None} at the end of the names.

        @raise ValueError: When reading stopped at a line that is no name.
        """
        if self._waiting is not None:
            raise ValueError("one name at a time")
        waiting: Deferred[bytes | None] = Deferred()
        self._waiting = waiting
        self._deliver()
        return waiting

    def _deliver(self) -> None:
        waiting = self._waiting
        if waiting is None:
            return
        if self._names:
            self._waiting = None
            waiting.callback(self._names.popleft())
            if not self._names and not self._ended and self.transport is not None:
                self.transport.resumeProducing()  # type: ignore[attr-defined]
        elif self._ended:
            self._waiting = None
            if self.problem is not None:
                waiting.errback(self.problem)
            else:
                waiting.callback(None)


class InputError(Exception):
    """
    Standard input held a line that cannot be a name: a usage error.
    """


def readLine(names: LineNames) -> Callable[[], Deferred[bytes | None]]:
    def nextName() -> Deferred[bytes | None]:
        def checked(failure: Failure) -> Failure:
            failure.trap(ValueError)
            return Failure(InputError(f"standard input: {failure.value}"))

        return names.nextName().addErrback(checked)

    return nextName
