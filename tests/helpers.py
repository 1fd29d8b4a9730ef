"""
Shared test helpers: in-memory connections, captured log events, parsed
options, fake worker processes and a pool of them, and scraped metrics.
"""

from __future__ import annotations

import io
import os
import socket
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import tcp
from twisted.internet.address import IPv4Address
from twisted.internet.error import (
    ProcessExitedAlready,
    ProcessTerminated,
)
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import DatagramProtocol, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import (
    MemoryReactor,
    MemoryReactorClock,
    StringTransportWithDisconnection,
)
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from greetd.client.options import Options, parse
from greetd.core.accessline import NAMESPACE
from greetd.daemon.options import Options as DaemonOptions
from greetd.daemon.pool.process import WorkerProtocol
from greetd.daemon.pool.reload import RollingReload
from greetd.daemon.pool.service import WorkerPool
from greetd.ops.metrics import GreetdCollector, MetricsResource, metricsSite
from greetd.protocols.accesslog import LoggerAccessLog
from greetd.protocols.datagram import ReplyProtocol
from greetd.protocols.greeter import GreetingProtocol
from greetd.protocols.greeting import GreetingFactory
from tests.documents import blocks

#: epoll's flag for a registration that wakes one of the processes waiting
#: on its file, not all of them (C{linux/eventpoll.h}).
EPOLLEXCLUSIVE = 1 << 28


def epollRegistrations(pid: int | str = "self") -> list[tuple[int, int, int]]:
    """
    Every registration of every epoll object process C{pid} holds, from
    C{/proc}: the descriptor registered, its events, and the inode of the
    file it is open on (the same in every process that shares the file).
    """
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:[eventpoll]":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                lines = info.read().splitlines()
        except OSError:
            continue  # Closed meanwhile.
        for line in lines:
            if line.startswith("tfd:"):
                fields = line.split()
                inode = next(f for f in fields if f.startswith("ino:"))
                found.append((int(fields[1]), int(fields[3], 16), int(inode[4:], 16)))
    return found


#: A peer from the documentation range, as tests' client.
PEER = IPv4Address("TCP", "192.0.2.7", 40001)


class AbortableTransport(StringTransportWithDisconnection):
    """
    A L{StringTransportWithDisconnection} that tells an abort from a close,
    and can shut its sending side (L{ITCPTransport.loseWriteConnection}).

    @ivar aborted: Whether C{abortConnection} was called.
    @ivar writeClosed: Whether C{loseWriteConnection} was called.
    """

    aborted = False
    writeClosed = False

    def loseWriteConnection(self) -> None:
        self.writeClosed = True

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


def connect(
    factory: GreetingFactory, peer: IAddress = PEER
) -> tuple[GreetingProtocol, AbortableTransport]:
    """
    Connect a new protocol from C{factory} to an in-memory transport.
    """
    transport = AbortableTransport(peerAddress=peer)
    protocol = factory.buildProtocol(peer)
    assert isinstance(protocol, GreetingProtocol)
    transport.protocol = protocol
    protocol.makeConnection(transport)
    return protocol, transport


def captureLogs(case: SynchronousTestCase, *owners: type) -> list[dict[str, Any]]:
    """
    Send the events of each of C{owners}' class-level C{_log} to one list,
    for the length of the test.
    """
    events: list[dict[str, Any]] = []
    for owner in owners:
        case.patch(owner, "_log", Logger(observer=events.append))
    return events


class FakeDatagramPort:
    """
    The port L{MemoryUDPReactor.listenUDP} returns.

    @ivar listening: Whether L{stopListening} has not been called yet.
    """

    def __init__(self, port: int, interface: str) -> None:
        self._address = IPv4Address("UDP", interface or "0.0.0.0", port)
        self.listening = True

    def getHost(self) -> IPv4Address:
        return self._address

    def stopListening(self) -> None:
        self.listening = False


class MemoryUDPReactor(MemoryReactorClock):
    """
    A L{MemoryReactorClock} that also records C{listenUDP} calls, as
    C{(port, protocol, interface, maxPacketSize)} in C{udpServers}, or
    raises C{udpListenError} when set.
    """

    udpListenError: Exception | None = None

    def __init__(self) -> None:
        super().__init__()
        self.udpServers: list[tuple[int, DatagramProtocol, str, int]] = []

    def listenUDP(
        self,
        port: int,
        protocol: DatagramProtocol,
        interface: str = "",
        maxPacketSize: int = 8192,
    ) -> FakeDatagramPort:
        if self.udpListenError is not None:
            raise self.udpListenError
        self.udpServers.append((port, protocol, interface, maxPacketSize))
        return FakeDatagramPort(port, interface)


def capturingAccessLog() -> tuple[LoggerAccessLog, list[dict[str, Any]]]:
    """
    An access log whose events go to a list, and the list.
    """
    events: list[dict[str, Any]] = []
    log = Logger(namespace=NAMESPACE, observer=events.append)
    return LoggerAccessLog(log), events


def parsed(*argv: str) -> Options:
    """
    The options C{greet} parses from C{argv}, which must be valid.
    """
    options = parse(argv, io.StringIO(), io.StringIO())
    assert isinstance(options, Options), options
    return options


def closeEvent(**fields: object) -> dict[str, Any]:
    """
    A connection.close event as L{greetd.protocols.greeting} logs it.
    """
    event: dict[str, Any] = {
        "log_time": 1700000000.25,
        "log_level": LogLevel.info,
        "log_namespace": "greetd.protocols.greeting.GreetingProtocol",
        "log_format": "Connection from {peer} closed: {messages} messages",
        "peer": "192.0.2.7:40001",
        "messages": 3,
        "greetdEvent": "connection.close",
    }
    event.update(fields)
    return event


def legacyEvent(text: str) -> dict[str, Any]:
    """
    An event from C{twisted.python.log.msg(text)}, as observers see it.
    """
    return {
        "log_namespace": "log_legacy",
        "log_level": LogLevel.info,
        "log_format": "{log_text}",
        "log_text": text,
        "log_time": 1700000000.25,
        "log_system": "-",
        "message": (text,),
    }


def daemonOptions(*argv: str) -> DaemonOptions:
    """
    The options C{twistd greetd} parses from C{argv}, which must be valid.
    """
    options = DaemonOptions()
    options.parseOptions(list(argv))
    return options


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


def scrape(
    collector: GreetdCollector,
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """
    Render C{/metrics} as Prometheus would fetch it, and parse it back.
    """
    site = metricsSite(collector)
    request = DummyRequest([b"metrics"])
    resource = site.getResourceFor(request)
    assert isinstance(resource, MetricsResource)
    body = resource.render_GET(request)  # type: ignore[arg-type]
    assert request.responseHeaders.getRawHeaders(b"content-type")[0].startswith(
        b"text/plain"
    )
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


class PoolCase(SynchronousTestCase):
    """
    A L{WorkerPool} of two fake workers on a fake clock.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.spawned: list[tuple[int, WorkerProtocol, FakeProcess]] = []
        self.pool = WorkerPool(2, self.spawn, self.clock, stopTimeout=6.0)
        self.events = captureLogs(self, WorkerPool, RollingReload)

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


class RecordingDatagramTransport:
    """
    Records what a L{ReplyProtocol} sends, or fails as told.

    @ivar sent: C{(datagram, address)} pairs, in order.
    @ivar error: Raised by L{write} when set.
    """

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.error: Exception | None = None

    def write(self, datagram: bytes, address: tuple[str, int]) -> None:
        if self.error is not None:
            raise self.error
        self.sent.append((datagram, address))


def listening(
    protocol: ReplyProtocol,
) -> tuple[ReplyProtocol, RecordingDatagramTransport]:
    transport = RecordingDatagramTransport()
    protocol.makeConnection(transport)  # type: ignore[arg-type]
    return protocol, transport


SOCKET_PEER = ("127.0.0.1", 40000)


def serverConnection(case: SynchronousTestCase) -> tuple[tcp.Server, socket.socket]:
    """
    A C{tcp.Server} on one end of a socket pair, and the other end.
    """
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.settimeout(5)
    reactor = MemoryReactor()
    server = tcp.Server(ours, Protocol(), SOCKET_PEER, None, 1, reactor)  # type: ignore[arg-type]
    case.addCleanup(ours.close)
    case.addCleanup(theirs.close)
    return server, theirs


class FakeConnection:
    closing = False
    closingAt = 0.0
    writeMark = 0
    writeProgressAt = 0.0
    owed = 0
    stalled = 0

    def __init__(self, lastMessageAt: float) -> None:
        self.lastMessageAt = lastMessageAt
        self.timedOut = 0

    def unsent(self) -> int:
        return self.owed

    def writeTimedOut(self) -> None:
        self.stalled += 1
        self.closing = True

    def idleTimedOut(self) -> None:
        self.timedOut += 1
        self.closing = True

    def close(self) -> None:
        self.closing = True

    def shutdown(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True


PYTHON = ".. code-block:: python\n"


def pythonBlocks(path: Path) -> list[str]:
    """
    The bodies of C{path}'s C{code-block:: python} directives, dedented.
    """
    return blocks(path.read_text(), PYTHON)


def oneTurn(clock: Clock) -> None:
    """
    Run the calls C{clock} has due now, as one iteration of a real reactor
    does: not those they schedule in turn (which L{Clock.advance} would
    run too).
    """
    now = clock.seconds()
    for call in [c for c in clock.getDelayedCalls() if c.getTime() <= now]:
        clock.calls.remove(call)
        call.func(*call.args, **call.kw)
