"""
Failed accepts, counted.  Twisted tells of a listening port that cannot
accept (out of descriptors: EMFILE, ENFILE; ENOBUFS, ENOMEM) only in its
log, one event for each connection its EMFILE recovery closes unserved and
each accept that fails otherwise; those lines are throttled
(L{greetd.ops.loglevel}), so the metrics count every one
(C{greetd_dropped_total{transport="tcp",reason="accept"}}).
"""

from __future__ import annotations

from collections import Counter

from twisted.logger import ILogObserver, LogEvent, LogPublisher, globalLogPublisher
from zope.interface import implementer

from greetd.core.counters import Counts, key
from greetd.ops.loglevel import COULD_NOT_ACCEPT, EMFILE_CLOSED

#: The events of a connection not served because it could not be accepted.
FAILED_ACCEPTS = frozenset({COULD_NOT_ACCEPT, EMFILE_CLOSED})


@implementer(ILogObserver)
class AcceptErrors:
    """
    A log observer that counts Twisted's failed accepts (L{FAILED_ACCEPTS}).

    @ivar failed: How many it has seen.
    """

    def __init__(self) -> None:
        self.failed = 0

    def __call__(self, event: LogEvent) -> None:
        if event.get("log_format") in FAILED_ACCEPTS:
            self.failed += 1

    def counts(self) -> Counts[str]:
        """
        The count of the schema (L{greetd.core.counters}), now.
        """
        counts: Counts[str] = Counter()
        counts[key("tcp", "dropped", "accept")] = self.failed
        return counts


_processAcceptErrors: AcceptErrors | None = None


def processAcceptErrors(publisher: LogPublisher = globalLogPublisher) -> AcceptErrors:
    """
    This process's L{AcceptErrors}, observing C{publisher} (where Twisted's
    ports log) from the first call on: one, however many servers are built.
    """
    global _processAcceptErrors
    if _processAcceptErrors is None:
        _processAcceptErrors = AcceptErrors()
        publisher.addObserver(_processAcceptErrors)
    return _processAcceptErrors
