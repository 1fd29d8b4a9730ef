"""
Tests for L{greetd.daemon.pool.process}: the parent's end of a worker.
"""

from __future__ import annotations

import io
import os
import sys
from collections import Counter
from typing import Any

from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.logger import LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from greetd.daemon.listening import ListeningService
from greetd.daemon.plan import (
    Address,
)
from greetd.daemon.pool import (
    COUNTS_FD,
    FIRST_LISTENER_FD,
    WorkerProtocol,
    bindShared,
    spawnWorker,
)
from greetd.daemon.pool.process import describeExit, workerLog
from greetd.daemon.pool.wire import LOG_FD, LOG_FILE, LOG_RELAY, LOG_STDOUT, WorkerLog
from greetd.ops.log import LogOutput
from greetd.ops.relay import eventAsRelayLine
from tests.helpers import FakeProcess, captureLogs


class Recorder:
    """
    The pool a L{WorkerProtocol} reports to, recording what it is told.
    """

    def __init__(self) -> None:
        self.ready: list[WorkerProtocol] = []
        self.ended: list[WorkerProtocol] = []

    def workerReady(self, protocol: WorkerProtocol) -> None:
        self.ready.append(protocol)

    def workerEnded(self, protocol: WorkerProtocol, reason: Failure) -> None:
        self.ended.append(protocol)


class WorkerProtocolTests(SynchronousTestCase):
    def test_unreadableCounts(self) -> None:
        events = captureLogs(self, WorkerProtocol)
        worker = WorkerProtocol(Recorder(), 1)
        worker.childDataReceived(COUNTS_FD, b'{"udp.messages": 2}\n')
        worker.childDataReceived(COUNTS_FD, b"{garbage\n")
        self.assertEqual(worker.counts, Counter({"udp.messages": 2}))
        self.assertEqual(len(events), 1)

    def test_readyAmongCounts(self) -> None:
        """
        L{READY} may come in one read with counters; it is reported once.
        """
        pool = Recorder()
        worker = WorkerProtocol(pool, 1)
        worker.childDataReceived(
            COUNTS_FD, b'{"udp.messages": 1}\nready\n{"udp.messages": 2}\nre'
        )
        worker.childDataReceived(COUNTS_FD, b"ady\n")
        self.assertEqual((pool.ready, worker.ready), ([worker], True))
        self.assertEqual(worker.counts, Counter({"udp.messages": 2}))

    def test_relaysLog(self) -> None:
        """
        What a worker writes to standard output and error is published in
        the parent, naming the worker; its counters' pipe is not.
        """
        published: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(published.append)
        self.addCleanup(globalLogPublisher.removeObserver, published.append)
        protocol = WorkerProtocol(Recorder(), 3)
        protocol.makeConnection(FakeProcess(1234))  # type: ignore[arg-type]
        line = eventAsRelayLine({"log_format": "Serving", "log_time": 0.0})
        protocol.childDataReceived(1, line[:5].encode())
        protocol.childDataReceived(COUNTS_FD, b'{"tcp.connections": 1}\n')
        protocol.childDataReceived(1, line[5:].encode())
        protocol.childDataReceived(2, b"Traceback")
        protocol.childConnectionLost(2)
        self.assertEqual(
            [(event["log_system"], event["log_level"]) for event in published],
            [
                ("worker 3 pid 1234 -#info", LogLevel.info),
                ("worker 3 pid 1234 greetd.worker#error", LogLevel.error),
            ],
        )
        self.assertEqual(protocol.counts["tcp.connections"], 1)


class SpawnTests(SynchronousTestCase):
    def test_spawn(self) -> None:
        """
        L{spawnWorker} passes each bound socket at its own descriptor, the
        counts pipe, and a pipe for standard input that the worker watches.
        """
        spawned: list[Any] = []

        class Reactor:
            def spawnProcess(self, *args: Any, **kwargs: Any) -> FakeProcess:
                spawned.append((args, kwargs))
                return FakeProcess(7)

        tcp = bindShared("TCP", Address("127.0.0.1", 0, 5))
        udp = bindShared("UDP", Address("127.0.0.1", 0))
        self.addCleanup(tcp.stopListening)
        self.addCleanup(udp.stopListening)
        listeners = {"tcp": [ListeningService("TCP", "tcp:0", None)],  # type: ignore[arg-type]
                     "udp": [ListeningService("UDP", "udp:0", None)]}  # type: ignore[arg-type]  # fmt: skip
        listeners["tcp"][0].port = tcp
        listeners["udp"][0].port = udp
        protocol = WorkerProtocol(Recorder(), 1)
        spawnWorker(
            Reactor(), ["--no-udp"], listeners, 1, protocol, reactorName="greetd"
        )
        [((spawnedProtocol, executable, argv), kwargs)] = spawned
        self.assertIs(spawnedProtocol, protocol)
        self.assertEqual(argv[0], executable)
        self.assertEqual(argv[-2:], ["--", "--no-udp"])
        self.assertIn(
            f"--inherited=tcp={FIRST_LISTENER_FD},udp={FIRST_LISTENER_FD + 1}", argv
        )
        self.assertIn("--reactor=greetd", argv[: argv.index("--")])
        self.assertIn("--log=relay", argv[: argv.index("--")])
        self.assertEqual(
            kwargs["childFDs"],
            {
                0: "w",
                1: "r",
                2: "r",
                COUNTS_FD: "r",
                FIRST_LISTENER_FD: tcp.fileno(),
                FIRST_LISTENER_FD + 1: udp.fileno(),
            },
        )
        self.assertEqual(kwargs["env"], os.environ)


class DescribeExitTests(SynchronousTestCase):
    """
    L{describeExit} says how a worker ended in plain words.
    """

    def test_ways(self) -> None:
        for reason, words in [
            (ProcessTerminated(signal=9), "killed by signal 9 (SIGKILL)"),
            (ProcessTerminated(signal=15), "killed by signal 15 (SIGTERM)"),
            (ProcessTerminated(signal=200), "killed by signal 200"),
            (ProcessTerminated(exitCode=1), "exited with status 1"),
            (ProcessDone(0), "exited with status 0"),
            (OSError("gone"), "gone"),
        ]:
            self.assertEqual(describeExit(Failure(reason)), words)


class WorkerLogTests(SynchronousTestCase):
    """
    L{workerLog}: a worker writes its own lines where the parent writes
    its own, and relays them through the parent only where the parent
    does not write them itself.
    """

    def setUp(self) -> None:
        self.path = self.mktemp()

    def test_file(self) -> None:
        """
        Where the parent writes a log file, the worker appends to the same
        file, inherited as L{LOG_FD} (so it needs no permission to open
        it), in the parent's format; standard output is the parent's.
        """
        log = LogOutput(json=True)
        log.where = self.path
        observer = log.observer()
        assert observer is not None
        observer({"log_format": "up", "log_level": LogLevel.info, "log_time": 0.0})
        [logFile] = log.files.files
        self.addCleanup(logFile.close)
        howToLog, fds = workerLog(log)
        self.assertEqual(howToLog, WorkerLog(LOG_FILE, logFile.path, True))
        self.assertEqual(fds, {1: 1, LOG_FD: logFile.fileno()})

    def test_stdout(self) -> None:
        log = LogOutput()
        self.patch(sys, "stdout", io.StringIO())
        observer = log.observer()
        assert observer is not None
        observer({"log_format": "up", "log_level": LogLevel.info, "log_time": 0.0})
        self.assertEqual(workerLog(log), (WorkerLog(LOG_STDOUT, None, False), {1: 1}))

    def test_relay(self) -> None:
        """
        Where the parent does not write its lines itself (syslog, another
        C{--logger}), or is not logging yet, the worker's go through a
        pipe to the parent.
        """
        self.assertEqual(workerLog(None), (WorkerLog(LOG_RELAY), {1: "r"}))
        self.assertEqual(workerLog(LogOutput()), (WorkerLog(LOG_RELAY), {1: "r"}))
