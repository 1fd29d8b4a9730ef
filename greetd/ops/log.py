"""
greetd's log output.

L{jsonLogger} is a C{twistd --logger} for machines: one JSON object per
line (L{greetd.ops.jsonlog}), for journald and log shippers.
L{installLogger} makes twistd log through greetd's own observers, text or
JSON: at C{--log-level} and above only (L{greetd.ops.loglevel}), and to a
L{greetd.ops.logfile.LogFile} that log rotation can reopen.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any, Callable, MutableMapping

from twisted.application.app import AppLogger
from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    LegacyLogObserverWrapper,
    LogEvent,
    LogLevel,
    formatEventAsClassicLogText,
)
from twisted.python.reflect import namedAny

from greetd.ops.jsonlog import eventAsJSONLine
from greetd.ops.logfile import BatchedWriter, LogFiles, ReopenOnSignalService, Stream
from greetd.ops.loglevel import _PRIORITY, LevelFilter


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
