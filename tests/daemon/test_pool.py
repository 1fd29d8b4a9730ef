"""
Tests for L{greetd.daemon.pool} and L{greetd.daemon.worker}: supervision with a fake
clock and fake processes, the parent-to-worker arguments, and adoption.
"""

from __future__ import annotations

import json
import os
import socket
from collections import Counter
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import (
    CannotListenError,
    ProcessDone,
    ProcessExitedAlready,
    ProcessTerminated,
)
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, globalLogPublisher
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from greetd.daemon.build import Servers, buildServers
from greetd.daemon.listening import ListeningService
from greetd.daemon.options import Options
from greetd.daemon.plan import (
    TCP,
    UDP,
    Address,
    Inherited,
    Listener,
    datagramListener,
    streamListener,
)
from greetd.daemon.pool import (
    COUNTS_FD,
    FIRST_BACKOFF,
    FIRST_LISTENER_FD,
    MAX_BACKOFF,
    READY,
    READY_TIMEOUT,
    RESTART_WINDOW,
    RETIRE,
    SharedSocket,
    WorkerPool,
    WorkerProtocol,
    bindShared,
    formatInherited,
    parseInherited,
    spawnWorker,
    workerCommand,
)
from greetd.daemon.single import serve
from greetd.daemon.tap import makeService
from greetd.daemon.worker import (
    RETIRE_POLL,
    ParentWatcher,
    WorkerOptions,
    adopt,
    announceReady,
    report,
    retire,
)
from greetd.ops.metrics import CountsCollector
from greetd.ops.relay import eventAsRelayLine
from greetd.protocols.greeting import GreetingFactory
from greetd.protocols.proxy import ProxyHeaderFactory
from greetd.protocols.tls import HandshakeGateFactory
from tests.certificates import temporaryCredentials
from tests.daemon.test_tap import parse
from tests.helpers import captureLogs
from tests.ops.test_metrics import scrape


class FakeProcess:
    """
    An L{IProcessTransport} that records the signals sent to it.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.signals: list[str | int] = []
        self.exited = False

    def signalProcess(self, signal: str | int) -> None:
        if self.exited:
            raise ProcessExitedAlready()
        self.signals.append(signal)


class PoolCase(SynchronousTestCase):
    """
    A L{WorkerPool} of two fake workers on a fake clock.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.spawned: list[tuple[int, WorkerProtocol, FakeProcess]] = []
        self.pool = WorkerPool(2, self.spawn, self.clock, stopTimeout=6.0)
        self.events = captureLogs(self, WorkerPool)

    def spawn(self, slot: int, protocol: WorkerProtocol) -> Any:
        process = FakeProcess(100 + len(self.spawned))
        protocol.makeConnection(process)  # type: ignore[arg-type]
        self.spawned.append((slot, protocol, process))
        return process

    def die(self, slot: int, reason: Exception | None = None) -> None:
        """
        End the running worker in C{slot}, killed by SIGKILL by default.
        """
        protocol = self.pool.workers[slot]
        process = protocol.transport
        assert isinstance(process, FakeProcess)
        process.exited = True
        protocol.processEnded(Failure(reason or ProcessTerminated(signal=9)))


class PoolTests(PoolCase):
    """
    L{WorkerPool} spawns, replaces with back-off, and stops its workers.
    """

    def test_startsEverySlot(self) -> None:
        self.pool.startService()
        self.assertEqual([slot for slot, _, _ in self.spawned], [1, 2])
        self.assertEqual(self.pool.workers[2].pid, 101)
        self.assertEqual(self.pool.alive(), 2)
        self.assertEqual(
            [event.get("greetdEvent") for event in self.events],
            ["worker.start"] * 2,
        )

    def test_replacedAtOnce(self) -> None:
        """
        A worker that dies for the first time is replaced in its slot on the
        next reactor turn, and its death is logged with its pid and signal.
        """
        self.pool.startService()
        self.clock.advance(60)
        self.die(1)
        self.assertNotIn(1, self.pool.workers)
        self.clock.advance(0)
        self.assertEqual(self.spawned[-1][0], 1)
        self.assertEqual(self.pool.workers[1].pid, 102)
        [died] = [e for e in self.events if e.get("greetdEvent") == "worker.died"]
        self.assertEqual((died["pid"], died["signal"]), (100, 9))
        self.assertEqual(died["log_level"], LogLevel.warn)
        [restart] = [e for e in self.events if e.get("greetdEvent") == "worker.restart"]
        self.assertEqual((restart["slot"], restart["delay"]), (1, 0))

    def test_backoff(self) -> None:
        """
        A slot that keeps dying within L{RESTART_WINDOW} of its last death
        waits twice as long each time, up to L{MAX_BACKOFF}; the other slot
        is unaffected.
        """
        self.pool.startService()
        self.die(1)
        self.clock.advance(0)
        expected = [FIRST_BACKOFF * 2**n for n in range(6)] + [MAX_BACKOFF] * 2
        self.assertEqual(expected[5], 3.2)
        for delay in expected:
            self.die(1)
            spawned = len(self.spawned)
            self.clock.advance(delay * 0.99)
            self.assertEqual(len(self.spawned), spawned)
            self.clock.advance(delay * 0.02)
            self.assertEqual(len(self.spawned), spawned + 1)
        self.die(2)
        self.clock.advance(0)
        self.assertIn(2, self.pool.workers)

    def test_backoffForgotten(self) -> None:
        """
        A slot whose worker lived longer than L{RESTART_WINDOW} since the
        last death is replaced at once again.
        """
        self.pool.startService()
        self.die(1)
        self.clock.advance(0)
        self.die(1)
        self.clock.advance(FIRST_BACKOFF)
        self.clock.advance(RESTART_WINDOW)
        self.die(1)
        self.clock.advance(0)
        self.assertIn(1, self.pool.workers)

    def test_spawnFailure(self) -> None:
        """
        A worker that cannot even be spawned is logged and tried again,
        backing off like one that keeps dying.
        """
        failures = [OSError("no more processes")] * 2
        spawn = self.spawn

        def failing(slot: int, protocol: WorkerProtocol) -> Any:
            if failures:
                raise failures.pop()
            return spawn(slot, protocol)

        self.pool = WorkerPool(1, failing, self.clock, stopTimeout=6.0)
        self.pool.startService()
        self.assertEqual(self.pool.workers, {})
        self.clock.advance(0)
        self.assertEqual(self.pool.workers, {})
        self.clock.advance(FIRST_BACKOFF * 0.99)
        self.assertEqual(self.pool.workers, {})
        self.clock.advance(FIRST_BACKOFF * 0.02)
        self.assertEqual(list(self.pool.workers), [1])
        failed = [e["log_failure"].value for e in self.events if "log_failure" in e]
        self.assertEqual(len(failed), 2)
        self.assertIsInstance(failed[0], OSError)
        self.assertEqual(
            [e.get("greetdEvent") for e in self.events if "log_failure" not in e],
            ["worker.restart", "worker.restart", "worker.start"],
        )

    def test_stop(self) -> None:
        """
        Stopping sends SIGTERM to every worker, replaces none, and fires once
        all have ended.
        """
        self.pool.startService()
        stopped = self.pool.stopService()
        processes = [process for _, _, process in self.spawned]
        self.assertEqual([process.signals for process in processes], [["TERM"]] * 2)
        self.die(1, ProcessDone(0))
        self.clock.advance(0)
        self.assertNoResult(stopped)
        self.assertEqual(len(self.spawned), 2)
        self.die(2, ProcessTerminated(signal=15))
        self.successResultOf(stopped)
        self.clock.advance(60)
        self.assertEqual(processes[1].signals, ["TERM"])
        self.assertEqual(len(self.spawned), 2)

    def test_stopKillsStragglers(self) -> None:
        self.pool.startService()
        stopped = self.pool.stopService()
        self.die(1, ProcessDone(0))
        self.clock.advance(5.9)
        self.assertEqual(self.spawned[1][2].signals, ["TERM"])
        self.clock.advance(0.1)
        self.assertEqual(self.spawned[1][2].signals, ["TERM", "KILL"])
        self.die(2)
        self.successResultOf(stopped)

    def test_stopCancelsRestarts(self) -> None:
        self.pool.startService()
        self.die(1)
        self.die(2)
        self.successResultOf(self.pool.stopService())
        self.clock.advance(10)
        self.assertEqual(len(self.spawned), 2)

    def test_countsSummed(self) -> None:
        """
        Counters are summed over workers; an ended worker's counters are
        kept, its gauges are not.
        """
        self.pool.startService()
        first, second = self.pool.workers[1], self.pool.workers[2]
        first.childDataReceived(COUNTS_FD, b'{"tcp.messages": 3, "tcp.op')
        first.childDataReceived(COUNTS_FD, b'en": 2}\n')
        second.childDataReceived(COUNTS_FD, b'{"tcp.messages": 1, "tcp.open": 1}\n')
        second.childDataReceived(1, b"not counts\n")
        self.assertEqual(
            self.pool.counts(), Counter({"tcp.messages": 4, "tcp.open": 3})
        )
        self.die(1)
        self.assertEqual(
            self.pool.counts(), Counter({"tcp.messages": 4, "tcp.open": 1})
        )

    def test_unreadableCounts(self) -> None:
        events = captureLogs(self, WorkerProtocol)
        self.pool.startService()
        worker = self.pool.workers[1]
        worker.childDataReceived(COUNTS_FD, b'{"udp.messages": 2}\n')
        worker.childDataReceived(COUNTS_FD, b"{garbage\n")
        self.assertEqual(worker.counts, Counter({"udp.messages": 2}))
        self.assertEqual(len(events), 1)

    def test_workersGauge(self) -> None:
        self.pool.startService()
        self.die(1)
        collector = CountsCollector(
            self.pool.counts, tcp=True, udp=False, workers=self.pool.alive
        )
        self.assertEqual(scrape(collector)[("greetd_workers", ())], 1)


def end(protocol: WorkerProtocol, reason: Exception | None = None) -> None:
    """
    End C{protocol}'s fake worker process, cleanly by default.
    """
    process = protocol.transport
    assert isinstance(process, FakeProcess)
    process.exited = True
    protocol.processEnded(Failure(reason or ProcessDone(0)))


def ready(protocol: WorkerProtocol) -> None:
    """
    C{protocol}'s worker says it serves.
    """
    protocol.childDataReceived(COUNTS_FD, READY + b"\n")


class ReloadTests(PoolCase):
    """
    L{WorkerPool.reload} replaces the workers one slot at a time, each old
    worker drained only once its replacement serves.
    """

    def setUp(self) -> None:
        super().setUp()
        self.pool.startService()
        self.old = dict(self.pool.workers)
        for protocol in self.old.values():
            ready(protocol)

    def replacement(self) -> WorkerProtocol:
        """
        The worker spawned last, which must be a reload's replacement.
        """
        slot, protocol, _ = self.spawned[-1]
        self.assertIsNot(self.pool.workers.get(slot), protocol)
        return protocol

    def signals(self) -> dict[int, list[str | int]]:
        return {process.pid: process.signals for _, _, process in self.spawned}

    def greetdEvents(self) -> list[str]:
        return [event["greetdEvent"] for event in self.events if "greetdEvent" in event]

    def test_oneSlotAtATime(self) -> None:
        """
        A replacement is started for slot 1; the old worker is told to
        retire (L{RETIRE}) only once the replacement says it serves, and
        only then is slot 2's replacement started.  Drained workers are neither deaths
        nor restarted.
        """
        self.pool.reload()
        self.assertTrue(self.pool.reloading)
        first = self.replacement()
        self.assertEqual((first.slot, first.pid, len(self.spawned)), (1, 102, 3))
        self.clock.advance(READY_TIMEOUT / 2)
        self.assertEqual(self.signals(), {100: [], 101: [], 102: []})
        self.assertIs(self.pool.workers[1], self.old[1])
        ready(first)
        self.assertIs(self.pool.workers[1], first)
        self.assertEqual(self.pool.draining, {self.old[1]})
        second = self.replacement()
        self.assertEqual((second.slot, second.pid), (2, 103))
        self.assertEqual(self.signals(), {100: [RETIRE], 101: [], 102: [], 103: []})
        ready(second)
        self.assertEqual(self.signals()[101], [RETIRE])
        self.assertFalse(self.pool.reloading)
        self.assertEqual(self.pool.workers, {1: first, 2: second})
        self.assertEqual(self.pool.alive(), 2)
        end(self.old[1])
        end(self.old[2], ProcessTerminated(signal=15))
        self.clock.advance(60)
        self.assertEqual(len(self.spawned), 4)
        self.assertEqual(self.pool.draining, set())
        self.assertEqual(
            self.greetdEvents(),
            ["worker.start"] * 2
            + ["reload.start"]
            + ["worker.start", "worker.replaced"] * 2
            + ["reload.done", "worker.drained", "worker.drained"],
        )
        [done] = [e for e in self.events if e["greetdEvent"] == "reload.done"]
        self.assertEqual(done["count"], 2)
        # A replacement that serves is supervised like any worker.
        self.die(1)
        self.clock.advance(0)
        self.assertEqual(self.spawned[-1][0], 1)
        self.assertIn("worker.died", self.greetdEvents())

    def test_countersRetired(self) -> None:
        """
        A draining worker's counters and gauges still count; once it has
        ended its last counters are kept and its gauges dropped, so totals
        never go backwards across a reload.
        """
        self.old[1].childDataReceived(
            COUNTS_FD, b'{"tcp.messages": 5, "tcp.open": 2}\n'
        )
        self.old[2].childDataReceived(
            COUNTS_FD, b'{"tcp.messages": 1, "tcp.open": 1}\n'
        )
        self.pool.reload()
        first = self.replacement()
        first.childDataReceived(COUNTS_FD, b'{"tcp.messages": 0, "tcp.open": 0}\n')
        ready(first)
        self.assertEqual(
            self.pool.counts(), Counter({"tcp.messages": 6, "tcp.open": 3})
        )
        # Its last report, after draining, then its end.
        self.old[1].childDataReceived(
            COUNTS_FD, b'{"tcp.messages": 7, "tcp.open": 0}\n'
        )
        end(self.old[1])
        first.childDataReceived(COUNTS_FD, b'{"tcp.messages": 2, "tcp.open": 1}\n')
        self.assertEqual(self.pool.retired, Counter({"tcp.messages": 7}))
        self.assertEqual(
            self.pool.counts(), Counter({"tcp.messages": 10, "tcp.open": 2})
        )

    def test_replacementExits(self) -> None:
        """
        A replacement that exits before it serves stops the reload with an
        error: the old worker keeps serving, untouched, the other slots are
        not replaced, and the replacement is not restarted.
        """
        self.pool.reload()
        end(self.replacement(), ProcessTerminated(exitCode=1))
        self.clock.advance(60)
        self.assertFalse(self.pool.reloading)
        self.assertEqual(self.pool.workers, self.old)
        self.assertEqual(len(self.spawned), 3)
        self.assertEqual(self.signals(), {100: [], 101: [], 102: []})
        [failed] = [e for e in self.events if e.get("greetdEvent") == "reload.failed"]
        self.assertEqual(failed["log_level"], LogLevel.error)
        self.assertEqual((failed["slot"], failed["old"]), (1, 100))
        self.assertEqual((failed["pid"], failed["exitCode"]), (102, 1))
        self.assertNotIn("worker.died", self.greetdEvents())

    def test_replacementNeverServes(self) -> None:
        """
        A replacement that has not said it serves within L{READY_TIMEOUT}
        is killed and the reload stops; it is not restarted when it ends.
        """
        self.pool.reload()
        stuck = self.replacement()
        self.clock.advance(READY_TIMEOUT * 0.99)
        self.assertEqual(self.signals()[102], [])
        self.clock.advance(READY_TIMEOUT * 0.02)
        self.assertEqual(self.signals(), {100: [], 101: [], 102: ["KILL"]})
        self.assertFalse(self.pool.reloading)
        self.assertEqual(self.pool.draining, {stuck})
        [failed] = [e for e in self.events if e.get("greetdEvent") == "reload.failed"]
        self.assertEqual(failed["timeout"], READY_TIMEOUT)
        ready(stuck)  # too late: ignored
        self.assertEqual(self.pool.workers, self.old)
        end(stuck, ProcessTerminated(signal=9))
        self.clock.advance(60)
        self.assertEqual((len(self.spawned), self.pool.draining), (3, set()))

    def test_spawnFails(self) -> None:
        """
        A replacement that cannot be spawned stops the reload with an error.
        """

        def failing(slot: int, protocol: WorkerProtocol) -> Any:
            raise OSError("no more processes")

        self.pool._spawn = failing
        self.pool.reload()
        self.assertFalse(self.pool.reloading)
        self.assertEqual(self.pool.workers, self.old)
        self.assertEqual(self.signals(), {100: [], 101: []})
        failed = [e for e in self.events if e.get("log_level") == LogLevel.error]
        self.assertIsInstance(failed[0]["log_failure"].value, OSError)
        self.assertEqual(failed[1]["greetdEvent"], "reload.failed")

    def test_queued(self) -> None:
        """
        Reloads asked for during a reload make one more, after it: code
        installed meanwhile reaches every worker, and no more than that.
        """
        self.pool.reload()
        self.pool.reload()
        self.pool.reload()
        self.assertEqual(self.greetdEvents().count("reload.queued"), 1)
        for _ in range(2):
            ready(self.replacement())
        self.assertTrue(self.pool.reloading)
        self.assertEqual(self.greetdEvents().count("reload.start"), 2)
        for _ in range(2):
            ready(self.replacement())
        self.assertFalse(self.pool.reloading)
        self.assertEqual(len(self.spawned), 6)
        self.assertEqual([p.pid for p in self.pool.workers.values()], [104, 105])
        self.assertEqual(len(self.pool.draining), 4)

    def test_emptySlotSkipped(self) -> None:
        """
        A slot whose worker is dead, waiting for its restart, is not
        replaced: the restart runs the new code.
        """
        self.die(2)
        self.clock.advance(0)
        self.die(2)  # restarted after a back-off
        self.pool.reload()
        ready(self.replacement())
        self.assertFalse(self.pool.reloading)
        self.assertEqual(list(self.pool.workers), [1])
        self.clock.advance(FIRST_BACKOFF)
        self.assertEqual(sorted(self.pool.workers), [1, 2])

    def test_oldDiesMeanwhile(self) -> None:
        """
        A worker that dies while its replacement starts is restarted as
        usual; the replacement then takes the slot and the restarted worker,
        which has not said it serves (nor installed its L{RETIRE} handler),
        is sent SIGTERM.
        """
        self.pool.reload()
        first = self.replacement()
        self.die(1)
        self.clock.advance(0)
        restarted = self.pool.workers[1]
        self.assertEqual(restarted.pid, 103)
        ready(first)
        self.assertIs(self.pool.workers[1], first)
        self.assertEqual(self.pool.draining, {restarted})
        self.assertEqual(self.signals()[103], ["TERM"])

    def test_stopDuringReload(self) -> None:
        """
        Stopping the pool during a reload stops the replacement too, says
        nothing of a failed reload, and ends once every process has ended.
        """
        self.pool.reload()
        first = self.replacement()
        stopped = self.pool.stopService()
        self.assertFalse(self.pool.reloading)
        self.assertEqual(self.signals(), {100: ["TERM"], 101: ["TERM"], 102: ["TERM"]})
        ready(first)
        self.assertEqual(self.pool.workers, self.old)
        for protocol in [*self.old.values(), first]:
            end(protocol)
        self.successResultOf(stopped)
        self.assertNotIn("reload.failed", self.greetdEvents())
        self.pool.reload()
        self.assertEqual(len(self.spawned), 3)

    def test_stopWhileDraining(self) -> None:
        """
        Stopping sends SIGTERM to retiring workers too, to hurry them, waits
        for them and kills them with the others after C{stopTimeout}.
        """
        self.pool.reload()
        ready(self.replacement())
        stopped = self.pool.stopService()
        self.assertEqual(
            self.signals(),
            {100: [RETIRE, "TERM"], 101: ["TERM"], 102: ["TERM"], 103: ["TERM"]},
        )
        self.clock.advance(6.0)
        self.assertEqual(
            {pid: signals[-1] for pid, signals in self.signals().items()},
            {100: "KILL", 101: "KILL", 102: "KILL", 103: "KILL"},
        )
        for _, protocol, _ in self.spawned:
            end(protocol, ProcessTerminated(signal=9))
        self.successResultOf(stopped)

    def test_notRunning(self) -> None:
        """
        A reload asked for while the pool stops (a SIGHUP during the drain)
        does nothing.
        """
        self.pool.stopService()
        self.pool.reload()
        self.assertFalse(self.pool.reloading)
        self.assertEqual(len(self.spawned), 2)

    def test_readyAmongCounts(self) -> None:
        """
        L{READY} may come in one read with counters; it is reported once.
        """
        told: list[WorkerProtocol] = []
        self.patch(self.pool, "workerReady", told.append)
        worker = WorkerProtocol(self.pool, 1)
        worker.childDataReceived(
            COUNTS_FD, b'{"udp.messages": 1}\nready\n{"udp.messages": 2}\nre'
        )
        worker.childDataReceived(COUNTS_FD, b"ady\n")
        self.assertEqual((told, worker.ready), ([worker], True))
        self.assertEqual(worker.counts, Counter({"udp.messages": 2}))


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
        arguments = parse(
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
        self.assertEqual(command[-3:], ["--reactor=greetd", "--", "--no-udp"])
        self.assertNotIn(
            "--reactor", " ".join(workerCommand(1, {"tcp": [4]}, ["--no-udp"]))
        )

    def test_descriptorsMustMatch(self) -> None:
        options = WorkerOptions()
        self.assertRaises(
            usage.UsageError,
            options.parseOptions,
            ["--slot=1", "--inherited=tcp=4", "--", "--no-tcp"],
        )

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
        protocol = WorkerProtocol(None, 1)  # type: ignore[arg-type]
        spawnWorker(
            Reactor(), ["--no-udp"], listeners, 1, protocol, reactorName="greetd"
        )
        [((spawnedProtocol, executable, argv), kwargs)] = spawned
        self.assertIs(spawnedProtocol, protocol)
        self.assertEqual(argv[0], executable)
        self.assertEqual(argv[-2:], ["--", "--no-udp"])
        self.assertIn(f"--inherited=tcp={FIRST_LISTENER_FD},udp=5", argv)
        self.assertIn("--reactor=greetd", argv[: argv.index("--")])
        self.assertEqual(
            kwargs["childFDs"],
            {0: "w", 1: "r", 2: "r", COUNTS_FD: "r", 4: tcp.fileno(), 5: udp.fileno()},
        )
        self.assertEqual(kwargs["env"], os.environ)


class ShareableTests(SynchronousTestCase):
    def address(self, description: str) -> Address | None:
        return streamListener(description, MemoryReactorClock()).address

    def test_tcp(self) -> None:
        self.assertEqual(self.address("tcp:99"), Address("", 99, 4096))
        self.assertEqual(
            self.address("tcp:99:interface=127.0.0.1:backlog=7"),
            Address("127.0.0.1", 99, 7),
        )
        self.assertEqual(self.address("tcp6:99"), Address("::", 99, 4096))
        self.assertEqual(
            self.address("haproxy:tcp6:port=99:interface=\\:\\:1"),
            Address("::1", 99, 4096),
        )

    def test_ssl(self) -> None:
        """
        The parent binds an C{ssl:} socket as a C{tcp:} one, from its port,
        interface and backlog alone; the workers serve its TLS.
        """
        _, key, certificate = temporaryCredentials(self)
        credentials = f"privateKey={key}:certKey={certificate}"
        self.assertEqual(
            self.address(f"haproxy:ssl:99:{credentials}:interface=127.0.0.1"),
            Address("127.0.0.1", 99, 4096),
        )
        self.assertEqual(
            self.address(f"ssl:port=99:backlog=7:{credentials}"), Address("", 99, 7)
        )

    def test_unsupported(self) -> None:
        for listener in (
            streamListener("unix:/tmp/x", MemoryReactorClock()),
            Listener(TCP, "tls:/etc/certs", tls=True, twistedDescription="tls:/"),
            Listener(TCP, "systemd:domain=INET:index=0"),
        ):
            self.assertFalse(listener.shareable)
            self.assertIn("not supported with --workers", listener.notShareable)

    def test_udp(self) -> None:
        self.assertEqual(
            datagramListener("udp:99:interface=127.0.0.1").address,
            Address("127.0.0.1", 99),
        )
        self.assertEqual(
            datagramListener("haproxy:udp:99:interface=127.0.0.1").address,
            Address("127.0.0.1", 99),
        )

    def test_unsupportedDatagram(self) -> None:
        """
        Only C{udp:} is bound by the parent: an inherited (C{systemd:})
        datagram socket is refused.
        """
        listener = Listener(
            UDP,
            "systemd:domain=INET:index=1",
            inherited=Inherited(3, socket.AF_INET),
        )
        self.assertIn("not supported with --workers", listener.notShareable)

    def test_usageError(self) -> None:
        error = self.assertRaises(
            usage.UsageError, parse, "--workers", "2", "--tcp", "unix:/tmp/greetd"
        )
        self.assertIn("not supported with --workers", str(error))
        parse("--workers", "1", "--tcp", "unix:/tmp/greetd")
        self.assertRaises(usage.UsageError, parse, "--workers", "0")

    def test_bind(self) -> None:
        """
        L{bindShared} listens without accepting; a port in use is a
        L{CannotListenError}, as with Twisted's own ports.
        """
        shared = bindShared("TCP", Address("127.0.0.1", 0, 5))
        self.addCleanup(shared.stopListening)
        self.assertFalse(shared.socket.getblocking())
        address = shared.getHost()
        self.assertEqual((address.type, address.host), ("TCP", "127.0.0.1"))
        client = socket.create_connection(("127.0.0.1", address.port), timeout=5)
        client.close()
        self.assertRaises(
            CannotListenError, bindShared, "TCP", Address("127.0.0.1", address.port, 5)
        )
        udp = bindShared("UDP", Address("::1", 0))
        self.addCleanup(udp.stopListening)
        self.assertEqual(udp.getHost().type, "UDP")
        self.assertEqual(udp.socket.family, socket.AF_INET6)


class Adopter(Clock):
    """
    A reactor that records what is adopted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.adopted: list[tuple[Any, ...]] = []
        self.timeouts: list[float | None] = []

    def adoptStreamPort(self, *args: Any) -> Any:
        self.adopted.append(args)
        self.timeouts.append(socket.getdefaulttimeout())
        return self

    def adoptDatagramPort(self, *args: Any) -> Any:
        self.adopted.append(args)
        self.timeouts.append(socket.getdefaulttimeout())
        return self

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 1)


def adoptAll(
    options: Options, sockets: list[socket.socket]
) -> tuple[Adopter, Servers, list[int]]:
    """
    Serve C{options} as a worker does, on duplicates of C{sockets} (closed
    here), TCP ones first: the reactor, the servers and the descriptors.
    """
    fds = [os.dup(sock.fileno()) for sock in sockets]
    for sock in sockets:
        sock.close()
    tcp = len(options["plan"].tcp)
    reactor = Adopter()
    servers = buildServers(options, reactor)
    inherited = {"tcp": fds[:tcp], "udp": fds[tcp:]}
    services = serve(
        options["plan"],
        servers,
        lambda *args: adopt(reactor, inherited, *args),
        5.0,
        0,
    )
    services.startService()
    return reactor, servers, fds


class BuilderTests(SynchronousTestCase):
    """
    One builder serves the daemon and the workers alike.
    """

    def test_workerAdopts(self) -> None:
        """
        A worker adopts the inherited descriptors in option order, with the
        same factory for every TCP socket and the PROXY wrapper where asked,
        and closes the inherited descriptors (the reactor has duplicates).
        """
        options = parse(
            "--tcp", "tcp:0", "--tcp", "haproxy:tcp:0", "--udp", "udp:0",
            "--max-length", "9",
        )  # fmt: skip
        sockets = [socket.socket(), socket.socket(socket.AF_INET6)]
        sockets.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        reactor, servers, fds = adoptAll(options, sockets)
        [plain, proxied, datagram] = reactor.adopted
        self.assertEqual(plain, (fds[0], socket.AF_INET, servers.factory))
        self.assertEqual(proxied[:2], (fds[1], socket.AF_INET6))
        self.assertIsInstance(proxied[2], ProxyHeaderFactory)
        self.assertIs(proxied[2].wrappedFactory, servers.factory)
        self.assertEqual(datagram, (fds[2], socket.AF_INET, servers.replies[0], 10))
        for fd in fds:
            self.assertRaises(OSError, os.fstat, fd)
        # The socket objects Twisted makes leave the shared sockets
        # non-blocking (PyPy would make them blocking by default).
        self.assertEqual(reactor.timeouts, [0.0] * 3)
        self.assertIsNone(socket.getdefaulttimeout())

    def test_workerServesTLS(self) -> None:
        """
        A worker serves an C{ssl:} listener's TLS on the inherited socket,
        after the PROXY header when there is one, as the daemon does.
        """
        _, key, certificate = temporaryCredentials(self)
        tls = f"ssl:0:privateKey={key}:certKey={certificate}"
        options = parse("--no-udp", "--tcp", tls, "--tcp", f"haproxy:{tls}")
        reactor, servers, _ = adoptAll(options, [socket.socket(), socket.socket()])
        [plain, proxied] = [adopted[2] for adopted in reactor.adopted]
        self.assertIsInstance(plain, TLSMemoryBIOFactory)
        self.assertIsInstance(plain.wrappedFactory, HandshakeGateFactory)
        self.assertIs(plain.wrappedFactory.wrappedFactory, servers.factory)
        # The PROXY header comes before TLS, as HAProxy sends it.
        self.assertIsInstance(proxied, ProxyHeaderFactory)
        self.assertIsInstance(proxied.wrappedFactory, TLSMemoryBIOFactory)
        gate = proxied.wrappedFactory.wrappedFactory
        self.assertIsInstance(gate, HandshakeGateFactory)
        self.assertIs(gate.wrappedFactory, servers.factory)

    def test_noTCPNoFactory(self) -> None:
        servers = buildServers(parse("--no-tcp", "--udp", "udp:1"), Clock())
        self.assertIsNone(servers.factory)
        self.assertEqual(len(servers.replies), 1)

    def test_parentServices(self) -> None:
        """
        With C{--workers}, the parent binds each listener (in its privileged
        start) and runs a L{WorkerPool}: it serves no protocol itself.
        """
        service = makeService(
            parse("--workers", "3", "--tcp", "tcp:0", "--udp", "udp:0"), Clock()
        )
        *listeners, pool = list(service)
        self.assertEqual(
            [(child.kind, child.description) for child in listeners],  # type: ignore[attr-defined]
            [("TCP", "tcp:0"), ("UDP", "udp:0")],
        )
        assert isinstance(pool, WorkerPool)
        self.assertEqual((pool.count, pool.stopTimeout), (3, 6.0))
        for listener in listeners:
            listener.privilegedStartService()
            self.addCleanup(listener.stopService)
            self.assertIsInstance(listener.port, SharedSocket)  # type: ignore[attr-defined]


class WorkerProcessTests(SynchronousTestCase):
    def test_parentWatcher(self) -> None:
        """
        L{ParentWatcher} ignores data and reports the pipe's end of file.
        """
        readEnd, writeEnd = os.pipe()
        self.addCleanup(os.close, readEnd)
        lost: list[bool] = []
        watcher = ParentWatcher(
            MemoryReactorClock(), readEnd, lambda: lost.append(True)
        )
        self.assertIsNone(watcher.doRead())
        os.write(writeEnd, b"x")
        self.assertIsNone(watcher.doRead())
        os.close(writeEnd)
        result = watcher.doRead()
        assert isinstance(result, Failure)
        watcher.connectionLost(result)
        self.assertEqual(lost, [True])

    def test_announceReady(self) -> None:
        """
        A worker says L{READY} once every listener listens, not before.
        """
        readEnd, writeEnd = os.pipe()
        self.addCleanup(os.close, readEnd)
        self.addCleanup(os.close, writeEnd)
        os.set_blocking(readEnd, False)
        listening: list[Deferred[Any]] = []

        def listen() -> Deferred[Any]:
            listening.append(Deferred())
            return listening[-1]

        services = MultiService()
        for kind in ("TCP", "UDP"):
            service = ListeningService(kind, kind, listen)
            service.setServiceParent(services)  # type: ignore[no-untyped-call]
        services.startService()
        announceReady(services, writeEnd)
        listening[0].callback(SharedSocket(socket.socket(), "TCP"))
        self.assertRaises(BlockingIOError, os.read, readEnd, 100)
        port = SharedSocket(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), "UDP")
        listening[1].callback(port)
        self.assertEqual(os.read(readEnd, 100), READY + b"\n")
        for sharedSocket in services:
            sharedSocket.port.stopListening()  # type: ignore[attr-defined]

    def retiring(self, connections: set[object]) -> tuple[Any, MultiService]:
        """
        A worker's listening service, started, and a reactor that records
        its stops, then L{retire} with a grace of 5 seconds.
        """

        class Reactor(Clock):
            stops = 0

            def stop(self) -> None:
                self.stops += 1

        reactor = Reactor()
        services = MultiService()
        port = SharedSocket(socket.socket(), "TCP")
        listening = ListeningService("TCP", "tcp:0", lambda: succeed(port))
        listening.setServiceParent(services)  # type: ignore[no-untyped-call]
        services.startService()
        self.assertIs(listening.port, port)
        retire(reactor, services, connections, 5.0)
        self.assertEqual((listening.port, listening.running), (None, False))
        self.assertEqual(port.socket.fileno(), -1)
        return reactor, services

    def test_retireWaitsForSessions(self) -> None:
        """
        A retiring worker stops listening at once, and stops its reactor
        (which drains) once its last connection has ended by itself.
        """
        connections: set[object] = {"a", "b"}
        reactor, _ = self.retiring(connections)
        reactor.advance(RETIRE_POLL)
        connections.discard("a")
        reactor.advance(RETIRE_POLL)
        self.assertEqual(reactor.stops, 0)
        connections.discard("b")
        reactor.advance(RETIRE_POLL)
        self.assertEqual(reactor.stops, 1)
        reactor.advance(10)
        self.assertEqual((reactor.stops, reactor.getDelayedCalls()), (1, []))

    def test_retireGrace(self) -> None:
        """
        Sessions still open after the grace (C{--shutdown-timeout}) are left
        to the usual drain.
        """
        reactor, _ = self.retiring({"idle"})
        reactor.pump([RETIRE_POLL] * 49)
        self.assertEqual(reactor.stops, 0)
        reactor.pump([RETIRE_POLL] * 2)
        self.assertEqual(reactor.stops, 1)

    def test_report(self) -> None:
        readEnd, writeEnd = os.pipe()
        self.addCleanup(os.close, readEnd)
        self.addCleanup(os.close, writeEnd)
        servers = buildServers(parse("--no-udp"), Clock())
        assert isinstance(servers.factory, GreetingFactory)
        servers.factory.connectionsTotal = 4
        report(servers, writeEnd)
        line = os.read(readEnd, 65536)
        self.assertTrue(line.endswith(b"\n"))
        self.assertEqual(json.loads(line)["tcp.connections"], 4)

    def test_relaysLog(self) -> None:
        """
        What a worker writes to standard output and error is published in
        the parent, naming the worker; its counters' pipe is not.
        """
        published: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(published.append)
        self.addCleanup(globalLogPublisher.removeObserver, published.append)
        protocol = WorkerProtocol(WorkerPool(1, None, Clock(), 1.0), 3)  # type: ignore[arg-type]
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
                ("worker 3 pid 1234", LogLevel.info),
                ("worker 3 pid 1234", LogLevel.error),
            ],
        )
        self.assertEqual(protocol.counts["tcp.connections"], 1)


class OptionsTests(SynchronousTestCase):
    def test_arguments(self) -> None:
        options = Options()
        options.parseOptions(["--workers=2", "--no-udp"])
        self.assertEqual(options.arguments, ["--workers=2", "--no-udp"])
        self.assertEqual(options["workers"], 2)
