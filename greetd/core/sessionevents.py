"""
What a client session without I/O (L{greetd.core.session.ClientSession})
tells its caller: the actions it asks for (bytes to send, a close, a wait
to time) and what happened (the banner, each reply, each way to fail).
"""

from __future__ import annotations

from typing import NamedTuple, Union


class Send(NamedTuple):
    """
    Write C{data} to the server.
    """

    data: bytes


class Close(NamedTuple):
    """
    C{exit} is sent: close the connection.
    """


class Wait(NamedTuple):
    """
    A new wait for the server begins: time it, saying C{what} is awaited
    if it times out; or, when C{what} is C{None}, nothing is awaited.
    """

    what: str | None


class Banner(NamedTuple):
    """
    The banner, without its line ending (empty when none came).
    """

    banner: bytes


class Reply(NamedTuple):
    """
    The reply to the oldest name not yet answered.
    """

    name: bytes
    reply: bytes


class Refused(NamedTuple):
    """
    The server turned the connection away with an error line instead of a
    banner (C{Error: too many connections}).  The session is over.
    """

    text: bytes


class ErrorReply(NamedTuple):
    """
    The server answered a name with an error line (C{Error: message longer
    than N bytes}), after which it closes.  The session is over.
    """

    text: bytes


class WrongReply(NamedTuple):
    """
    The server answered C{name} with C{reply}, not with C{expected}: a
    daemon with another template, or one not to be believed.  The session
    is over.
    """

    name: bytes
    reply: bytes
    expected: bytes


class Stray(NamedTuple):
    """
    In lines, the server sent a whole C{line} while no reply was owed: it
    answers no name (the server had not been sent one).  The session is
    over.
    """

    line: bytes


class TooLong(NamedTuple):
    """
    The server sent more than C{limit} bytes of C{what} without ending it.
    The session is over.
    """

    what: str
    limit: int


class Closed(NamedTuple):
    """
    The connection ended before the session did, while C{waitingFor} was
    awaited (C{None}: nothing was, but the session cannot go on), with the
    bytes of an unfinished reply, if any.  The session is over.
    """

    waitingFor: str | None
    partial: bytes
    clean: bool


#: What a L{greetd.core.session.ClientSession} tells its caller to do.
Action = Union[Send, Close, Wait]

#: What a L{greetd.core.session.ClientSession} tells its caller happened;
#: the failures end the session.
Event = Union[
    Action, Banner, Reply, Refused, ErrorReply, WrongReply, Stray, TooLong, Closed
]

#: The actions, and the failures (which end a session).
ACTIONS = (Send, Close, Wait)
FAILURES = (Refused, ErrorReply, WrongReply, Stray, TooLong, Closed)
