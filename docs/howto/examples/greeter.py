"""
An application that embeds greetd: a TCP greeting service of its own, with
its banner and replies, on any endpoint.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from greetd import GreetingFactory, ReplyTemplate

#: The application's reply to each name.
TEMPLATE = ReplyTemplate("Good morning, %s.")


def makeFactory(clock: IReactorTime | None = None) -> GreetingFactory:
    """
    The application's greeting service: its own banner and replies, one
    line each.

    @param clock: The time source; the global reactor unless given.
    """
    return GreetingFactory(
        welcome=b"Greeter", template=TEMPLATE, framing="line", clock=clock
    )
