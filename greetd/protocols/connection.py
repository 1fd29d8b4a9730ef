"""
What a factory's collaborators need of one connection, and nothing more:
the idle sweep and the drain on shutdown work on any L{IdleConnection}.
"""

from __future__ import annotations

from typing import Protocol


class IdleConnection(Protocol):
    """
    One connection as the idle sweep (L{greetd.protocols.idle}) and the
    drain on shutdown (L{greetd.protocols.drain}) see it.

    @ivar closing: Whether it is closing already.
    @ivar lastMessageAt: When it last completed a message (or opened).
    """

    closing: bool
    lastMessageAt: float

    def idleTimedOut(self) -> None:
        """
        It completed no message for the idle timeout: say so and close.
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
