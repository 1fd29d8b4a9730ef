"""
Tests for L{greetd.ops.accepterrors}.
"""

from __future__ import annotations

from twisted.logger import LogPublisher
from twisted.trial.unittest import SynchronousTestCase

from greetd.ops import accepterrors
from greetd.ops.accepterrors import AcceptErrors, processAcceptErrors


class AcceptErrorsTests(SynchronousTestCase):
    def test_countsFailedAccepts(self) -> None:
        """
        Each connection Twisted's EMFILE recovery closes, and each accept
        that failed otherwise, is counted as an C{accept} drop; its other
        lines are not.
        """
        observer = AcceptErrors()
        for text in (
            "EMFILE encountered; releasing reserved file descriptor.",
            "EMFILE recovery: Closed socket from {address}",
            "EMFILE recovery: Closed socket from {address}",
            "Re-reserving EMFILE recovery file descriptor.",
            "Could not accept new connection ({acceptError})",
            "Connection from {peer} opened",
        ):
            observer({"log_format": text})
        self.assertEqual(observer.counts(), {"tcp.dropped.accept": 3})

    def test_oneAProcess(self) -> None:
        """
        The process's counter is made, and observes the publisher, once.
        """
        self.patch(accepterrors, "_processAcceptErrors", None)
        publisher = LogPublisher()
        first = processAcceptErrors(publisher)
        self.assertIs(processAcceptErrors(publisher), first)
        publisher({"log_format": "Could not accept new connection ({acceptError})"})
        self.assertEqual(first.failed, 1)
