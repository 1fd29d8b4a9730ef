"""
The rolling reload: replace a pool's workers one slot at a time, each old
worker told to retire only once its replacement serves.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import LogLevel
from twisted.python.failure import Failure

from greetd.daemon.pool.logger import POOL, PinnedLogger
from greetd.daemon.pool.process import WorkerProtocol, describeExit
from greetd.daemon.pool.supervisor import Supervisor
from greetd.daemon.pool.wire import RETIRE

#: Seconds a reload waits for a replacement to say L{READY
#: <greetd.daemon.pool.wire.READY>} before it kills the replacement and
#: stops, leaving the old worker serving.
READY_TIMEOUT = 30.0


class RollingReload:
    """
    Replaces the workers of a L{Supervisor}, one slot at a time (L{reload}).

    @ivar active: Whether a reload is under way.
    @ivar again: Whether another reload was asked for meanwhile.
    @ivar slots: The slots still to replace, in order.
    @ivar replacement: The worker started for the slot being replaced,
        until it serves or ends.
    @ivar replaced: How many workers this reload has replaced.
    @ivar readyTimeout: Seconds to wait for a replacement to serve.
    """

    _log = PinnedLogger(POOL)
    replacement: WorkerProtocol | None = None

    def __init__(
        self,
        supervisor: Supervisor,
        clock: IReactorTime,
        readyTimeout: float = READY_TIMEOUT,
    ) -> None:
        self._supervisor = supervisor
        self._clock = clock
        self.readyTimeout = readyTimeout
        self._timeout: IDelayedCall | None = None
        self.active = self.again = False
        self.slots: list[int] = []
        self.replaced = 0

    def reload(self) -> None:
        """
        Replace every serving worker by a new one, running the code on disk
        now, one slot at a time: start the replacement, wait until it says
        it serves (L{READY <greetd.daemon.pool.wire.READY>}), then tell the
        old worker to retire (C{RETIRE}), and go on to the next slot.  A
        reload asked for while one runs is queued: one more reload follows
        it, however many were asked for, so that code installed during a
        reload reaches every worker.

        A replacement that cannot be started, exits before it serves or
        does not serve within L{readyTimeout} seconds (it is killed) stops
        the reload with an error: the workers not yet replaced keep
        serving.  Nothing happens while the supervisor is stopping.
        """
        if not self._supervisor.running:
            return
        if self.active:
            if not self.again:
                self._log.info(
                    "A reload is under way: another will follow it",
                    greetdEvent="reload.queued",
                )
            self.again = True
            return
        self.active = True
        self.slots = sorted(self._supervisor.workers)
        self._log.info(
            "Reloading: replacing {count} workers one at a time",
            count=len(self.slots),
            greetdEvent="reload.start",
        )
        self._replaceNext()

    def _replaceNext(self) -> None:
        while self.slots:
            slot = self.slots.pop(0)
            old = self._supervisor.workers.get(slot)
            if old is None:
                # It died meanwhile: its restart runs the new code.
                continue
            try:
                protocol = self._supervisor.startWorker(slot, replacing=old)
            except Exception:
                self._log.failure(
                    "Cannot start a replacement for worker {slot}",
                    slot=slot,
                    level=LogLevel.error,
                )
                self._failed(slot, "its replacement could not be started")
                return
            self.replacement = protocol
            self._timeout = self._clock.callLater(
                self.readyTimeout, self._notReady, protocol
            )
            return
        self._log.info(
            "Reloaded: {count} workers replaced",
            count=self.replaced,
            greetdEvent="reload.done",
        )
        self._end()

    def workerReady(self, protocol: WorkerProtocol) -> None:
        """
        C{protocol}'s worker serves: if it is the replacement, it takes its
        slot, the worker it replaces drains, and the reload goes on to the
        next slot.
        """
        if protocol is not self.replacement or not self._supervisor.running:
            return
        self._cancelTimeout()
        self.replacement = None
        self.replaced += 1
        old = self._supervisor.takeSlot(protocol)
        self._log.info(
            "Worker {slot} (pid {pid}) serves; pid {old} drains",
            slot=protocol.slot,
            pid=protocol.pid,
            old=old.pid if old is not None else None,
            greetdEvent="worker.replaced",
        )
        if old is not None:
            self._supervisor.endWorker(old, RETIRE if old.ready else "TERM")
        self._replaceNext()

    def replacementEnded(self, reason: Failure) -> None:
        """
        The replacement has ended before it served: the reload stops.
        """
        protocol = self.replacement
        assert protocol is not None
        self.replacement = None
        self._cancelTimeout()
        if self._supervisor.running:
            self._failed(
                protocol.slot,
                "its replacement (pid {pid}) ended before serving ({how})",
                pid=protocol.pid,
                how=describeExit(reason),
                exitCode=getattr(reason.value, "exitCode", None),
                signal=getattr(reason.value, "signal", None),
            )

    def _notReady(self, protocol: WorkerProtocol) -> None:
        self._timeout = None
        self.replacement = None
        self._supervisor.endWorker(protocol, "KILL")
        self._failed(
            protocol.slot,
            "its replacement (pid {pid}) did not serve within {timeout}s "
            "and was killed",
            pid=protocol.pid,
            timeout=self.readyTimeout,
        )

    def _failed(self, slot: int, why: str, **fields: Any) -> None:
        old = self._supervisor.workers.get(slot)
        self._log.error(
            "Reload stopped at worker {slot}: " + why + "; the workers not "
            "replaced yet keep serving (worker {slot}: pid {old})",
            slot=slot,
            old=old.pid if old is not None else None,
            greetdEvent="reload.failed",
            **fields,
        )
        self._end()

    def _end(self) -> None:
        again = self.again
        self.stop()
        self.replaced = 0
        if again and self._supervisor.running:
            self.reload()

    def stop(self) -> None:
        """
        Stop the reload, if one is under way, and forget any queued one; a
        replacement being started is left to the supervisor to stop.
        """
        self._cancelTimeout()
        self.active = self.again = False
        self.slots = []

    def _cancelTimeout(self) -> None:
        timeout, self._timeout = self._timeout, None
        if timeout is not None and timeout.active():
            timeout.cancel()
