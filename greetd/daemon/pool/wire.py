"""
The contract between the parent of a worker pool and its workers
(L{greetd.daemon.worker}): the worker's command line, which descriptor is
what, and the lines a worker writes on its counters' pipe.  Both sides
import it, and only it, from each other.
"""

from __future__ import annotations

import json
import signal
import sys
from collections import Counter
from typing import Mapping, NamedTuple, Sequence

#: The worker's descriptor for its counters, written when they change.
COUNTS_FD = 3

#: The worker's descriptor for the log file, when it writes one
#: (L{LOG_FILE}): the parent's, open for appending.
LOG_FD = 4

#: The first of the worker's descriptors for listening sockets.
FIRST_LISTENER_FD = 5

#: The signal the parent forwards to every worker when it has reopened its
#: log (on its own SIGUSR1 or SIGHUP): reopen yours, as nginx's workers do.
REOPEN = signal.SIGUSR1

#: The line a worker writes on L{COUNTS_FD} once it serves every listener
#: (its counters are the other lines, JSON objects: L{countsLine}).
READY = b"ready"

#: L{READY}, as a line.
READY_LINE = READY + b"\n"

#: The signal a reload sends the worker it has replaced (nginx's graceful
#: shutdown signal): stop listening and let each connection end by itself,
#: for up to C{--shutdown-timeout} seconds, then drain as on SIGTERM, which
#: closes connections as soon as their owed replies are written.  A worker
#: installs its handler before it says L{READY}; one that has not said it
#: is sent SIGTERM instead.  (A number: Twisted's C{signalProcess} knows
#: only a few signals by name.)
RETIRE = signal.SIGQUIT


def formatInherited(inherited: dict[str, list[int]]) -> str:
    """
    C{{"tcp": [4, 5], "udp": [6]}} as C{tcp=4,tcp=5,udp=6}: which inherited
    descriptor serves which C{--tcp} and C{--udp} option, in order.
    """
    return ",".join(
        f"{kind}={fd}" for kind in ("tcp", "udp") for fd in inherited.get(kind, [])
    )


def parseInherited(text: str) -> dict[str, list[int]]:
    """
    The inverse of L{formatInherited}.

    @raise ValueError: If C{text} is not in its format.
    """
    inherited: dict[str, list[int]] = {"tcp": [], "udp": []}
    for item in filter(None, text.split(",")):
        kind, _, fd = item.partition("=")
        if kind not in inherited:
            raise ValueError(f"unknown listener kind {kind!r}")
        inherited[kind].append(int(fd))
    return inherited


#: How a worker logs (L{WorkerLog.mode}).
LOG_FILE, LOG_STDOUT, LOG_RELAY = LOG_MODES = ("file", "stdout", "relay")


class WorkerLog(NamedTuple):
    """
    Where and how a worker writes its log, as nginx's workers do: each
    its own lines, never through the parent, which a stalled parent would
    hold up.

    @ivar mode: L{LOG_FILE}: appended to the parent's log file, inherited as
        L{LOG_FD} and reopened by C{path} on L{REOPEN}; L{LOG_STDOUT}: to the
        standard output it shares with the parent (the journal, a
        terminal), never waiting for it; L{LOG_RELAY}: to a pipe the parent
        reads and publishes (for syslog, or another C{--logger}), never
        waiting for it either.
    @ivar path: The log file's name, for L{LOG_FILE}.
    @ivar json: Whether lines are JSON (C{--log-format json}, which the
        parent may have from twistd's C{--logger} rather than its greetd
        arguments) or text, for L{LOG_FILE} and L{LOG_STDOUT}.
    """

    mode: str = LOG_RELAY
    path: str | None = None
    json: bool = False

    def arguments(self) -> list[str]:
        """
        The worker's options that say this (L{WorkerLog.parse} reads them).
        """
        path = [] if self.path is None else [f"--log-file={self.path}"]
        return [f"--log={self.mode}", *path, f"--log-json={int(self.json)}"]

    @classmethod
    def parse(cls, mode: str, path: str | None, json: str) -> WorkerLog:
        """
        The inverse of L{arguments}, from the options' values.

        @raise ValueError: If they do not say a log.
        """
        if mode not in LOG_MODES:
            raise ValueError(f"--log must be one of {', '.join(LOG_MODES)}")
        if (mode == LOG_FILE) != (path is not None):
            raise ValueError("--log-file goes with --log=file, and only with it")
        if json not in ("0", "1"):
            raise ValueError("--log-json is 0 or 1")
        return cls(mode, path, json == "1")


def workerCommand(
    slot: int,
    inherited: dict[str, list[int]],
    arguments: Sequence[str],
    reactor: str | None = None,
    log: WorkerLog | None = None,
) -> list[str]:
    """
    The command line of worker C{slot}: this interpreter running
    L{greetd.daemon.worker} with the parent's own greetd C{arguments}, on
    the reactor plugin named C{reactor} (Twisted's default for C{None}),
    logging as C{log} says.
    """
    return [
        sys.executable,
        "-m",
        "greetd.daemon.worker",
        f"--slot={slot}",
        f"--inherited={formatInherited(inherited)}",
        *([] if reactor is None else [f"--reactor={reactor}"]),
        *(log or WorkerLog()).arguments(),
        "--",
        *arguments,
    ]


def countsLine(counts: Mapping[str, int]) -> bytes:
    """
    A worker's report of its C{counts}, as the line it writes on
    L{COUNTS_FD}: a JSON object from each count's key to its value.
    """
    return json.dumps(counts).encode("ascii") + b"\n"


def parseCounts(line: bytes) -> Counter[str]:
    """
    The counts of a report (L{countsLine}), without its newline.

    @raise ValueError: If C{line} is not a JSON object of integers.
    """
    counts = json.loads(line)
    if not isinstance(counts, dict) or not all(
        isinstance(value, int) for value in counts.values()
    ):
        raise ValueError("not an object of counts")
    return Counter(counts)


class Read(NamedTuple):
    """
    What one read of L{COUNTS_FD} brought (L{CountsReader.feed}).

    @ivar report: The last whole report line, without its newline, if any:
        each report says all the counts, so earlier ones are stale.
    @ivar ready: Whether a L{READY} line came.
    """

    report: bytes | None
    ready: bool


class CountsReader:
    """
    The parent's reading of a worker's L{COUNTS_FD}: whole lines, however
    the pipe splits them.
    """

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> Read:
        """
        Read C{data}, the next bytes of the pipe.
        """
        *lines, self._buffer = (self._buffer + data).split(b"\n")
        reports = [line for line in lines if line != READY]
        return Read(reports[-1] if reports else None, len(reports) < len(lines))
