"""
Log levels: C{--log-level}'s names, and the filter that passes the events
at a level and above (Twisted's own lines for ports counting as debug, and
its lines for failed accepts at most once a minute).
"""

from __future__ import annotations

import re
from typing import cast

from twisted.logger import ILogObserver, LogEvent, LogLevel
from zope.interface import implementer

from greetd.core.limits import Throttle

#: The names C{--log-level} takes, least severe first.
LOG_LEVELS = tuple(level.name for level in LogLevel.iterconstants())

#: What is logged unless C{--log-level} says otherwise.
DEFAULT_LOG_LEVEL = "info"

_PRIORITY = {level: index for index, level in enumerate(LogLevel.iterconstants())}

#: Twisted's own lines when a port starts and stops listening, which
#: greetd's C{Serving TCP on ...} already says, once: C{Factory starting
#: on}, C{Factory (TLS) starting on} and C{Factory (WrappedFactory)
#: starting on} (a PROXY listener's); C{(TCP Port 9999 Closed)}, and the
#: same for UDP, UNIX and TLS ports.
_PORT_ANNOUNCEMENT = re.compile(
    r"[\w.]+(?: \([\w.]+\))? starting on .+"
    r"|\((?:TCP |UDP |UNIX |TLS )?Port .+ Closed\)"
)


def isEnabled(level: LogLevel, threshold: LogLevel) -> bool:
    """
    Whether a line at C{level} is written at C{--log-level} C{threshold}.
    """
    return _PRIORITY[level] >= _PRIORITY[threshold]


#: Twisted's line for an accept that failed (one of L{ACCEPT_ERRORS}).
COULD_NOT_ACCEPT = "Could not accept new connection ({acceptError})"

#: Twisted's line for a connection its EMFILE recovery accepted only to
#: close it (one of L{ACCEPT_ERRORS}).
EMFILE_CLOSED = "EMFILE recovery: Closed socket from {address}"

#: Twisted's lines when a listening port cannot accept (out of descriptors:
#: EMFILE, ENFILE; ENOBUFS, ENOMEM), one for each failed accept and each
#: socket its EMFILE recovery closes: a flood of connections would flood
#: the log with them.
ACCEPT_ERRORS = frozenset(
    {
        COULD_NOT_ACCEPT,
        "EMFILE encountered; releasing reserved file descriptor.",
        EMFILE_CLOSED,
        "Re-reserving EMFILE recovery file descriptor.",
    }
)

#: Seconds between two lines of each kind in L{ACCEPT_ERRORS}.
ACCEPT_ERROR_INTERVAL = 60.0


def parseLogLevel(name: str) -> LogLevel:
    """
    The L{LogLevel} named C{name}, one of L{LOG_LEVELS}.

    @raise ValueError: For any other name.
    """
    if name not in LOG_LEVELS:
        raise ValueError(f"{name!r} is not one of {', '.join(LOG_LEVELS)}")
    return cast(LogLevel, LogLevel.levelWithName(name))


def isPortAnnouncement(event: LogEvent) -> bool:
    """
    Whether C{event} is Twisted's C{GreetingFactory starting on 9999} or
    C{(TCP Port 9999 Closed)}, from its legacy C{log.msg}.
    """
    if event.get("log_namespace") != "log_legacy":
        return False
    text = event.get("log_text")
    return isinstance(text, str) and _PORT_ANNOUNCEMENT.fullmatch(text) is not None


@implementer(ILogObserver)
class LevelFilter:
    """
    Passes on the events at C{level} or above; Twisted's announcements of
    ports (L{isPortAnnouncement}) count as C{debug} and say so, and each of
    its lines for failed accepts (L{ACCEPT_ERRORS}) passes at most once a
    minute.

    @ivar observer: Where the events that pass go.
    @ivar level: The least severe level passed on.
    """

    def __init__(self, observer: ILogObserver, level: LogLevel) -> None:
        self.observer = observer
        self.level = level
        self._threshold = _PRIORITY[level]
        self._acceptErrors: Throttle[str] = Throttle(ACCEPT_ERROR_INTERVAL)

    def __call__(self, event: LogEvent) -> None:
        text = event.get("log_format")
        if text in ACCEPT_ERRORS and not self._acceptErrors.ready(
            text, event.get("log_time", 0.0)
        ):
            return
        level = event.get("log_level", LogLevel.info)
        if isPortAnnouncement(event):
            level = LogLevel.debug
            event = {**event, "log_level": level}
        if _PRIORITY.get(level, _PRIORITY[LogLevel.info]) >= self._threshold:
            self.observer(event)
