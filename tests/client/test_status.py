"""
Tests for L{greetd.client.status}.
"""

from __future__ import annotations

import io

from twisted.internet import error
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from greetd.client.errors import GreetTimeout, NoReply
from greetd.client.lines import InputError
from greetd.client.status import FAILED, OK, USAGE, describeSessionFailure, finish


class DescribeFailureTests(SynchronousTestCase):
    def test_descriptions(self) -> None:
        for exception, text in [
            (
                GreetTimeout("the banner", 1),
                "timed out after 1s waiting for the banner",
            ),
            (NoReply(b"Sarah", 4), "no reply to 'Sarah' after 4 tries"),
            (
                NoReply(b"Tracy", 4, 3),
                "no reply to 'Tracy' after 4 tries"
                " (3 datagrams that were not the reply)",
            ),
            (error.ConnectionRefusedError(), "connection refused"),
            (error.DNSLookupError("x"), "cannot resolve the host name"),
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
        self.assertEqual(stderr.getvalue(), "greet: h:1: connection refused\n")

    def test_finishInputError(self) -> None:
        stderr = io.StringIO()
        failure = Failure(InputError("standard input: bad"))
        self.assertEqual(finish(failure, "h:1", stderr), USAGE)
        self.assertEqual(
            stderr.getvalue(), "greet: standard input: bad (see greet --help)\n"
        )
