"""
greetd's log output.

Every field a peer controls is escaped (L{greetd.core.escaping}) before it
reaches a line.  L{jsonLogger} is a C{twistd --logger} for machines: one
JSON object per line, for journald and log shippers.  L{installLogger} makes
twistd log through greetd's own observers, text or JSON: at C{--log-level}
and above only, and to a L{greetd.ops.logfile.LogFile} that log rotation can
reopen.
"""

from __future__ import annotations

import json
import math
import re
import sys
from datetime import datetime, timezone
from functools import partial
from typing import IO, Any, Callable, MutableMapping, cast

from twisted.application.app import AppLogger
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    LegacyLogObserverWrapper,
    LogEvent,
    LogLevel,
    formatEvent,
    formatEventAsClassicLogText,
)
from twisted.python.failure import Failure
from twisted.python.reflect import namedAny
from zope.interface import implementer

from greetd.core.escaping import escape, formatAddress
from greetd.ops.logfile import BatchedWriter, LogFiles, ReopenOnSignalService, Stream

#: The keys every JSON log line has (C{failure} only for an event with a
#: failure, C{peerHost} and C{peerPort} only for one with a peer); an
#: event's own field of one of these names is written as C{field_NAME}.
JSON_KEYS = frozenset(
    {"timestamp", "level", "namespace", "text", "failure", "peerHost", "peerPort"}
)

#: What L{twisted.python.log} adds to an event that its text already says.
_LEGACY_KEYS = frozenset({"message", "format", "time", "isError", "printed"})

_PEER = re.compile(r"\[(?P<v6>[^\]]*)\]:(?P<v6port>\d+)|(?P<v4>[^:]*):(?P<v4port>\d+)")


def jsonSafe(value: object) -> object:
    """
    C{value} as something C{json.dumps} writes faithfully: text, whole
    numbers, finite floats, booleans and C{None} as they are, lists and
    dicts item by item, bytes escaped (they may be a peer's), addresses
    formatted, and anything else as its C{str}.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return escape(bytes(value))
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonSafe(item) for item in value]
    if isinstance(value, dict):
        return {str(key): jsonSafe(item) for key, item in value.items()}
    if isinstance(value, (IPv4Address, IPv6Address, UNIXAddress)):
        return formatAddress(value)
    return str(value)


def peerFields(peer: object) -> dict[str, object]:
    """
    C{peerHost} and C{peerPort} for an event's C{peer}: an IP address, or the
    C{host:port} / C{[host]:port} text L{formatAddress} makes of one.
    """
    if isinstance(peer, (IPv4Address, IPv6Address)):
        return {"peerHost": escape(peer.host), "peerPort": peer.port}
    if isinstance(peer, str):
        match = _PEER.fullmatch(peer)
        if match:
            host = match.group("v6") if match.group("v6") is not None else match["v4"]
            port = match.group("v6port") or match.group("v4port")
            return {"peerHost": host, "peerPort": int(port)}
    return {}


def eventAsJSONLine(event: LogEvent) -> str:
    """
    One log event as one line of JSON: C{timestamp} (ISO 8601, UTC),
    C{level}, C{namespace}, C{text} (the formatted event), C{failure} (a
    traceback) when there is one, C{peerHost} and C{peerPort} when the event
    names a peer, and every field of the event's own (C{greetdEvent},
    C{peer}, counts...) made JSON-safe by L{jsonSafe} (but not the copies
    of the text that legacy C{log.msg} events carry).  Non-ASCII and control
    characters are JSON escapes, so a line never breaks and never carries a
    terminal escape.
    """
    level = event.get("log_level")
    record: dict[str, object] = {
        "timestamp": datetime.fromtimestamp(
            event.get("log_time", 0.0), timezone.utc
        ).isoformat(timespec="microseconds"),
        "level": jsonSafe(getattr(level, "name", level)),
        "namespace": jsonSafe(event.get("log_namespace")),
        "text": formatEvent(event),
    }
    failure = event.get("log_failure")
    if isinstance(failure, Failure):
        record["failure"] = failure.getTraceback()
    record.update(peerFields(event.get("peer")))
    legacy = event.get("log_namespace") == "log_legacy"
    for key, value in event.items():
        if key.startswith("log_") or (legacy and key in _LEGACY_KEYS):
            continue
        name = f"field_{key}" if key in JSON_KEYS else str(key)
        record[name] = jsonSafe(value)
    return json.dumps(record, ensure_ascii=True, allow_nan=False) + "\n"


def jsonFileLogObserver(outFile: IO[Any]) -> FileLogObserver:
    """
    A log observer that writes L{eventAsJSONLine} lines to C{outFile}.
    """
    return FileLogObserver(outFile, eventAsJSONLine)


def jsonLogger() -> ILogObserver:
    """
    The JSON log observer for C{twistd --logger greetd.ops.log.jsonLogger}: one
    JSON object per line, to where twistd would have written its own log.

    Under C{twistd greetd}, greetd's options replace this factory with one
    that knows twistd's options and C{--log-level} (L{installLogger}).
    Anywhere else (a C{.tac} file run by twistd), twistd calls it with no
    arguments, so it looks for the C{AppLogger} calling it (on the stack)
    to honour twistd's own rule (L{logObserver}), logs at C{info} and above,
    and reopens its file on C{SIGUSR1} and C{SIGHUP}.  Called from anywhere
    else it writes to stdout.
    """
    appLogger = _callingAppLogger()
    config = {
        "logfile": getattr(appLogger, "_logfilename", "") or "",
        "nodaemon": bool(getattr(appLogger, "_nodaemon", True)),
    }
    logFiles = LogFiles()
    observer = logObserver(eventAsJSONLine, config, LogLevel.info, logFiles)
    if logFiles.files:
        from twisted.internet import reactor

        ReopenOnSignalService(logFiles, reactor).startService()
    return observer


def _callingAppLogger() -> AppLogger | None:
    frame = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, AppLogger):
            return candidate
        frame = frame.f_back  # type: ignore[assignment]
    return None


#: The names C{--log-level} takes, least severe first.
LOG_LEVELS = tuple(level.name for level in LogLevel.iterconstants())

#: What is logged unless C{--log-level} says otherwise.
DEFAULT_LOG_LEVEL = "info"

_PRIORITY = {level: index for index, level in enumerate(LogLevel.iterconstants())}

#: Twisted's own lines when a port starts and stops listening, which
#: greetd's C{Serving TCP on ...} already says, once.
_PORT_ANNOUNCEMENT = re.compile(
    r"[\w.]+(?: \(TLS\))? starting on .+|\((?:TCP |UDP |UNIX )?Port .+ Closed\)"
)


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
    ports (L{isPortAnnouncement}) count as C{debug} and say so.

    @ivar observer: Where the events that pass go.
    @ivar level: The least severe level passed on.
    """

    def __init__(self, observer: ILogObserver, level: LogLevel) -> None:
        self.observer = observer
        self.level = level
        self._threshold = _PRIORITY[level]

    def __call__(self, event: LogEvent) -> None:
        level = event.get("log_level", LogLevel.info)
        if isPortAnnouncement(event):
            level = LogLevel.debug
            event = {**event, "log_level": level}
        if _PRIORITY.get(level, _PRIORITY[LogLevel.info]) >= self._threshold:
            self.observer(event)


#: Formats an event as the text of its line or lines.
EventFormatter = Callable[[LogEvent], "str | None"]


def logObserver(
    formatter: EventFormatter,
    config: MutableMapping[str, Any],
    level: LogLevel,
    logFiles: LogFiles,
) -> ILogObserver:
    """
    A log observer that writes the events at C{level} and above, formatted
    by C{formatter}, where twistd's C{config} says, as twistd's own
    C{UnixAppLogger} would: syslog with C{--syslog} (text only); stdout with
    C{--nodaemon} and no C{--logfile}, or C{--logfile -}; otherwise the
    C{--logfile} (by default C{twistd.log}), opened through C{logFiles} so
    it can be reopened.  Unlike twistd's, the file is opened for appending
    and never renamed: rotation is the operator's tool's job.

    @param config: twistd's options (C{logfile}, C{nodaemon}, C{syslog},
        C{prefix}), read when the observer is made.
    """
    logFileName = config.get("logfile") or ""
    nodaemon = bool(config.get("nodaemon", True))
    observer: ILogObserver
    output.stream = None
    if config.get("syslog") and formatter is formatEventAsClassicLogText:
        from twisted.python import syslog

        emit = syslog.SyslogObserver(config.get("prefix") or "Twisted").emit
        observer = LegacyLogObserverWrapper(emit)  # type: ignore[arg-type]
    else:
        if logFileName == "-" or (nodaemon and not logFileName):
            if not nodaemon:
                sys.exit("Daemons cannot log to stdout, exiting!")
            stream: Stream = sys.stdout
        else:
            stream = logFiles.open(logFileName or "twistd.log")
        batched = logFiles.batched(stream)
        observer = FileLogObserver(batched, formatter)  # type: ignore[arg-type]
        output.stream = batched
    output.json = formatter is eventAsJSONLine
    output.level = level
    return LevelFilter(observer, level)


class LogOutput:
    """
    Where greetd's own observer writes, once twistd has made it
    (L{logObserver}): the access log (L{greetd.ops.accesslog}) writes its
    lines there directly, in the same format, rather than through Twisted's
    log publisher, which costs more than a connection itself.

    @ivar stream: The batched stream, or C{None} before the observer is made
        or when logging to syslog.
    @ivar json: Whether lines are JSON (L{eventAsJSONLine}) or text.
    @ivar level: The C{--log-level}.
    """

    def __init__(self) -> None:
        self.stream: BatchedWriter | None = None
        self.json = False
        self.level: LogLevel = LogLevel.info

    def enabled(self, level: LogLevel) -> bool:
        """
        Whether lines at C{level} are written.
        """
        return _PRIORITY[level] >= _PRIORITY[self.level]


#: This process's log output, as L{logObserver} set it up.
output = LogOutput()


class TwistdLogger:
    """
    The C{--logger} greetd's options give twistd: twistd takes a logger as
    the dotted name of a factory it calls with no arguments, so greetd
    names this one, L{twistdLogger}, and has it make the observer that
    L{installLogger} prepared.

    @ivar factory: Makes the observer; until L{installLogger} sets it, the
        one twistd would make without greetd (text, at C{info}).
    """

    def __init__(self) -> None:
        self.factory: Callable[[], ILogObserver] = partial(
            logObserver, formatEventAsClassicLogText, {}, LogLevel.info, LogFiles()
        )

    def __call__(self) -> ILogObserver:
        return self.factory()


#: The logger L{installLogger} gives twistd, by name.
twistdLogger = TwistdLogger()


def installLogger(
    config: MutableMapping[str, Any], level: LogLevel, logFiles: LogFiles
) -> None:
    """
    Make twistd log through greetd's observer (L{logObserver}): text as
    twistd's own, unless C{--logger greetd.ops.log.jsonLogger} asks for
    JSON.  twistd reads its C{logger} option, the dotted name of a factory,
    after greetd's options are parsed and before the service starts, so
    naming L{twistdLogger} here is in time.  Any other C{--logger} is left
    as it is.

    @param config: twistd's options, to change.
    @param level: The C{--log-level}.
    @param logFiles: Where the log file is kept, for reopening.
    """
    name = config.get("logger")
    if name is None:
        formatter: EventFormatter = formatEventAsClassicLogText
    elif _named(name) is jsonLogger:
        formatter = eventAsJSONLine
    else:
        return
    twistdLogger.factory = partial(logObserver, formatter, config, level, logFiles)
    config["logger"] = f"{__name__}.twistdLogger"


def _named(name: object) -> object:
    # twistd's option holds a dotted name until twistd resolves it; a name
    # that does not resolve is twistd's to report.
    if not isinstance(name, str):
        return name
    try:
        return namedAny(name)
    except Exception:
        return None
