"""
Names, where a session's names come from, and greeting them in turn.
"""

from __future__ import annotations

from typing import Any, Callable, Generator, Iterable, Iterator, Union

from twisted.internet.defer import Deferred, inlineCallbacks, succeed

from greetd.core.escaping import quote
from greetd.core.framing import EXIT


def checkName(name: bytes) -> None:
    """
    Refuse a name the protocol cannot carry as one message.

    @raise ValueError: If C{name} is empty or holds CR or LF (which would
        end a line, or switch an C{auto} daemon to lines).
    """
    if not name:
        raise ValueError("a name cannot be empty")
    if b"\r" in name or b"\n" in name:
        raise ValueError(f"a name cannot contain CR or LF: {quote(name)}")


#: Where a session's names come from: any iterable of names, or a
#: callable returning a C{Deferred} that fires with the next name or with
#: C{None} when there are no more (names typed at a terminal, say).
Names = Union[Iterable[bytes], Callable[[], "Deferred[bytes | None]"]]

#: Called with each name and its reply as the reply arrives.
OnReply = Callable[[bytes, bytes], object]


def nextNames(names: Names) -> Callable[[], Deferred[bytes | None]]:
    if callable(names):
        return names
    iterator: Iterator[bytes] = iter(names)
    return lambda: succeed(next(iterator, None))


@inlineCallbacks
def greetEach(
    greet: Callable[[bytes], Deferred[bytes]],
    names: Names,
    onReply: OnReply | None,
) -> Generator[Deferred[Any], Any, list[bytes]]:
    """
    Greet each name in turn, up to the end of C{names} or a name C{exit}.
    """
    nextName = nextNames(names)
    replies: list[bytes] = []
    while True:
        name = yield nextName()
        if name is None or name == EXIT:
            return replies
        reply = yield greet(name)
        replies.append(reply)
        if onReply is not None:
            onReply(name, reply)
