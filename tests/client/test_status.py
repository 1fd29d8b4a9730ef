"""
Tests for L{greetd.client.status}.
"""

from __future__ import annotations

import errno
import io

from twisted.internet import error
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from greetd.client.errors import (
    GreetTimeout,
    NoReply,
    ReplyTooLong,
    ServerRefused,
    UnexpectedReply,
)
from greetd.client.lines import InputError
from greetd.client.status import FAILED, OK, USAGE, describeSessionFailure, finish


class DescribeFailureTests(SynchronousTestCase):
    def test_descriptions(self) -> None:
        for exception, text in [
            (
                GreetTimeout("the banner", 1),
                "timed out after 1s waiting for the banner",
            ),
            (
                NoReply(b"Sarah", 4),
                "no reply to 'Sarah' after 4 tries;"
                " is a greetd UDP service at that address?",
            ),
            (
                NoReply(b"Tracy", 4, 3),
                "no reply to 'Tracy' after 4 tries"
                " (3 datagrams that were not the reply);"
                " is a greetd UDP service at that address?",
            ),
            (
                ServerRefused(b"Error: too many connections from your address"),
                "the server refused the connection:"
                " 'Error: too many connections from your address'; try again later",
            ),
            (
                UnexpectedReply(b"Ann", b"Hi Ann", b"Hello, Ann!"),
                "the reply to 'Ann' was 'Hi Ann', not 'Hello, Ann!'; if the daemon"
                " runs with another --reply, give greet the same --reply",
            ),
            (
                ReplyTooLong("the banner", 1024),
                "the banner is longer than 1024 bytes;"
                " greet --max-length raises the limit",
            ),
            (
                error.ConnectionRefusedError(),
                "connection refused: is the daemon running there?",
            ),
            (
                error.getConnectError((errno.ENOENT, "No such file or directory")),
                "no such socket: check the path, and that the daemon is running",
            ),
            (
                error.getConnectError((errno.EACCES, "Permission denied")),
                "permission denied: greet may not use that socket",
            ),
            (
                error.getConnectError((errno.ENOTSOCK, "Not a socket")),
                "cannot connect: Not a socket",
            ),
            (error.DNSLookupError("x"), "cannot resolve the host name: check -H"),
            (error.TimeoutError(), "timed out connecting"),
            (error.ConnectionLost(), "connection reset"),
            (error.NoRouteError(), "No route to host."),
            (RuntimeError("one\ntwo\x1b"), "two\\x1b"),
            (RuntimeError(), "RuntimeError"),
        ]:
            self.assertEqual(describeSessionFailure(Failure(exception)), text)

    def test_finish(self) -> None:
        stderr = io.StringIO()
        self.assertEqual(finish(None, "h:1", stderr), OK)
        self.assertEqual(stderr.getvalue(), "")
        failure = Failure(error.ConnectionRefusedError())
        self.assertEqual(finish(failure, "h:1", stderr), FAILED)
        self.assertEqual(
            stderr.getvalue(),
            "greet: h:1: connection refused: is the daemon running there?\n",
        )

    def test_finishInputError(self) -> None:
        stderr = io.StringIO()
        failure = Failure(InputError("standard input: bad"))
        self.assertEqual(finish(failure, "h:1", stderr), USAGE)
        self.assertEqual(
            stderr.getvalue(), "greet: standard input: bad (see greet --help)\n"
        )
