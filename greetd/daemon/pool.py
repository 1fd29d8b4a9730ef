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
another pipe (L{COUNTS_FD}), so the parent's C{--metrics} serves the sums.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections import Counter
from contextlib import suppress
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Sequence

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
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from greetd.daemon.endpoints import (
    UDPServerEndpoint,
    datagramServerFromString,
    splitDescription,
)
from greetd.daemon.listening import ListeningService
from greetd.ops.metrics import GAUGES
from greetd.protocols.greeting import cancelling
from greetd.protocols.proxy import PREFIX

if TYPE_CHECKING:
    from greetd.daemon.tap import Options

#: The worker's descriptor for its counters, written once a second.
COUNTS_FD = 3

#: The first of the worker's descriptors for listening sockets.
FIRST_LISTENER_FD = 4

#: The accept queue of a TCP socket the parent binds, unless its description
#: names a C{backlog}: while a worker is being replaced the others must hold
#: the connections that arrive (the kernel caps it at C{net.core.somaxconn}).
DEFAULT_BACKLOG = 4096

#: A worker that dies within this many seconds of the same slot's previous
#: death is restarted after a back-off rather than at once.
RESTART_WINDOW = 10.0

#: The first back-off, doubled at each quick death up to L{MAX_BACKOFF}.
FIRST_BACKOFF = 0.1

#: The longest wait before restarting a worker that keeps dying.
MAX_BACKOFF = 5.0

#: What C{--tcp} takes with C{--workers}.
SHAREABLE = ("tcp", "tcp6")


def _tcp(
    kind: str, port: str, interface: str = "", backlog: str | None = None
) -> tuple[str, int, int]:
    # The arguments of Twisted's tcp: and tcp6: endpoints, with its defaults.
    if kind == "tcp6" and not interface:
        interface = "::"
    return interface, int(port), int(backlog) if backlog else DEFAULT_BACKLOG


def checkShareable(description: str) -> tuple[str, int, int]:
    """
    The interface, port and backlog of a C{--tcp} description that the
    parent can bind for its workers: C{tcp:} or C{tcp6:}, optionally behind
    C{haproxy:}.

    @raise ValueError: For any other kind of endpoint.
    """
    args, kwargs = splitDescription(description.removeprefix(PREFIX))
    if args[0] not in SHAREABLE:
        raise ValueError(
            "not supported with --workers (only tcp:, tcp6: and haproxy:tcp...)"
        )
    return _tcp(*args, **kwargs)


def checkShareableDatagram(reactor: Any, description: str) -> tuple[str, int, int]:
    """
    The interface and port (and a backlog of 0) of a C{--udp} description
    that the parent can bind for its workers: C{udp:} only (C{haproxy:} in
    front of it too).

    @raise ValueError: For any other kind of endpoint, or a bad C{udp:} one.
    """
    args, _ = splitDescription(description.removeprefix(PREFIX))
    if args[0] != "udp":
        raise ValueError("not supported with --workers (only udp:)")
    endpoint = datagramServerFromString(reactor, description)
    assert isinstance(endpoint, UDPServerEndpoint)
    return endpoint.interface, endpoint.port, 0


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


def bindShared(kind: str, interface: str, port: int, backlog: int) -> SharedSocket:
    """
    Bind a socket for workers to share, as Twisted's own ports would
    (C{SO_REUSEADDR} for TCP, IPv6 when the interface is an IPv6 address).

    @param kind: C{"TCP"} or C{"UDP"}.
    @raise CannotListenError: If it cannot be bound.
    """
    family = socket.AF_INET6 if isIPv6Address(interface) else socket.AF_INET
    tcp = kind == "TCP"
    sock = socket.socket(family, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
    try:
        if tcp:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((interface, port))
        if tcp:
            sock.listen(backlog)
    except OSError as error:
        sock.close()
        raise CannotListenError(interface, port, error) from None
    sock.setblocking(False)
    return SharedSocket(sock, kind)


def listenShared(
    kind: str, interface: str, port: int, backlog: int
) -> Deferred[IListeningPort]:
    """
    L{bindShared}, as a L{ListeningService} listens.
    """
    return execute(bindShared, kind, interface, port, backlog)


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
    slot: int, inherited: dict[str, list[int]], arguments: Sequence[str]
) -> list[str]:
    """
    The command line of worker C{slot}: this interpreter running
    L{greetd.daemon.worker} with the parent's own greetd C{arguments}.
    """
    return [
        sys.executable,
        "-m",
        "greetd.daemon.worker",
        f"--slot={slot}",
        f"--inherited={formatInherited(inherited)}",
        "--",
        *arguments,
    ]


class WorkerProtocol(ProcessProtocol):
    """
    The parent's end of one worker: reads its counters and tells the pool
    when it ends.

    @ivar pool: The L{WorkerPool} it belongs to.
    @ivar slot: Which worker this is, from 1: a replacement takes the slot
        of the worker it replaces, so logs stay readable.
    @ivar pid: The worker's process id, once spawned.
    @ivar counts: The last counters the worker reported.
    """

    _log = Logger()
    pid: int | None = None

    def __init__(self, pool: WorkerPool, slot: int) -> None:
        self.pool = pool
        self.slot = slot
        self.counts: Counter[str] = Counter()
        self._buffer = b""

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD != COUNTS_FD:
            return
        *lines, self._buffer = (self._buffer + data).split(b"\n")
        if lines:
            try:
                self.counts = Counter(json.loads(lines[-1]))
            except ValueError:
                self._log.warn("Worker {slot} sent unreadable counts", slot=self.slot)

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
    parent spin).  Stopping the pool stops every worker: SIGTERM, which
    drains it, then SIGKILL for any still running after C{stopTimeout}.

    @ivar count: How many workers to run.
    @ivar workers: The running workers, by slot.
    @ivar retired: The counters of workers that have ended, so that summed
        counters never go backwards when a worker is replaced.
    """

    _log = Logger()

    def __init__(
        self, count: int, spawn: Spawn, clock: IReactorTime, stopTimeout: float
    ) -> None:
        self.count = count
        self._spawn = spawn
        self._clock = clock
        self.stopTimeout = stopTimeout
        self.workers: dict[int, WorkerProtocol] = {}
        self.retired: Counter[str] = Counter()
        self._backoff: dict[int, float] = {}
        self._lastDeath: dict[int, float] = {}
        self._restarts: dict[int, IDelayedCall] = {}
        self._stopped: list[Deferred[None]] = []

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

    def workerEnded(self, protocol: WorkerProtocol, reason: Failure) -> None:
        """
        Forget a worker that has ended and, unless stopping, replace it.
        """
        slot = protocol.slot
        if self.workers.get(slot) is protocol:
            del self.workers[slot]
        for name, count in protocol.counts.items():
            if name not in GAUGES:
                self.retired[name] += count
        if not self.running:
            if not self.workers:
                stopped, self._stopped = self._stopped, []
                for waiting in stopped:
                    waiting.callback(None)
            return
        self._log.warn(
            "Worker {slot} (pid {pid}) died (exit code {exitCode}, signal {signal})",
            slot=slot,
            pid=protocol.pid,
            exitCode=getattr(reason.value, "exitCode", None),
            signal=getattr(reason.value, "signal", None),
            greetdEvent="worker.died",
        )
        self._restart(slot)

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

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        for call in self._restarts.values():
            call.cancel()
        self._restarts.clear()
        if not self.workers:
            return succeed(None)
        stopped: Deferred[None] = Deferred()
        self._stopped.append(stopped)
        self._signalAll("TERM")
        kill = self._clock.callLater(self.stopTimeout, self._signalAll, "KILL")
        return stopped.addBoth(cancelling, kill)

    def _signalAll(self, signal: str) -> None:
        for protocol in list(self.workers.values()):
            transport = protocol.transport
            if transport is None:
                continue
            if signal == "KILL":
                self._log.warn(
                    "Killing worker {slot} (pid {pid}), still running",
                    slot=protocol.slot,
                    pid=protocol.pid,
                )
            with suppress(ProcessExitedAlready):
                transport.signalProcess(signal)

    def alive(self) -> int:
        """
        How many workers are running now.
        """
        return len(self.workers)

    def counts(self) -> Counter[str]:
        """
        The counters of every worker, summed, with those of ended workers.
        """
        total = Counter(self.retired)
        for protocol in self.workers.values():
            total.update(protocol.counts)
        return total


def spawnWorker(
    reactor: Any,
    arguments: Sequence[str],
    listeners: dict[str, list[ListeningService]],
    slot: int,
    protocol: WorkerProtocol,
) -> IProcessTransport:
    """
    Start worker C{slot} with the parent's bound sockets as descriptors
    from L{FIRST_LISTENER_FD} on; standard input is the pipe whose end of
    file tells it the parent is gone, and L{COUNTS_FD} the counters' pipe.
    """
    childFDs: dict[int, int | str] = {0: "w", 1: 1, 2: 2, COUNTS_FD: "r"}
    inherited: dict[str, list[int]] = {}
    fd = FIRST_LISTENER_FD
    for kind, services in listeners.items():
        for service in services:
            port = service.port
            assert isinstance(port, SharedSocket), "not bound yet"
            childFDs[fd] = port.fileno()
            inherited.setdefault(kind, []).append(fd)
            fd += 1
    command = workerCommand(slot, inherited, arguments)
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
    listeners: dict[str, list[ListeningService]] = {"tcp": [], "udp": []}
    for description in options["tcp"]:
        bind = partial(listenShared, "TCP", *checkShareable(description))
        listeners["tcp"].append(ListeningService("TCP", description, bind))
    for description in options["udp"]:
        where = checkShareableDatagram(reactor, description)
        bind = partial(listenShared, "UDP", *where)
        listeners["udp"].append(ListeningService("UDP", description, bind))
    for service in listeners["tcp"] + listeners["udp"]:
        service.setServiceParent(services)  # type: ignore[no-untyped-call]
    spawn = partial(spawnWorker, reactor, options.arguments, listeners)
    pool = WorkerPool(
        options["workers"], spawn, reactor, options["shutdown-timeout"] + 1
    )
    pool.setServiceParent(services)  # type: ignore[no-untyped-call]
    return services, pool
