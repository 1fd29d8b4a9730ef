"""
Tests for L{greetd.daemon.pool.service}: supervision and reloads with a
fake clock and fake processes, and the parent's services.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from twisted.internet.error import (
    ProcessDone,
    ProcessTerminated,
)
from twisted.internet.task import Clock
from twisted.logger import LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from greetd.daemon.pool import (
    COUNTS_FD,
    FIRST_BACKOFF,
    MAX_BACKOFF,
    READY,
    READY_TIMEOUT,
    RESTART_WINDOW,
    RETIRE,
    SharedSocket,
    WorkerPool,
    WorkerProtocol,
)
from greetd.daemon.tap import makeService
from greetd.ops.metrics import CountsCollector
from tests.helpers import FakeProcess, captureLogs, daemonOptions, scrape


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


class ServiceTests(SynchronousTestCase):
    def test_namespaces(self) -> None:
        """
        The pool's lines keep the namespaces they had when the pool was one
        module, whichever module of the package writes them: operators may
        filter on them.
        """

        def spawn(slot: int, protocol: WorkerProtocol) -> Any:
            process = FakeProcess(100 + slot)
            protocol.makeConnection(process)  # type: ignore[arg-type]
            return process

        published: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(published.append)
        self.addCleanup(globalLogPublisher.removeObserver, published.append)
        pool = WorkerPool(1, spawn, Clock(), stopTimeout=6.0)
        pool.startService()
        pool.workers[1].childDataReceived(COUNTS_FD, b"{garbage\n")
        pool.reload()
        self.assertEqual(
            [(e.get("greetdEvent"), e["log_namespace"]) for e in published],
            [
                ("worker.start", "greetd.daemon.pool.WorkerPool"),
                (None, "greetd.daemon.pool.WorkerProtocol"),
                ("reload.start", "greetd.daemon.pool.WorkerPool"),
                ("worker.start", "greetd.daemon.pool.WorkerPool"),
            ],
        )

    def test_parentServices(self) -> None:
        """
        With C{--workers}, the parent binds each listener (in its privileged
        start) and runs a L{WorkerPool}: it serves no protocol itself.
        """
        service = makeService(
            daemonOptions("--workers", "3", "--tcp", "tcp:0", "--udp", "udp:0"), Clock()
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
