"""
Supervision: start a worker in each slot, restart one that dies (backing
off while a slot keeps dying), and stop them all.
"""

from __future__ import annotations

from collections import Counter

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from greetd.core.counters import retire, sumCounts
from greetd.daemon.pool.logger import POOL, PinnedLogger
from greetd.daemon.pool.process import Spawn, WorkerProtocol, describeExit
from greetd.protocols.drain import cancelling

#: A worker that dies within this many seconds of the same slot's previous
#: death is restarted after a back-off rather than at once.
RESTART_WINDOW = 10.0

#: The first back-off, doubled at each quick death up to L{MAX_BACKOFF}.
FIRST_BACKOFF = 0.1

#: The longest wait before restarting a worker that keeps dying.
MAX_BACKOFF = 5.0


class Supervisor(Service):
    """
    Runs C{count} workers and keeps them running: a worker that dies is
    replaced at once, or after a back-off doubling from L{FIRST_BACKOFF} to
    L{MAX_BACKOFF} while its slot keeps dying within L{RESTART_WINDOW}
    seconds of the last death (a worker that cannot start must not make the
    parent spin).  Stopping it stops every worker: SIGTERM, which drains
    it, then SIGKILL for any still running after C{stopTimeout}.

    L{startWorker} is the one place a worker is started, for a slot or to
    replace one (L{greetd.daemon.pool.reload}); a worker started to replace
    another is not in a slot until L{takeSlot}, and a subclass names such
    workers in L{_unslotted} and hears of their end in L{_unslottedEnded}.

    @ivar count: How many workers to run.
    @ivar workers: The serving workers, by slot.
    @ivar draining: Workers told to end (replaced by a reload, or a
        replacement given up on) that have not ended yet.
    @ivar retired: The counters of workers that have ended, so that summed
        counters never go backwards when a worker is replaced.
    @ivar stopTimeout: Seconds from SIGTERM to SIGKILL when stopping.
    """

    _log = PinnedLogger(POOL)

    def __init__(
        self, count: int, spawn: Spawn, clock: IReactorTime, stopTimeout: float
    ) -> None:
        self.count = count
        self._spawn = spawn
        self._clock = clock
        self.stopTimeout = stopTimeout
        self.workers: dict[int, WorkerProtocol] = {}
        self.draining: set[WorkerProtocol] = set()
        self.retired: Counter[str] = Counter()
        self._backoff: dict[int, float] = {}
        self._lastDeath: dict[int, float] = {}
        self._restarts: dict[int, IDelayedCall] = {}
        self._stopped: list[Deferred[None]] = []

    def startService(self) -> None:
        Service.startService(self)
        for slot in range(1, self.count + 1):
            self._start(slot)

    def startWorker(
        self, slot: int, replacing: WorkerProtocol | None = None
    ) -> WorkerProtocol:
        """
        Start a worker process for C{slot}, and log it.

        @param replacing: The worker it is to replace, if any; it is not
            put in the slot here.
        @raise Exception: Whatever starting a process raised (out of
            processes or descriptors, say).
        """
        protocol = WorkerProtocol(self, slot)
        protocol.pid = self._spawn(slot, protocol).pid
        if replacing is None:
            self._log.info(
                "Started worker {slot} (pid {pid})",
                slot=slot,
                pid=protocol.pid,
                greetdEvent="worker.start",
            )
        else:
            self._log.info(
                "Started worker {slot} (pid {pid}) to replace pid {old}",
                slot=slot,
                pid=protocol.pid,
                old=replacing.pid,
                greetdEvent="worker.start",
            )
        return protocol

    def _start(self, slot: int) -> None:
        self._restarts.pop(slot, None)
        try:
            self.workers[slot] = self.startWorker(slot)
        except Exception:
            # Out of processes or descriptors, say: try again, backing off.
            self._log.failure("Cannot start worker {slot}", slot=slot)
            self._restart(slot)

    def takeSlot(self, protocol: WorkerProtocol) -> WorkerProtocol | None:
        """
        Put C{protocol}, started to replace a worker, in its slot, in place
        of a restart due there, if any.

        @return: The worker it replaces there, if any: still running.
        """
        slot = protocol.slot
        old = self.workers.get(slot)
        self.workers[slot] = protocol
        restart = self._restarts.pop(slot, None)
        if restart is not None:
            restart.cancel()
        return old

    def _unslotted(self) -> list[WorkerProtocol]:
        """
        The workers started to replace one, and not in a slot yet.
        """
        return []

    def _unslottedEnded(self, protocol: WorkerProtocol, reason: Failure) -> None:
        """
        A worker of L{_unslotted} has ended.
        """

    def _live(self) -> list[WorkerProtocol]:
        """
        Every worker process not known to have ended: serving, replacing
        one, or draining.
        """
        return list(self.workers.values()) + self._unslotted() + list(self.draining)

    def workerReady(self, protocol: WorkerProtocol) -> None:
        """
        C{protocol}'s worker serves: nothing to do for a worker in a slot.
        """

    def workerEnded(self, protocol: WorkerProtocol, reason: Failure) -> None:
        """
        Forget a worker that has ended and, if it was serving and the
        supervisor is not stopping, replace it.
        """
        slot = protocol.slot
        retire(self.retired, protocol.counts)
        exitCode = getattr(reason.value, "exitCode", None)
        signum = getattr(reason.value, "signal", None)
        if protocol in self.draining:
            self.draining.discard(protocol)
            self._log.info(
                "Worker {slot} (pid {pid}) has drained and exited",
                slot=slot,
                pid=protocol.pid,
                greetdEvent="worker.drained",
            )
        elif protocol in self._unslotted():
            self._unslottedEnded(protocol, reason)
        elif self.workers.get(slot) is protocol:
            del self.workers[slot]
            if self.running:
                self._log.warn(
                    "Worker {slot} (pid {pid}) died ({how})",
                    slot=slot,
                    pid=protocol.pid,
                    how=describeExit(reason),
                    exitCode=exitCode,
                    signal=signum,
                    greetdEvent="worker.died",
                )
                self._restart(slot)
        if not self.running and not self._live():
            stopped, self._stopped = self._stopped, []
            for waiting in stopped:
                waiting.callback(None)

    def _restart(self, slot: int) -> None:
        """
        Start a new worker in C{slot}: at once, or after a back-off if the
        slot's last worker also failed within L{RESTART_WINDOW}.
        """
        now = self._clock.seconds()
        last = self._lastDeath.get(slot)
        if last is not None and now - last < RESTART_WINDOW:
            delay = min(max(self._backoff.get(slot, 0) * 2, FIRST_BACKOFF), MAX_BACKOFF)
        else:
            delay = 0.0
        self._backoff[slot] = delay
        self._lastDeath[slot] = now
        self._log.info(
            "Restarting worker {slot} in {delay}s",
            slot=slot,
            delay=delay,
            greetdEvent="worker.restart",
        )
        self._restarts[slot] = self._clock.callLater(delay, self._start, slot)

    def endWorker(self, protocol: WorkerProtocol, signum: str | int) -> None:
        """
        Send C{signum} to a worker that no longer serves in its slot, and
        count it as draining until it has ended.
        """
        self.draining.add(protocol)
        protocol.signal(signum)

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        for call in self._restarts.values():
            call.cancel()
        self._restarts.clear()
        if not self._live():
            return succeed(None)
        stopped: Deferred[None] = Deferred()
        self._stopped.append(stopped)
        self._signalAll("TERM")
        kill = self._clock.callLater(self.stopTimeout, self._signalAll, "KILL")
        return stopped.addBoth(cancelling, kill)

    def reopenLogs(self) -> None:
        """
        Tell every live worker to reopen its log
        (L{WorkerProtocol.reopenLog}), as nginx's master does once it has
        reopened its own: each writes its own lines
        (L{greetd.daemon.pool.wire.WorkerLog}).
        """
        for protocol in self._live():
            protocol.reopenLog()

    def _signalAll(self, signum: str | int) -> None:
        """
        Send C{signum} to every live worker, draining ones too: SIGTERM
        hurries a retiring worker along.
        """
        for protocol in self._live():
            if protocol.transport is None:
                continue
            if signum == "KILL":
                self._log.warn(
                    "Killing worker {slot} (pid {pid}), still running",
                    slot=protocol.slot,
                    pid=protocol.pid,
                )
            protocol.signal(signum)

    def alive(self) -> int:
        """
        How many workers serve now (draining ones are not counted).
        """
        return len(self.workers)

    def counts(self) -> Counter[str]:
        """
        The counters of every live worker (draining ones included), summed,
        with those of ended workers.
        """
        reports = [protocol.counts for protocol in self._live()]
        return sumCounts(reports, self.retired)
