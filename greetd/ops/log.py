"""
greetd's log: what is written (C{--log-level}, C{--log-format}: greetd's
options) and where (twistd's options, or standard output), through
twistd's own hooks rather than a copy of its logger.

twistd asks an application for its log observer: a C{--logger} factory if
one is named, else the application's L{ILogObserver} component, else its
own.  greetd's services become that component when they are given to an
application (L{greetd.daemon.tap.GreetdServices}), so that
C{twistd greetd} and a C{.tac} alike log through L{LogOutput.observer}:
at the level and in the format greetd's options say, to a
L{greetd.ops.logfile.LogFile} that log rotation can reopen.

L{jsonLogger} is kept as a C{twistd --logger}: under C{twistd greetd} it
is another spelling of C{--log-format json}.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any, Mapping

from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    LegacyLogObserverWrapper,
    LogEvent,
    Logger,
    LogLevel,
    formatEventAsClassicLogText,
)
from twisted.python.reflect import namedAny
from zope.interface import implementer

from greetd.core.accessline import NAMESPACE
from greetd.ops.jsonlog import eventAsJSONLine
from greetd.ops.logfile import BatchedWriter, LogFiles, Stream
from greetd.ops.loglevel import LevelFilter, isEnabled
from greetd.ops.nonblocking import pipeSafe
from greetd.ops.workerlog import levelSystem, workerSystem

#: The formats C{--log-format} takes.
LOG_FORMATS = ("text", "json")

#: Where a log goes when it goes to standard output.
STDOUT = "-"

#: greetd 0.1's name for L{jsonLogger}, deprecated.
DEPRECATED_JSON_LOGGER = "greetd.log.jsonLogger"


class LogOutput:
    """
    One service's log: what its options say to write, where, and, once its
    observer writes, the stream the access log (L{greetd.ops.accesslog})
    writes its lines to directly, in the same format, rather than through
    Twisted's log publisher, which costs more than a connection itself.

    @ivar level: The C{--log-level}.
    @ivar json: Whether lines are JSON (L{eventAsJSONLine}) or text.
    @ivar where: A file's name, L{STDOUT}, or C{None} when twistd's own
        logger decides (L{followTwistd}); standard output by default, as a
        C{.tac} run by C{twistd -n} would write.
    @ivar syslogPrefix: With twistd's C{--syslog}, the prefix of text
        lines sent to syslog; C{None} otherwise.
    @ivar files: The log files opened, for reopening on rotation.
    @ivar stream: The batched stream once the observer has written, or
        C{None} (before, instead, or to syslog).
    @ivar twistd: Whether twistd's options say where (L{followTwistd}).
    @ivar system: What the access log's text lines give as their system,
        in brackets: its namespace and level, or a pool worker's mark
        (L{markWorker}).
    @ivar jsonFields: What the access log's JSON lines add: a worker's
        fields.
    """

    def __init__(self, level: LogLevel = LogLevel.info, json: bool = False) -> None:
        self.level = level
        self.json = json
        self.where: str | None = STDOUT
        self.syslogPrefix: str | None = None
        self.files = LogFiles()
        self.stream: BatchedWriter | None = None
        self.twistd = False
        self.system = levelSystem(NAMESPACE, LogLevel.info)
        self.jsonFields = ""

    def markWorker(self, slot: int, pid: int) -> None:
        """
        Mark the access log's lines as worker C{slot}'s, as
        L{greetd.ops.workerlog.markWorker} marks its events.
        """
        access = levelSystem(NAMESPACE, LogLevel.info)
        self.system = f"{workerSystem(slot, pid)} {access}"
        self.jsonFields = f', "workerSlot": {slot:d}, "workerPid": {pid:d}'

    def enabled(self, level: LogLevel) -> bool:
        """
        Whether lines at C{level} are written.
        """
        return isEnabled(level, self.level)

    def followTwistd(self, twistd: Mapping[str, Any]) -> None:
        """
        Write where twistd's options say twistd's own logger would: syslog
        with C{--syslog} (text only), standard output with C{--nodaemon}
        and no C{--logfile} or with C{--logfile -}, otherwise the
        C{--logfile} (by default C{twistd.log}).  Unlike twistd's, the file
        is opened for appending and never renamed: rotation is the
        operator's tool's job.  A daemon told to log to standard output is
        left to twistd's logger, which refuses.

        Where twistd's C{--logger} names a factory, twistd calls it, and
        this output writes nothing.

        @param twistd: twistd's options: C{logger}, C{logfile},
            C{nodaemon}, C{syslog}, C{prefix}.
        """
        self.twistd = True
        if twistd.get("logger") is not None:
            self.where = None
            return
        logFile = twistd.get("logfile") or ""
        nodaemon = bool(twistd.get("nodaemon"))
        if twistd.get("syslog") and not self.json:
            self.syslogPrefix = twistd.get("prefix") or "twisted"
        elif logFile == STDOUT or (nodaemon and not logFile):
            self.where = STDOUT if nodaemon else None
        else:
            self.where = logFile or "twistd.log"

    def observer(self, stream: Stream | None = None) -> ILogObserver | None:
        """
        A log observer that writes the events at L{level} and above, in
        the format and to the place this output says, or C{None} where
        twistd's own logger decides.  A file is opened through L{files},
        so that it can be reopened.

        @param stream: Where to write instead (a pool worker's own).
        """
        if stream is not None:
            return self._writer(stream)
        if self.where is None:
            return None
        if self.syslogPrefix is not None:
            from twisted.python import syslog

            emit = syslog.SyslogObserver(self.syslogPrefix).emit
            return LevelFilter(
                LegacyLogObserverWrapper(emit),  # type: ignore[arg-type]
                self.level,
            )
        if self.where == STDOUT:
            stream = pipeSafe(sys.stdout)
        else:
            stream = self.files.open(self.where)
        return self._writer(stream)

    def _writer(self, stream: Stream) -> ILogObserver:
        batched = self.files.batched(stream)
        formatter = eventAsJSONLine if self.json else formatEventAsClassicLogText
        observer = FileLogObserver(batched, formatter)  # type: ignore[arg-type]
        return OutputObserver(self, LevelFilter(observer, self.level), batched)


@implementer(ILogObserver)
class OutputObserver:
    """
    A L{LogOutput}'s observer: it hands its stream to the output when it
    first observes an event, that is, once twistd (or whoever was given
    it) logs through it.  An observer made but not used (a C{--logger}
    chosen instead) leaves the access log on Twisted's publisher.
    """

    def __init__(
        self, output: LogOutput, observer: ILogObserver, stream: BatchedWriter
    ) -> None:
        self._output = output
        self._observer = observer
        self._stream: BatchedWriter | None = stream

    def __call__(self, event: LogEvent) -> None:
        if self._stream is not None:
            self._output.stream, self._stream = self._stream, None
        self._observer(event)


def loggerAsFormat(name: object) -> bool:
    """
    Whether twistd's C{--logger} C{name} is greetd's L{jsonLogger}, by
    either of its names, and so means C{--log-format json}.  greetd 0.1's
    name is deprecated: it is accepted with a warning (L{warnDeprecated}).
    """
    # twistd's option holds a dotted name until twistd resolves it; a name
    # that does not resolve is twistd's to report.
    factory = name
    if isinstance(name, str):
        try:
            factory = namedAny(name)
        except Exception:
            return False
    if factory is deprecatedJsonLogger:
        warnDeprecated(option=True)
        return True
    return factory is jsonLogger


_log = Logger()


#: Where a C{DeprecationWarning} about twistd's C{--logger} says it comes
#: from: the option the operator gave, not the line of greetd that read it.
LOGGER_OPTION = "twistd --logger"


def warnDeprecated(option: bool = False) -> None:
    """
    Say, as a C{DeprecationWarning} and in the log (where an operator reads
    it), that greetd 0.1's C{--logger greetd.log.jsonLogger} is deprecated.

    @param option: Whether the name came in twistd's C{--logger} option,
        which the warning then names as where it comes from
        (L{LOGGER_OPTION}); otherwise it names the line that called
        L{deprecatedJsonLogger} (a C{.tac}'s, say).
    """
    message = (
        f"--logger {DEPRECATED_JSON_LOGGER} is deprecated: "
        "give twistd greetd --log-format json instead"
    )
    if option:
        warnings.warn_explicit(message, DeprecationWarning, LOGGER_OPTION, 0)
    else:
        warnings.warn(message, DeprecationWarning, stacklevel=3)
    _log.warn(message, greetdEvent="log.deprecated")


def jsonLogger() -> ILogObserver:
    """
    A C{twistd --logger} factory: JSON lines at C{info} and above.  Under
    C{twistd greetd} it means C{--log-format json} (greetd's options read
    it, and twistd never calls it).  twistd calls a C{--logger} with no
    arguments, so where twistd calls this one (a C{.tac}) it cannot know
    twistd's C{--logfile} and writes to standard output: give the
    C{.tac}'s options C{--log-format json} instead.
    """
    observer = LogOutput(json=True).observer()
    assert observer is not None
    return observer


def deprecatedJsonLogger() -> ILogObserver:
    """
    greetd 0.1's C{greetd.log.jsonLogger}: L{jsonLogger}, with a warning.
    """
    warnDeprecated()
    return jsonLogger()
