"""
The parent's services for C{--workers N}: the shared sockets, bound, and
the L{WorkerPool} that keeps N workers serving them and replaces them on
a reload.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from greetd.daemon.listening import ListeningService
from greetd.daemon.options import Options
from greetd.daemon.pool.process import Spawn, WorkerProtocol, spawnWorker
from greetd.daemon.pool.reload import READY_TIMEOUT, RollingReload
from greetd.daemon.pool.sockets import listenShared
from greetd.daemon.pool.supervisor import Supervisor


class WorkerPool(Supervisor):
    """
    A L{Supervisor} of C{count} workers that L{reload} replaces, one at a
    time, without refusing a connection (L{RollingReload}).

    @ivar readyTimeout: Seconds a reload waits for a replacement to serve.
    """

    def __init__(
        self,
        count: int,
        spawn: Spawn,
        clock: IReactorTime,
        stopTimeout: float,
        readyTimeout: float = READY_TIMEOUT,
    ) -> None:
        super().__init__(count, spawn, clock, stopTimeout)
        self._reload = RollingReload(self, clock, readyTimeout)

    @property
    def readyTimeout(self) -> float:
        return self._reload.readyTimeout

    def reload(self) -> None:
        """
        Replace every worker, one slot at a time: L{RollingReload.reload}.
        """
        self._reload.reload()

    @property
    def reloading(self) -> bool:
        """
        Whether a reload is under way.
        """
        return self._reload.active

    def _unslotted(self) -> list[WorkerProtocol]:
        replacement = self._reload.replacement
        return [] if replacement is None else [replacement]

    def _unslottedEnded(self, protocol: WorkerProtocol, reason: Failure) -> None:
        self._reload.replacementEnded(reason)

    def workerReady(self, protocol: WorkerProtocol) -> None:
        self._reload.workerReady(protocol)

    def stopService(self) -> Deferred[None]:
        # A replacement being started is stopped with the others (_live).
        self._reload.stop()
        return super().stopService()


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
        log=options["log"],
    )
    pool = WorkerPool(
        options["workers"], spawn, reactor, options["shutdown-timeout"] + 1
    )
    pool.setServiceParent(services)  # type: ignore[no-untyped-call]
    return services, pool
