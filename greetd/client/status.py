"""
How a run of C{greet} ends: its exit status, and the one line on standard
error that says why it failed.
"""

from __future__ import annotations

from typing import IO

from twisted.internet import error
from twisted.internet.defer import CancelledError
from twisted.python.failure import Failure

from greetd.client.errors import GreetError
from greetd.client.lines import InputError
from greetd.core.escaping import escape

#: Exit statuses; a signal (SIGINT, SIGTERM) gives the shells' 128 + 2.
OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130


def describeSessionFailure(failure: Failure) -> str:
    """
    What went wrong, in the words that follow the address on the one line
    C{greet} prints.
    """
    value = failure.value
    if isinstance(value, GreetError):
        return str(value)
    if isinstance(value, error.ConnectionRefusedError):
        return "connection refused"
    if isinstance(value, error.DNSLookupError):
        return "cannot resolve the host name"
    if isinstance(value, error.TimeoutError):
        return "timed out connecting"
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
