"""
Tests for L{greetd.daemon.worker}: its options, adoption of the inherited
sockets, and what it tells its parent.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.error import CannotListenError
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from greetd.daemon.build import Servers, buildServers
from greetd.daemon.listening import ListeningService
from greetd.daemon.options import Options
from greetd.daemon.pool import (
    READY,
    SharedSocket,
)
from greetd.daemon.single import serve
from greetd.daemon.worker import (
    REPORT_INTERVAL,
    RETIRE_POLL,
    CountsReporter,
    ParentWatcher,
    WorkerOptions,
    adopt,
    announceReady,
    retire,
)
from greetd.protocols.greeting import GreetingFactory
from greetd.protocols.proxy import ProxyHeaderFactory
from greetd.protocols.tls import HandshakeGateFactory
from tests.certificates import temporaryCredentials
from tests.helpers import EPOLLEXCLUSIVE, daemonOptions, epollRegistrations


class Adopter(Clock):
    """
    A reactor that records what is adopted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.adopted: list[tuple[Any, ...]] = []
        self.timeouts: list[float | None] = []

    def adoptStreamPort(self, *args: Any) -> Any:
        self.adopted.append(args)
        self.timeouts.append(socket.getdefaulttimeout())
        return self

    def adoptDatagramPort(self, *args: Any) -> Any:
        self.adopted.append(args)
        self.timeouts.append(socket.getdefaulttimeout())
        return self

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 1)


def adoptAll(
    options: Options, sockets: list[socket.socket]
) -> tuple[Adopter, Servers, list[int]]:
    """
    Serve C{options} as a worker does, on duplicates of C{sockets} (closed
    here), TCP ones first: the reactor, the servers and the descriptors.
    """
    fds = [os.dup(sock.fileno()) for sock in sockets]
    for sock in sockets:
        sock.close()
    tcp = len(options["plan"].tcp)
    reactor = Adopter()
    servers = buildServers(options, reactor)
    inherited = {"tcp": fds[:tcp], "udp": fds[tcp:]}
    services = serve(
        options["plan"],
        servers,
        lambda *args: adopt(reactor, inherited, *args),
        5.0,
        0,
    )
    services.startService()
    return reactor, servers, fds


class BuilderTests(SynchronousTestCase):
    """
    One builder serves the daemon and the workers alike.
    """

    def test_workerAdopts(self) -> None:
        """
        A worker adopts the inherited descriptors in option order, with the
        same factory for every TCP socket and the PROXY wrapper where asked,
        and closes the inherited descriptors (the reactor has duplicates).
        """
        options = daemonOptions(
            "--tcp", "tcp:0", "--tcp", "haproxy:tcp:0", "--udp", "udp:0",
            "--max-length", "9",
        )  # fmt: skip
        sockets = [socket.socket(), socket.socket(socket.AF_INET6)]
        sockets.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        reactor, servers, fds = adoptAll(options, sockets)
        [plain, proxied, datagram] = reactor.adopted
        self.assertEqual(plain, (fds[0], socket.AF_INET, servers.factory))
        self.assertEqual(proxied[:2], (fds[1], socket.AF_INET6))
        self.assertIsInstance(proxied[2], ProxyHeaderFactory)
        self.assertIs(proxied[2].wrappedFactory, servers.factory)
        self.assertEqual(datagram, (fds[2], socket.AF_INET, servers.replies[0], 10))
        for fd in fds:
            self.assertRaises(OSError, os.fstat, fd)
        # The socket objects Twisted makes leave the shared sockets
        # non-blocking (PyPy would make them blocking by default).
        self.assertEqual(reactor.timeouts, [0.0] * 3)
        self.assertIsNone(socket.getdefaulttimeout())

    def test_workerServesTLS(self) -> None:
        """
        A worker serves an C{ssl:} listener's TLS on the inherited socket,
        after the PROXY header when there is one, as the daemon does.
        """
        _, key, certificate = temporaryCredentials(self)
        tls = f"ssl:0:privateKey={key}:certKey={certificate}"
        options = daemonOptions("--no-udp", "--tcp", tls, "--tcp", f"haproxy:{tls}")
        reactor, servers, _ = adoptAll(options, [socket.socket(), socket.socket()])
        [plain, proxied] = [adopted[2] for adopted in reactor.adopted]
        self.assertIsInstance(plain, TLSMemoryBIOFactory)
        self.assertIsInstance(plain.wrappedFactory, HandshakeGateFactory)
        self.assertIs(plain.wrappedFactory.wrappedFactory, servers.factory)
        # The PROXY header comes before TLS, as HAProxy sends it.
        self.assertIsInstance(proxied, ProxyHeaderFactory)
        self.assertIsInstance(proxied.wrappedFactory, TLSMemoryBIOFactory)
        gate = proxied.wrappedFactory.wrappedFactory
        self.assertIsInstance(gate, HandshakeGateFactory)
        self.assertIs(gate.wrappedFactory, servers.factory)


class SharedWakeupTests(SynchronousTestCase):
    def test_oneWorkerWoken(self) -> None:
        """
        On an epoll reactor, a worker registers every socket it adopts with
        C{EPOLLEXCLUSIVE}: a connection or a datagram on a socket that all
        the workers wait on wakes one of them, not every one.
        """
        reactor = EPollReactor()
        self.addCleanup(reactor._poller.close)
        self.addCleanup(reactor.waker.connectionLost, None)
        options = daemonOptions("--tcp", "tcp:0", "--udp", "udp:0")
        listening = socket.socket()
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        datagrams = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        datagrams.bind(("127.0.0.1", 0))
        inodes = {os.fstat(sock.fileno()).st_ino for sock in (listening, datagrams)}
        fds = {"tcp": [os.dup(listening.fileno())], "udp": [os.dup(datagrams.fileno())]}
        listening.close()
        datagrams.close()
        servers = buildServers(options, reactor)
        services = serve(
            options["plan"], servers, lambda *a: adopt(reactor, fds, *a), 5.0, 0
        )
        services.startService()

        def closePorts() -> None:
            for port in reactor.removeAll():
                port.socket.close()

        self.addCleanup(closePorts)
        wanted = select.EPOLLIN | EPOLLEXCLUSIVE
        shared = [
            events & wanted
            for _, events, inode in epollRegistrations()
            if inode in inodes
        ]
        self.assertEqual(shared, [wanted, wanted])


class WorkerProcessTests(SynchronousTestCase):
    def test_parentWatcher(self) -> None:
        """
        L{ParentWatcher} ignores data and reports the pipe's end of file.
        """
        readEnd, writeEnd = os.pipe()
        self.addCleanup(os.close, readEnd)
        lost: list[bool] = []
        watcher = ParentWatcher(
            MemoryReactorClock(), readEnd, lambda: lost.append(True)
        )
        self.assertIsNone(watcher.doRead())
        os.write(writeEnd, b"x")
        self.assertIsNone(watcher.doRead())
        os.close(writeEnd)
        result = watcher.doRead()
        assert isinstance(result, Failure)
        watcher.connectionLost(result)
        self.assertEqual(lost, [True])

    def test_announceReady(self) -> None:
        """
        A worker says L{READY} once every listener listens, not before.
        """
        readEnd, writeEnd = os.pipe()
        self.addCleanup(os.close, readEnd)
        self.addCleanup(os.close, writeEnd)
        os.set_blocking(readEnd, False)
        listening: list[Deferred[Any]] = []

        def listen() -> Deferred[Any]:
            listening.append(Deferred())
            return listening[-1]

        services = MultiService()
        for kind in ("TCP", "UDP"):
            service = ListeningService(kind, kind, listen)
            service.setServiceParent(services)  # type: ignore[no-untyped-call]
        services.startService()
        announceReady(services, writeEnd)
        listening[0].callback(SharedSocket(socket.socket(), "TCP"))
        self.assertRaises(BlockingIOError, os.read, readEnd, 100)
        port = SharedSocket(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), "UDP")
        listening[1].callback(port)
        self.assertEqual(os.read(readEnd, 100), READY + b"\n")
        for sharedSocket in services:
            sharedSocket.port.stopListening()  # type: ignore[attr-defined]

    def test_announceNotReady(self) -> None:
        """
        A listener that fails once started fails the announcement, which
        the worker exits on, and L{READY} is never written.
        """
        readEnd, writeEnd = os.pipe()
        self.addCleanup(os.close, readEnd)
        self.addCleanup(os.close, writeEnd)
        os.set_blocking(readEnd, False)
        listening: Deferred[Any] = Deferred()
        services = MultiService()
        service = ListeningService("TCP", "pending:1", lambda: listening)
        service.setServiceParent(services)  # type: ignore[no-untyped-call]
        services.startService()
        announcing = announceReady(services, writeEnd)
        listening.errback(CannotListenError("", 1, OSError(98, "in use")))
        self.failureResultOf(announcing)
        self.assertRaises(BlockingIOError, os.read, readEnd, 100)

    def retiring(self, connections: set[object]) -> tuple[Any, MultiService]:
        """
        A worker's listening service, started, and a reactor that records
        its stops, then L{retire} with a grace of 5 seconds.
        """

        class Reactor(Clock):
            stops = 0

            def stop(self) -> None:
                self.stops += 1

        reactor = Reactor()
        services = MultiService()
        port = SharedSocket(socket.socket(), "TCP")
        listening = ListeningService("TCP", "tcp:0", lambda: succeed(port))
        listening.setServiceParent(services)  # type: ignore[no-untyped-call]
        services.startService()
        self.assertIs(listening.port, port)
        retire(reactor, services, connections, 5.0)
        self.assertEqual((listening.port, listening.running), (None, False))
        self.assertEqual(port.socket.fileno(), -1)
        return reactor, services

    def test_retireWaitsForSessions(self) -> None:
        """
        A retiring worker stops listening at once, and stops its reactor
        (which drains) once its last connection has ended by itself.
        """
        connections: set[object] = {"a", "b"}
        reactor, _ = self.retiring(connections)
        reactor.advance(RETIRE_POLL)
        connections.discard("a")
        reactor.advance(RETIRE_POLL)
        self.assertEqual(reactor.stops, 0)
        connections.discard("b")
        reactor.advance(RETIRE_POLL)
        self.assertEqual(reactor.stops, 1)
        reactor.advance(10)
        self.assertEqual((reactor.stops, reactor.getDelayedCalls()), (1, []))

    def test_retireGrace(self) -> None:
        """
        Sessions still open after the grace (C{--shutdown-timeout}) are left
        to the usual drain.
        """
        reactor, _ = self.retiring({"idle"})
        reactor.pump([RETIRE_POLL] * 49)
        self.assertEqual(reactor.stops, 0)
        reactor.pump([RETIRE_POLL] * 2)
        self.assertEqual(reactor.stops, 1)


class WorkerOptionsTests(SynchronousTestCase):
    def test_descriptorsMustMatch(self) -> None:
        options = WorkerOptions()
        self.assertRaises(
            usage.UsageError,
            options.parseOptions,
            ["--slot=1", "--inherited=tcp=4", "--", "--no-tcp"],
        )


class CountsReporterTests(SynchronousTestCase):
    """
    A worker reports its counters when they change, within
    L{REPORT_INTERVAL}, so that the parent's totals lose at most that
    much of a worker killed by SIGKILL.
    """

    def setUp(self) -> None:
        readEnd, self.writeEnd = os.pipe()
        self.addCleanup(os.close, readEnd)
        self.addCleanup(os.close, self.writeEnd)
        os.set_blocking(readEnd, False)
        os.set_blocking(self.writeEnd, False)
        self.readEnd = readEnd
        self.servers = buildServers(daemonOptions("--no-udp"), Clock())
        assert isinstance(self.servers.factory, GreetingFactory)
        self.factory = self.servers.factory
        self.reporter = CountsReporter(self.servers, self.writeEnd)

    def reports(self) -> list[dict[str, int]]:
        """
        The reports written since the last call.
        """
        try:
            data = os.read(self.readEnd, 1 << 20)
        except BlockingIOError:
            return []
        self.assertTrue(data.endswith(b"\n"))
        return [json.loads(line) for line in data.splitlines()]

    def test_report(self) -> None:
        """
        L{CountsReporter.report} writes the counters as one line, changed
        or not: the last report of a drained worker.
        """
        self.factory.connectionsTotal = 4
        self.reporter.report()
        self.reporter.report()
        self.assertEqual(
            [report["tcp.connections"] for report in self.reports()], [4, 4]
        )

    def test_changesWithinInterval(self) -> None:
        """
        A change is reported at the next look, at most L{REPORT_INTERVAL}
        (a tenth of a second) later; unchanged counters are not reported
        again.
        """
        self.assertLessEqual(REPORT_INTERVAL, 0.1)
        clock = Clock()
        looking = self.reporter.start(clock)
        self.addCleanup(looking.stop)
        self.assertEqual(len(self.reports()), 1)
        clock.advance(REPORT_INTERVAL)
        self.assertEqual(self.reports(), [])
        self.factory.connectionsTotal = 1
        clock.advance(REPORT_INTERVAL)
        [report] = self.reports()
        self.assertEqual(report["tcp.connections"], 1)
        clock.pump([REPORT_INTERVAL] * 20)
        self.assertEqual(self.reports(), [])

    def test_droppedSentAgain(self) -> None:
        """
        A report the full pipe could not take is sent again at the next
        look, though nothing has changed since.
        """
        filler = b"x" * 4096
        with contextlib.suppress(BlockingIOError):
            while True:
                os.write(self.writeEnd, filler)
        self.factory.connectionsTotal = 2
        self.reporter.look()
        drained = b""
        with contextlib.suppress(BlockingIOError):
            while True:
                drained += os.read(self.readEnd, 1 << 20)
        self.assertEqual(drained.strip(b"x"), b"")
        self.reporter.look()
        [report] = self.reports()
        self.assertEqual(report["tcp.connections"], 2)
        self.reporter.look()
        self.assertEqual(self.reports(), [])
