"""
What a factory's collaborators need of one connection, and nothing more:
the deadline sweep and the drain on shutdown work on any
L{IdleConnection}.
"""

from __future__ import annotations

from typing import Protocol


class IdleConnection(Protocol):
    """
    One connection as the deadline sweep (L{greetd.protocols.idle}) and the
    drain on shutdown (L{greetd.protocols.drain}) see it.

    @ivar closing: Whether it is closing already.
    @ivar lastMessageAt: When it last completed a message (or opened).
    @ivar closingAt: When it began to close, once L{closing}.
    @ivar writeMark: What L{unsent} said when the sweep last asked; the
        sweep's to keep.
    @ivar writeProgressAt: When the sweep last saw what it is owed shrink or
        run out; the sweep's to keep, from when it opened.
    """

    closing: bool
    lastMessageAt: float
    closingAt: float
    writeMark: int
    writeProgressAt: float

    def unsent(self) -> int:
        """
        How many bytes it is owed that wait in greetd's buffers, not yet
        handed to the kernel because the peer has not made room for them.
        """

    def idleTimedOut(self) -> None:
        """
        It completed no message for the idle timeout: say so and close.
        """

    def writeTimedOut(self) -> None:
        """
        The peer took none of what it is owed for the write timeout, or did
        not let a close finish within the idle timeout: cut it.
        """

    def close(self) -> None:
        """
        Close once what it is owed is written.
        """

    def shutdown(self) -> None:
        """
        Close for shutdown: what it is owed is written, then it is closed
        without cutting a reply (L{greetd.protocols.drain}).
        """

    def abort(self) -> None:
        """
        Close now, dropping what is unwritten.
        """
