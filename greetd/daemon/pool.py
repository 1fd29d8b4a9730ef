"""
C{--workers N}: one parent process binds every listening socket and runs N
worker processes that all serve them.

The parent binds with the C{socket} module and never accepts: each socket
has one accept queue (or one receive queue, for UDP) that every worker
reads from, so when a worker dies the connections still waiting in the
queue are accepted by the others.  C{SO_REUSEPORT} would give each worker
a queue of its own, and a worker's death would reset what was queued on it.

Each worker (L{greetd.daemon.worker}) is C{python -m greetd.daemon.worker}, given the
parent's own greetd arguments and the listening sockets as inherited file
descriptors.  Its standard input is a pipe from the parent that the parent
never writes: end of file there means the parent is gone, and the worker
drains and exits.  It writes its counters to the parent once a second over
another pipe (L{COUNTS_FD}), so the parent's C{--metrics} serves the sums,
and its log to standard output, a pipe too, which the parent relays to its
own log (L{greetd.ops.relay}).

A reload (L{WorkerPool.reload}, on C{SIGHUP} to the parent) replaces the
workers one slot at a time, as nginx and gunicorn do: a new worker, running
the code on disk now, says L{READY} on its counters' pipe once it serves
every listener, and only then is the worker it replaces told to retire
(L{RETIRE}).  The shared accept queues never lack a reader, so no
connection is refused, and the retiring worker lets the sessions it holds
end by themselves.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from collections import Counter
from contextlib import suppress
from functools import partial
from typing import Any, Callable, Sequence

from twisted.application.service import MultiService, Service
from twisted.internet.abstract import isIPv6Address
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, execute, succeed
from twisted.internet.error import CannotListenError, ProcessExitedAlready
from twisted.internet.interfaces import (
    IDelayedCall,
    IListeningPort,
    IProcessTransport,
    IReactorTime,
)
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from greetd.core.counters import retire, sumCounts
from greetd.daemon.listening import ListeningService
from greetd.daemon.options import Options
from greetd.daemon.plan import Address
from greetd.ops.relay import LogRelay
from greetd.protocols.drain import cancelling

#: The worker's descriptor for its counters, written once a second.
COUNTS_FD = 3

#: The first of the worker's descriptors for listening sockets.
FIRST_LISTENER_FD = 4

#: A worker that dies within this many seconds of the same slot's previous
#: death is restarted after a back-off rather than at once.
RESTART_WINDOW = 10.0

#: The first back-off, doubled at each quick death up to L{MAX_BACKOFF}.
FIRST_BACKOFF = 0.1

#: The longest wait before restarting a worker that keeps dying.
MAX_BACKOFF = 5.0

#: The line a worker writes on L{COUNTS_FD} once it serves every listener
#: (its counters are the other lines, JSON objects).
READY = b"ready"

#: Seconds a reload waits for a replacement to say L{READY} before it kills
#: the replacement and stops, leaving the old worker serving.
READY_TIMEOUT = 30.0

#: The signal a reload sends the worker it has replaced (nginx's graceful
#: shutdown signal): stop listening and let each connection end by itself,
#: for up to C{--shutdown-timeout} seconds, then drain as on SIGTERM, which
#: closes connections as soon as their owed replies are written.  A worker
#: installs its handler before it says L{READY}; one that has not said it
#: is sent SIGTERM instead.  (A number: Twisted's C{signalProcess} knows
#: only a few signals by name.)
RETIRE = signal.SIGQUIT


@implementer(IListeningPort)
class SharedSocket:
    """
    A listening socket the parent holds for its workers and never reads:
    the L{IListeningPort} a L{ListeningService} logs and closes.

    @ivar socket: The bound socket, non-blocking, listening if TCP.
    @ivar kind: C{"TCP"} or C{"UDP"}, for its address.
    """

    def __init__(self, sock: socket.socket, kind: str) -> None:
        self.socket = sock
        self.kind = kind

    def fileno(self) -> int:
        return self.socket.fileno()

    def startListening(self) -> None:
        pass

    def stopListening(self) -> None:
        self.socket.close()

    def getHost(self) -> IPv4Address | IPv6Address:
        host, port = self.socket.getsockname()[:2]
        if self.socket.family == socket.AF_INET6:
            return IPv6Address(self.kind, host, port)  # type: ignore[arg-type]
        return IPv4Address(self.kind, host, port)  # type: ignore[arg-type]


def bindShared(kind: str, address: Address) -> SharedSocket:
    """
    Bind a socket for workers to share, as Twisted's own ports would
    (C{SO_REUSEADDR} for TCP, IPv6 when the interface is an IPv6 address).

    @param kind: C{"TCP"} or C{"UDP"}.
    @param address: Where to bind it.
    @raise CannotListenError: If it cannot be bound.
    """
    interface, port = address.interface, address.port
    family = socket.AF_INET6 if isIPv6Address(interface) else socket.AF_INET
    tcp = kind == "TCP"
    sock = socket.socket(family, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
    try:
        if tcp:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((interface, port))
        if tcp:
            sock.listen(address.backlog)
    except OSError as error:
        sock.close()
        raise CannotListenError(interface, port, error) from None
    sock.setblocking(False)
    return SharedSocket(sock, kind)


def listenShared(kind: str, address: Address | None) -> Deferred[IListeningPort]:
    """
    L{bindShared}, as a L{ListeningService} listens.
    """
    assert address is not None, "the options admit shareable listeners only"
    return execute(bindShared, kind, address)


def formatInherited(inherited: dict[str, list[int]]) -> str:
    """
    C{{"tcp": [4, 5], "udp": [6]}} as C{tcp=4,tcp=5,udp=6}: which inherited
    descriptor serves which C{--tcp} and C{--udp} option, in order.
    """
    return ",".join(
        f"{kind}={fd}" for kind in ("tcp", "udp") for fd in inherited.get(kind, [])
    )


def parseInherited(text: str) -> dict[str, list[int]]:
    """
    The inverse of L{formatInherited}.

    @raise ValueError: If C{text} is not in its format.
    """
    inherited: dict[str, list[int]] = {"tcp": [], "udp": []}
    for item in filter(None, text.split(",")):
        kind, _, fd = item.partition("=")
        if kind not in inherited:
            raise ValueError(f"unknown listener kind {kind!r}")
        inherited[kind].append(int(fd))
    return inherited


def workerCommand(
    slot: int,
    inherited: dict[str, list[int]],
    arguments: Sequence[str],
    reactor: str | None = None,
) -> list[str]:
    """
    The command line of worker C{slot}: this interpreter running
    L{greetd.daemon.worker} with the parent's own greetd C{arguments}, on
    the reactor plugin named C{reactor} (Twisted's default for C{None}).
    """
    return [
        sys.executable,
        "-m",
        "greetd.daemon.worker",
        f"--slot={slot}",
        f"--inherited={formatInherited(inherited)}",
        *([] if reactor is None else [f"--reactor={reactor}"]),
        "--",
        *arguments,
    ]


class WorkerProtocol(ProcessProtocol):
    """
    The parent's end of one worker: reads its counters, relays its log and
    tells the pool when it ends.

    @ivar pool: The L{WorkerPool} it belongs to.
    @ivar slot: Which worker this is, from 1: a replacement takes the slot
        of the worker it replaces, so logs stay readable.
    @ivar pid: The worker's process id, once spawned.
    @ivar counts: The last counters the worker reported.
    @ivar ready: Whether the worker has said L{READY}: it serves.
    """

    _log = Logger()
    pid: int | None = None
    ready = False

    def __init__(self, pool: WorkerPool, slot: int) -> None:
        self.pool = pool
        self.slot = slot
        self.counts: Counter[str] = Counter()
        self._buffer = b""
        self._logs: dict[int, LogRelay] = {}

    def connectionMade(self) -> None:
        pid = getattr(self.transport, "pid", None)
        self._logs = {
            1: LogRelay(self.slot, pid),
            2: LogRelay(self.slot, pid, LogLevel.error),
        }

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD in self._logs:
            self._logs[childFD].dataReceived(data)
        if childFD != COUNTS_FD:
            return
        *lines, self._buffer = (self._buffer + data).split(b"\n")
        reports = [line for line in lines if line != READY]
        if reports:
            try:
                self.counts = Counter(json.loads(reports[-1]))
            except ValueError:
                self._log.warn("Worker {slot} sent unreadable counts", slot=self.slot)
        if len(reports) < len(lines) and not self.ready:
            self.ready = True
            self.pool.workerReady(self)

    def childConnectionLost(self, childFD: int) -> None:
        if childFD in self._logs:
            self._logs[childFD].connectionLost()

    def processEnded(self, reason: Failure) -> None:
        self.pool.workerEnded(self, reason)


#: Starts a worker process for a slot, connected to the protocol.
Spawn = Callable[[int, WorkerProtocol], IProcessTransport]


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

    _log = Logger()

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


def spawnWorker(
    reactor: Any,
    arguments: Sequence[str],
    listeners: dict[str, list[ListeningService]],
    slot: int,
    protocol: WorkerProtocol,
    *,
    reactorName: str | None = None,
) -> IProcessTransport:
    """
    Start worker C{slot}, on the reactor plugin C{reactorName} (Twisted's
    default for C{None}), with the parent's bound sockets as descriptors
    from L{FIRST_LISTENER_FD} on; standard input is the pipe whose end of
    file tells it the parent is gone, standard output and error pipes
    whose lines the parent logs, and L{COUNTS_FD} the counters' pipe.
    """
    childFDs: dict[int, int | str] = {0: "w", 1: "r", 2: "r", COUNTS_FD: "r"}
    inherited: dict[str, list[int]] = {}
    fd = FIRST_LISTENER_FD
    for kind, services in listeners.items():
        for service in services:
            port = service.port
            assert isinstance(port, SharedSocket), "not bound yet"
            childFDs[fd] = port.fileno()
            inherited.setdefault(kind, []).append(fd)
            fd += 1
    command = workerCommand(slot, inherited, arguments, reactorName)
    return reactor.spawnProcess(  # type: ignore[no-any-return]
        protocol, command[0], command, env=os.environ, childFDs=childFDs
    )


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
