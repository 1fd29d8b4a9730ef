"""
Tests for L{greetd.daemon.pool.reload}: the rolling reload, with a fake
clock and fake processes.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from twisted.internet.error import (
    ProcessDone,
    ProcessTerminated,
)
from twisted.logger import LogLevel, formatEvent
from twisted.python.failure import Failure

from greetd.daemon.pool import (
    COUNTS_FD,
    FIRST_BACKOFF,
    READY,
    READY_TIMEOUT,
    RETIRE,
    WorkerProtocol,
)
from tests.helpers import FakeProcess, PoolCase


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
        self.assertIn(
            "its replacement (pid 102) ended before serving (exited with status 1)",
            formatEvent(failed),
        )
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
