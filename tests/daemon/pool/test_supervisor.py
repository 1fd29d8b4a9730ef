"""
Tests for L{greetd.daemon.pool.supervisor}: starting, restarting with
back-off and stopping workers, with a fake clock and fake processes.
"""

from __future__ import annotations

import signal
from collections import Counter
from typing import Any

from twisted.internet.error import (
    ProcessDone,
    ProcessTerminated,
)
from twisted.logger import LogLevel, formatEvent

from greetd.daemon.pool import (
    COUNTS_FD,
    FIRST_BACKOFF,
    MAX_BACKOFF,
    READY_LINE,
    REOPEN,
    RESTART_WINDOW,
    WorkerPool,
    WorkerProtocol,
)
from greetd.ops.metrics import CountsCollector
from tests.helpers import PoolCase, scrape


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
        self.assertEqual(
            formatEvent(died), "Worker 1 (pid 100) died (killed by signal 9 (SIGKILL))"
        )
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

    def test_reopenLogs(self) -> None:
        """
        L{WorkerPool.reopenLogs} tells every live worker to reopen its log
        (L{REOPEN}, SIGUSR1), a dead one's replacement included: at once if
        it has said L{READY}, else as soon as it says it (until then it
        may not handle the signal yet, which would kill it).
        """
        self.pool.startService()
        self.die(1)
        self.clock.advance(0)
        processes = [process for _, _, process in self.spawned]
        self.pool.workers[2].childDataReceived(COUNTS_FD, READY_LINE)
        self.pool.reopenLogs()
        self.assertEqual([process.signals for process in processes], [[], [REOPEN], []])
        self.pool.workers[1].childDataReceived(COUNTS_FD, READY_LINE)
        self.assertEqual(
            [process.signals for process in processes], [[], [REOPEN], [REOPEN]]
        )
        self.pool.workers[1].childDataReceived(COUNTS_FD, READY_LINE)
        self.assertEqual(processes[2].signals, [REOPEN])
        self.assertEqual(REOPEN, signal.SIGUSR1)

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
