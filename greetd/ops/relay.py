"""
A worker's log, relayed through its parent, where the worker cannot write
it itself (the parent logs to syslog, or through another C{--logger}): so
that every line goes where the parent's goes, at the parent's
C{--log-level}, in the parent's format.  (A worker writes its own lines to
the parent's log file or standard output otherwise:
L{greetd.daemon.pool.wire.WorkerLog}.)

A worker writes each event as one line of JSON (L{workerLogObserver}) to its
standard output, a pipe the parent reads, never waiting for it
(L{greetd.ops.nonblocking}); the parent's L{LogRelay} turns each line back
into an event and publishes it, marked as the worker's
(L{greetd.ops.workerlog}).  Anything else the worker writes (a traceback on
standard error, say) is published as a line of text.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    LogEvent,
    LogLevel,
    LogPublisher,
    eventAsJSON,
    eventFromJSON,
    formatEvent,
    globalLogPublisher,
)

from greetd.core.escaping import escape
from greetd.ops.logfile import Stream
from greetd.ops.loglevel import LevelFilter
from greetd.ops.workerlog import markWorker

_LEVELS = frozenset(LogLevel.iterconstants())


def eventAsRelayLine(event: LogEvent) -> str:
    """
    C{event} as one line of JSON that L{LogRelay} reads back: Twisted's own
    serialization, but of the event's text, already formatted, rather than
    its format (which Twisted's serialization keeps without the format
    specifications, so that C{{duration:.3f}} would lose its C{.3f}), with
    the event's own fields beside it for the JSON log.
    """
    relayed = {**event, "log_format": "{log_text}", "log_text": formatEvent(event)}
    return eventAsJSON(relayed) + "\n"


def workerLogObserver(stream: Stream, level: LogLevel) -> ILogObserver:
    """
    The worker's observer: its events at C{level} and above as one
    L{eventAsRelayLine} each on C{stream}.
    """
    return LevelFilter(
        FileLogObserver(stream, eventAsRelayLine),  # type: ignore[arg-type]
        level,
    )


class LogRelay:
    """
    Publishes what one worker writes to one of its output pipes, marked as
    the worker's (L{markWorker}): C{worker N pid P} in front of the system
    of each event, or of its namespace and level, and, for the JSON log,
    the fields C{workerSlot} and C{workerPid}.

    @ivar slot: The worker's slot.
    @ivar pid: The worker's process id.
    @ivar level: The level of a line that is not an event: C{info} for
        standard output, C{error} for standard error.
    @ivar maxLineLength: The longest line kept whole; a longer one is
        published in pieces of this length, so a worker cannot make its
        parent buffer without bound.
    """

    maxLineLength = 64 * 1024

    def __init__(
        self,
        slot: int,
        pid: int | None,
        level: LogLevel = LogLevel.info,
        publisher: LogPublisher | Any = globalLogPublisher,
    ) -> None:
        self.slot = slot
        self.pid = pid
        self.level = level
        self._publisher = publisher
        self._buffer = b""

    def dataReceived(self, data: bytes) -> None:
        """
        Publish each whole line of C{data}, keeping the rest for later.
        """
        *lines, self._buffer = (self._buffer + data).split(b"\n")
        for line in lines:
            self.lineReceived(line)
        while len(self._buffer) > self.maxLineLength:
            piece = self._buffer[: self.maxLineLength]
            self._buffer = self._buffer[self.maxLineLength :]
            self.lineReceived(piece)

    def connectionLost(self) -> None:
        """
        Publish what is left of an unfinished last line.
        """
        if self._buffer:
            line, self._buffer = self._buffer, b""
            self.lineReceived(line)

    def lineReceived(self, line: bytes) -> None:
        """
        Publish one line: the event it encodes, or the line as text.
        """
        if not line.strip():
            return
        event = self._decode(line)
        if event is None:
            event = {
                "log_format": "{line}",
                "line": escape(line.rstrip(b"\r")),
                "log_level": self.level,
                "log_namespace": "greetd.worker",
                "log_time": time.time(),
            }
        self._publisher(markWorker(event, self.slot, self.pid))

    @staticmethod
    def _decode(line: bytes) -> LogEvent | None:
        if not line.startswith(b"{"):
            return None
        try:
            event = eventFromJSON(line.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(event, dict) or "log_time" not in event:
            return None
        if event.get("log_level") not in _LEVELS:
            event["log_level"] = LogLevel.info
        return event
