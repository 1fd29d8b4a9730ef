"""
Tests for L{greetd.daemon.pool.wire}: what the parent tells a worker, and
what the worker understands.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from greetd.daemon.pool.wire import (
    LOG_FILE,
    LOG_STDOUT,
    READY_LINE,
    CountsReader,
    WorkerLog,
    countsLine,
    formatInherited,
    parseCounts,
    parseInherited,
    workerCommand,
)
from greetd.daemon.worker import (
    WorkerOptions,
)
from tests.helpers import daemonOptions


class ArgumentTests(SynchronousTestCase):
    """
    What the parent tells a worker, and what the worker understands.
    """

    def test_inheritedRoundTrip(self) -> None:
        inherited = {"tcp": [4, 5], "udp": [6]}
        self.assertEqual(formatInherited(inherited), "tcp=4,tcp=5,udp=6")
        self.assertEqual(parseInherited(formatInherited(inherited)), inherited)
        self.assertEqual(parseInherited(""), {"tcp": [], "udp": []})
        self.assertRaises(ValueError, parseInherited, "unix=4")
        self.assertRaises(ValueError, parseInherited, "tcp=x")

    def test_commandRoundTrip(self) -> None:
        """
        The worker parses the parent's greetd arguments as they were given,
        and the descriptors in option order.
        """
        arguments = daemonOptions(
            "--workers", "3", "--tcp", "tcp:0", "--tcp", "haproxy:tcp6:0",
            "--udp", "udp:0", "--welcome", "--", "--max-per-ip", "5",
        ).arguments  # fmt: skip
        command = workerCommand(2, {"tcp": [4, 5], "udp": [6]}, arguments)
        self.assertEqual(command[1:3], ["-m", "greetd.daemon.worker"])
        options = WorkerOptions()
        options.parseOptions(command[3:])  # type: ignore[no-untyped-call]
        self.assertEqual(options["slot"], 2)
        self.assertEqual(options["fds"], {"tcp": [4, 5], "udp": [6]})
        greetd = options["options"]
        self.assertEqual(greetd["tcp"], ["tcp:0", "haproxy:tcp6:0"])
        self.assertEqual(greetd["welcome"], "--")
        self.assertEqual(greetd["max-per-ip"], 5)

    def test_commandReactor(self) -> None:
        """
        The worker is told the parent's reactor, among its own options;
        without one it takes Twisted's default.
        """
        command = workerCommand(1, {"tcp": [4]}, ["--no-udp"], "greetd")
        self.assertEqual(command[-2:], ["--", "--no-udp"])
        self.assertIn("--reactor=greetd", command[: command.index("--")])
        self.assertNotIn(
            "--reactor", " ".join(workerCommand(1, {"tcp": [4]}, ["--no-udp"]))
        )


class WorkerLogTests(SynchronousTestCase):
    """
    L{WorkerLog}: how a worker logs, as its options say it.
    """

    def test_roundTrip(self) -> None:
        """
        Each way of logging survives the worker's command line.
        """
        for log in [
            WorkerLog(),
            WorkerLog(LOG_STDOUT, None, True),
            WorkerLog(LOG_FILE, "/var/log/twisted-greetd/greetd.log", False),
        ]:
            command = workerCommand(1, {"tcp": [5]}, ["--no-udp"], None, log)
            options = WorkerOptions()
            options.parseOptions(command[3:])  # type: ignore[no-untyped-call]
            self.assertEqual(options["worker-log"], log)

    def test_badLog(self) -> None:
        for mode, path, json in [
            ("syslog", None, "0"),
            (LOG_FILE, None, "0"),
            (LOG_STDOUT, "/tmp/x", "0"),
            (LOG_STDOUT, None, "yes"),
        ]:
            self.assertRaises(ValueError, WorkerLog.parse, mode, path, json)
        options = WorkerOptions()
        self.assertRaises(
            usage.UsageError,
            options.parseOptions,
            ["--slot=1", "--log=file", "--", "--no-udp", "--no-tcp"],
        )


#: Reports as a worker writes them: counts, and READY once among them.
reports = st.lists(
    st.dictionaries(st.sampled_from(["tcp.messages", "tcp.open"]), st.integers(0)),
    min_size=1,
)


class CountsPipeTests(SynchronousTestCase):
    """
    What a worker writes on its counters' pipe, and how the parent reads it.
    """

    @given(reports, st.integers(0), st.lists(st.integers(1, 64)))
    def test_anySplit(
        self, counts: list[dict[str, int]], readyAt: int, cuts: list[int]
    ) -> None:
        """
        However the pipe splits the lines, the parent reads the last whole
        report and READY once.
        """
        lines = [countsLine(report) for report in counts]
        lines.insert(readyAt % (len(lines) + 1), READY_LINE)
        stream = b"".join(lines)
        reader = CountsReader()
        last = None
        ready = 0
        offset = 0
        for cut in [*cuts, len(stream)]:
            read = reader.feed(stream[offset : offset + cut])
            offset += cut
            if read.report is not None:
                last = parseCounts(read.report)
            ready += read.ready
        self.assertEqual((last, ready), (Counter(counts[-1]), 1))

    def test_partialLine(self) -> None:
        """
        Nothing is read until the line ends.
        """
        reader = CountsReader()
        self.assertEqual(reader.feed(b'{"tcp.open": 1'), (None, False))
        self.assertEqual(reader.feed(b"}\nrea"), (b'{"tcp.open": 1}', False))
        self.assertEqual(reader.feed(b"dy\n"), (None, True))

    def test_badCounts(self) -> None:
        """
        A report that is not a JSON object of integers is refused.
        """
        for line in (b"{garbage", b"[1, 2]", b'"tcp"', b'{"tcp.open": "1"}', b""):
            self.assertRaises(ValueError, parseCounts, line)
        self.assertEqual(parseCounts(b'{"tcp.open": 2}'), Counter({"tcp.open": 2}))
