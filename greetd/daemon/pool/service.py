"""
The parent's service for C{--workers N}: the shared sockets, bound, and
the L{WorkerPool} that keeps N workers serving them.
"""

from __future__ import annotations

from collections import Counter
from contextlib import suppress
from functools import partial
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import LogLevel
from twisted.python.failure import Failure

from greetd.core.counters import retire, sumCounts
from greetd.daemon.listening import ListeningService
from greetd.daemon.options import Options
from greetd.daemon.pool.logger import POOL, PinnedLogger
from greetd.daemon.pool.process import Spawn, WorkerProtocol, spawnWorker
from greetd.daemon.pool.sockets import listenShared
from greetd.daemon.pool.wire import RETIRE
from greetd.protocols.drain import cancelling

#: A worker that dies within this many seconds of the same slot's previous
#: death is restarted after a back-off rather than at once.
RESTART_WINDOW = 10.0

#: The first back-off, doubled at each quick death up to L{MAX_BACKOFF}.
FIRST_BACKOFF = 0.1

#: The longest wait before restarting a worker that keeps dying.
MAX_BACKOFF = 5.0

#: Seconds a reload waits for a replacement to say L{READY} before it kills
#: the replacement and stops, leaving the old worker serving.
READY_TIMEOUT = 30.0


class WorkerPool(Service):
    """
    Runs C{count} workers and keeps them running: a worker that dies is
    replaced at once, or after a back-off doubling from L{FIRST_BACKOFF} to
    L{MAX_BACKOFF} while its slot keeps dying within L{RESTART_WINDOW}
    seconds of the last death (a worker that cannot start must not make the
    parent spin).  L{reload} replaces every worker, one at a time, without
    refusing a connection.  Stopping the pool stops every worker: SIGTERM,
    which drains it, then SIGKILL for any still running after
    C{stopTimeout}.

    @ivar count: How many workers to run.
    @ivar workers: The serving workers, by slot.
    @ivar draining: Workers told to end (replaced by a reload, or a
        replacement given up on) that have not ended yet.
    @ivar retired: The counters of workers that have ended, so that summed
        counters never go backwards when a worker is replaced.
    @ivar readyTimeout: Seconds a reload waits for a replacement to serve.
    """

    _log = PinnedLogger(POOL)

    def __init__(
        self,
        count: int,
        spawn: Spawn,
        clock: IReactorTime,
        stopTimeout: float,
        readyTimeout: float = READY_TIMEOUT,
    ) -> None:
        self.count = count
        self._spawn = spawn
        self._clock = clock
        self.stopTimeout = stopTimeout
        self.readyTimeout = readyTimeout
        self.workers: dict[int, WorkerProtocol] = {}
        self.draining: set[WorkerProtocol] = set()
        self.retired: Counter[str] = Counter()
        self._backoff: dict[int, float] = {}
        self._lastDeath: dict[int, float] = {}
        self._restarts: dict[int, IDelayedCall] = {}
        self._stopped: list[Deferred[None]] = []
        self._reload = _Reload()

    def startService(self) -> None:
        Service.startService(self)
        for slot in range(1, self.count + 1):
            self._start(slot)

    def _start(self, slot: int) -> None:
        self._restarts.pop(slot, None)
        protocol = WorkerProtocol(self, slot)
        try:
            transport = self._spawn(slot, protocol)
        except Exception:
            # Out of processes or descriptors, say: try again, backing off.
            self._log.failure("Cannot start worker {slot}", slot=slot)
            self._restart(slot)
            return
        protocol.pid = transport.pid
        self.workers[slot] = protocol
        self._log.info(
            "Started worker {slot} (pid {pid})",
            slot=slot,
            pid=transport.pid,
            greetdEvent="worker.start",
        )

    def _live(self) -> list[WorkerProtocol]:
        """
        Every worker process not known to have ended: serving, replacing
        one, or draining.
        """
        live = list(self.workers.values())
        if self._reload.replacement is not None:
            live.append(self._reload.replacement)
        return live + list(self.draining)

    def workerEnded(self, protocol: WorkerProtocol, reason: Failure) -> None:
        """
        Forget a worker that has ended and, if it was serving and the pool
        is not stopping, replace it; a replacement that ends before it
        serves stops the reload.
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
        elif protocol is self._reload.replacement:
            self._reload.replacement = None
            self._reload.cancelTimeout()
            if self.running:
                self._reloadFailed(
                    slot,
                    "its replacement (pid {pid}) exited before serving "
                    "(exit code {exitCode}, signal {signal})",
                    pid=protocol.pid,
                    exitCode=exitCode,
                    signal=signum,
                )
        elif self.workers.get(slot) is protocol:
            del self.workers[slot]
            if self.running:
                self._log.warn(
                    "Worker {slot} (pid {pid}) died "
                    "(exit code {exitCode}, signal {signal})",
                    slot=slot,
                    pid=protocol.pid,
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

    def reload(self) -> None:
        """
        Replace every serving worker by a new one, running the code on disk
        now, one slot at a time: start the replacement, wait until it says
        it serves (L{READY}), then tell the old worker to retire
        (L{RETIRE}), and go on to the next slot.  A reload asked for while
        one runs is queued: one more reload follows it, however many were
        asked for, so that code installed during a reload reaches every
        worker.

        A replacement that cannot be started, exits before it serves or
        does not serve within L{readyTimeout} seconds (it is killed) stops
        the reload with an error: the workers not yet replaced keep
        serving.  Nothing happens while the pool is stopping.
        """
        if not self.running:
            return
        reloading = self._reload
        if reloading.active:
            if not reloading.again:
                self._log.info(
                    "A reload is under way: another will follow it",
                    greetdEvent="reload.queued",
                )
            reloading.again = True
            return
        reloading.start(sorted(self.workers))
        self._log.info(
            "Reloading: replacing {count} workers one at a time",
            count=len(reloading.slots),
            greetdEvent="reload.start",
        )
        self._replaceNext()

    def _replaceNext(self) -> None:
        reloading = self._reload
        while reloading.slots:
            slot = reloading.slots.pop(0)
            old = self.workers.get(slot)
            if old is None:
                # It died meanwhile: its restart runs the new code.
                continue
            protocol = WorkerProtocol(self, slot)
            try:
                transport = self._spawn(slot, protocol)
            except Exception:
                self._log.failure(
                    "Cannot start a replacement for worker {slot}",
                    slot=slot,
                    level=LogLevel.error,
                )
                self._reloadFailed(slot, "its replacement could not be started")
                return
            protocol.pid = transport.pid
            reloading.replacement = protocol
            reloading.timeout = self._clock.callLater(
                self.readyTimeout, self._notReady, protocol
            )
            self._log.info(
                "Started worker {slot} (pid {pid}) to replace pid {old}",
                slot=slot,
                pid=protocol.pid,
                old=old.pid,
                greetdEvent="worker.start",
            )
            return
        self._log.info(
            "Reloaded: {count} workers replaced",
            count=reloading.replaced,
            greetdEvent="reload.done",
        )
        self._endReload()

    def workerReady(self, protocol: WorkerProtocol) -> None:
        """
        C{protocol}'s worker serves: if it is a reload's replacement, it
        takes its slot, the worker it replaces drains, and the reload goes
        on to the next slot.
        """
        reloading = self._reload
        if protocol is not reloading.replacement or not self.running:
            return
        reloading.cancelTimeout()
        reloading.replacement = None
        reloading.replaced += 1
        slot = protocol.slot
        old = self.workers.get(slot)
        self.workers[slot] = protocol
        restart = self._restarts.pop(slot, None)
        if restart is not None:
            restart.cancel()
        self._log.info(
            "Worker {slot} (pid {pid}) serves; pid {old} drains",
            slot=slot,
            pid=protocol.pid,
            old=old.pid if old is not None else None,
            greetdEvent="worker.replaced",
        )
        if old is not None:
            self._endWorker(old, RETIRE if old.ready else "TERM")
        self._replaceNext()

    def _notReady(self, protocol: WorkerProtocol) -> None:
        self._reload.timeout = None
        self._reload.replacement = None
        self._endWorker(protocol, "KILL")
        self._reloadFailed(
            protocol.slot,
            "its replacement (pid {pid}) did not serve within {timeout}s "
            "and was killed",
            pid=protocol.pid,
            timeout=self.readyTimeout,
        )

    def _endWorker(self, protocol: WorkerProtocol, signum: str | int) -> None:
        """
        Send C{signum} to a worker that no longer serves in its slot, and
        count it as draining until it has ended.
        """
        self.draining.add(protocol)
        transport = protocol.transport
        if transport is not None:
            with suppress(ProcessExitedAlready):
                transport.signalProcess(signum)

    def _reloadFailed(self, slot: int, why: str, **fields: Any) -> None:
        old = self.workers.get(slot)
        self._log.error(
            "Reload stopped at worker {slot}: " + why + "; the workers not "
            "replaced yet keep serving (worker {slot}: pid {old})",
            slot=slot,
            old=old.pid if old is not None else None,
            greetdEvent="reload.failed",
            **fields,
        )
        self._endReload()

    def _endReload(self) -> None:
        again = self._reload.again
        self._reload = _Reload()
        if again and self.running:
            self.reload()

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        for call in self._restarts.values():
            call.cancel()
        self._restarts.clear()
        # A replacement being started is stopped with the others (_live).
        self._reload.cancelTimeout()
        self._reload.active = self._reload.again = False
        self._reload.slots.clear()
        if not self._live():
            return succeed(None)
        stopped: Deferred[None] = Deferred()
        self._stopped.append(stopped)
        self._signalAll("TERM")
        kill = self._clock.callLater(self.stopTimeout, self._signalAll, "KILL")
        return stopped.addBoth(cancelling, kill)

    def _signalAll(self, signum: str) -> None:
        """
        Send C{signum} to every live worker, draining ones too: SIGTERM
        hurries a retiring worker (L{RETIRE}) along.
        """
        for protocol in self._live():
            transport = protocol.transport
            if transport is None:
                continue
            if signum == "KILL":
                self._log.warn(
                    "Killing worker {slot} (pid {pid}), still running",
                    slot=protocol.slot,
                    pid=protocol.pid,
                )
            with suppress(ProcessExitedAlready):
                transport.signalProcess(signum)

    @property
    def reloading(self) -> bool:
        """
        Whether a reload is under way.
        """
        return self._reload.active

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


class _Reload:
    """
    The state of one L{WorkerPool.reload}.

    @ivar active: Whether it is under way.
    @ivar slots: The slots still to replace, in order.
    @ivar replacement: The worker started for the slot being replaced,
        until it serves or ends.
    @ivar timeout: The call that gives up on C{replacement}.
    @ivar replaced: How many workers it has replaced.
    @ivar again: Whether another reload was asked for meanwhile.
    """

    def __init__(self) -> None:
        self.active = False
        self.slots: list[int] = []
        self.replacement: WorkerProtocol | None = None
        self.timeout: IDelayedCall | None = None
        self.replaced = 0
        self.again = False

    def start(self, slots: list[int]) -> None:
        self.active = True
        self.slots = slots

    def cancelTimeout(self) -> None:
        timeout, self.timeout = self.timeout, None
        if timeout is not None and timeout.active():
            timeout.cancel()


def workerPoolService(
    options: Options, reactor: Any
) -> tuple[MultiService, WorkerPool]:
    """
    The parent's services for C{--workers}: a L{ListeningService} binding
    each shared socket in C{privilegedStartService} (so ports below 1024
    work, and twistd's C{--uid} applies to the workers), then the
    L{WorkerPool}, which is returned too, for metrics.
    """
    services = MultiService()
    plan = options["plan"]
    listeners: dict[str, list[ListeningService]] = {"tcp": [], "udp": []}
    for kind, planned in (("tcp", plan.tcp), ("udp", plan.udp)):
        for listener in planned:
            bind = partial(listenShared, listener.kind, listener.address)
            service = ListeningService(listener.kind, listener.description, bind)
            listeners[kind].append(service)
    for service in listeners["tcp"] + listeners["udp"]:
        service.setServiceParent(services)  # type: ignore[no-untyped-call]
    spawn = partial(
        spawnWorker,
        reactor,
        options.arguments,
        listeners,
        reactorName=options["reactor"],
    )
    pool = WorkerPool(
        options["workers"], spawn, reactor, options["shutdown-timeout"] + 1
    )
    pool.setServiceParent(services)  # type: ignore[no-untyped-call]
    return services, pool
