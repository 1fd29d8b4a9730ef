"""
How a run of C{greet} ends: its exit status, and the one line on standard
error that says why it failed.
"""

from __future__ import annotations

import errno
import os
from typing import IO

from twisted.internet import error
from twisted.internet.defer import CancelledError
from twisted.python.failure import Failure

from greetd.client.errors import (
    GreetError,
    NoReply,
    ReplyTooLong,
    ServerRefused,
    UnexpectedReply,
)
from greetd.client.lines import InputError
from greetd.core.escaping import escape

#: Exit statuses; a signal (SIGINT, SIGTERM) gives the shells' 128 + 2.
OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130


#: What a user can do about each failure, after what happened.
_ADVICE: list[tuple[type[BaseException], str]] = [
    (ServerRefused, "try again later"),
    (
        UnexpectedReply,
        "if the daemon runs with another --reply, give greet the same --reply",
    ),
    (ReplyTooLong, "greet --max-length raises the limit"),
    (NoReply, "is a greetd UDP service at that address?"),
]

#: A failed connect, by errno: what happened, and what to do.
_CONNECT_ERRORS = {
    errno.ENOENT: "no such socket: check the path, and that the daemon is running",
    errno.EACCES: "permission denied: greet may not use that socket",
    errno.ECONNREFUSED: "connection refused: is the daemon running there?",
}


def describeSessionFailure(failure: Failure) -> str:
    """
    What went wrong and, where a user can do something about it, what to
    do: the words that follow the address on the one line C{greet} prints.
    """
    value = failure.value
    if isinstance(value, GreetError):
        for kind, advice in _ADVICE:
            if isinstance(value, kind):
                return f"{value}; {advice}"
        return str(value)
    if isinstance(value, error.ConnectionRefusedError):
        return _CONNECT_ERRORS[errno.ECONNREFUSED]
    if isinstance(value, error.DNSLookupError):
        return "cannot resolve the host name: check -H"
    if isinstance(value, error.TimeoutError):
        return "timed out connecting"
    if isinstance(value, error.ConnectError) and value.osError is not None:
        known = _CONNECT_ERRORS.get(value.osError)
        if known is not None:
            return known
        reason = str(value.args[0]) if value.args else os.strerror(value.osError)
        return f"cannot connect: {escape(reason)}"
    if isinstance(value, (error.ConnectionLost, ConnectionResetError)):
        return "connection reset"
    detail = str(value).strip().splitlines()
    return escape(detail[-1] if detail else type(value).__name__)


def finish(result: Failure | object, address: str, stderr: IO[str]) -> int:
    """
    The exit status for a session's C{result}, saying why on C{stderr}
    when it failed.
    """
    if not isinstance(result, Failure):
        return OK
    if result.check(InputError):
        stderr.write(f"greet: {result.value} (see greet --help)\n")
        return USAGE
    if result.check(CancelledError):
        stderr.write(f"greet: {address}: interrupted\n")
        return INTERRUPTED
    stderr.write(f"greet: {address}: {describeSessionFailure(result)}\n")
    return FAILED
