"""
One worker process of C{twistd greetd --workers N}: C{python -m
greetd.daemon.worker --slot=N --inherited=tcp=5,udp=6 [--reactor=NAME]
--log=MODE ... -- GREETD-ARGUMENTS}, started by the parent's
L{greetd.daemon.pool.service.WorkerPool}, never by hand, on the parent's
reactor.

It builds the same factory and protocols as C{twistd greetd} does
(L{greetd.daemon.build.buildServers}), adopts the sockets the parent bound
(waiting on them with C{EPOLLEXCLUSIVE}, so that an event on one wakes one
worker), writes its own log lines where the parent writes its own
(L{startLogging}),
drains on SIGTERM or SIGINT as the daemon does, reopens its log file on
C{REOPEN} (SIGUSR1, which the parent
forwards), ignores SIGHUP (the parent's to handle), retires on
C{RETIRE} (a reload replaced it: it stops
listening and lets its sessions end by themselves before it drains), tells
the parent once it serves every listener (L{READY
<greetd.daemon.pool.wire.READY>}: a reload waits for it), reports its
counters to the parent within L{REPORT_INTERVAL} of a change and once more
when it has drained, and drains and exits as soon as its standard input (a
pipe from the parent) reaches end of file: no worker outlives its parent.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections import Counter
from contextlib import contextmanager, suppress
from functools import partial
from typing import Any, ClassVar, Collection, Iterator, Sequence, cast

from twisted.application.app import ReactorSelectionMixin
from twisted.application.service import MultiService
from twisted.internet.abstract import FileDescriptor
from twisted.internet.defer import Deferred, execute, gatherResults
from twisted.internet.error import ReactorNotRunning
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger, globalLogBeginner
from twisted.python import usage
from twisted.python.failure import Failure

from greetd.daemon.build import Servers, buildServers
from greetd.daemon.endpoints import tlsServerFactory
from greetd.daemon.listening import ListenFailed, ListeningService
from greetd.daemon.options import Options
from greetd.daemon.plan import TCP, Listener
from greetd.daemon.pool.wire import (
    COUNTS_FD,
    LOG_FD,
    LOG_FILE,
    LOG_RELAY,
    READY_LINE,
    REOPEN,
    RETIRE,
    WorkerLog,
    countsLine,
    parseInherited,
)
from greetd.daemon.single import Target, serve
from greetd.ops.log import LogOutput
from greetd.ops.logfile import REOPEN_SIGNALS, ReopenOnSignalService, Stream
from greetd.ops.nonblocking import NonBlockingWriter, nonBlockingSender
from greetd.ops.relay import workerLogObserver
from greetd.ops.workerlog import WorkerMarks
from greetd.protocols.greeting import GreetingFactory
from greetd.protocols.proxy import ProxyHeaderFactory
from greetd.twisted_private import readExclusively

#: Seconds between two looks at the counters, which are reported to the
#: parent when they have changed since the last report: a worker killed by
#: SIGKILL takes at most this long of its counts with it.
REPORT_INTERVAL = 0.1

#: Seconds between two looks at a retiring worker's open connections.
RETIRE_POLL = 0.1


class WorkerOptions(ReactorSelectionMixin, usage.Options):
    """
    The worker's own options; the greetd options follow C{--}.  As with
    twistd, C{--reactor} installs the named reactor while the options are
    parsed, before the greetd options import one: the parent passes its own.
    """

    synopsis = "--slot=N --inherited=tcp=FD,...,udp=FD,... -- [greetd options]"
    optParameters: ClassVar[list[Any]] = [
        ["slot", None, None, "Which worker this is, for logs.", int],
        ["inherited", None, "", "The listening descriptors, in option order."],
        ["log", None, LOG_RELAY, "How to log: file, stdout or relay."],
        ["log-file", None, None, "The log file's name, for --log=file."],
        ["log-json", None, "0", "1 for JSON lines, 0 for text."],
    ]

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def parseArgs(self, *greetd: str) -> None:
        self["greetd"] = list(greetd)

    def postOptions(self) -> None:
        if self["slot"] is None:
            raise usage.UsageError("--slot is required")
        try:
            self["fds"] = parseInherited(self["inherited"])
        except ValueError as error:
            raise usage.UsageError(f"--inherited: {error}") from None
        try:
            self["worker-log"] = WorkerLog.parse(
                self["log"], self["log-file"], self["log-json"]
            )
        except ValueError as error:
            raise usage.UsageError(str(error)) from None
        options = Options()
        options.parseOptions(self["greetd"])
        plan = options["plan"]
        for kind, listeners in (("tcp", plan.tcp), ("udp", plan.udp)):
            if len(listeners) != len(self["fds"][kind]):
                raise usage.UsageError(
                    f"--inherited has {len(self['fds'][kind])} {kind} "
                    f"descriptors for {len(listeners)} --{kind} options"
                )
        self["options"] = options


@contextmanager
def nonBlockingSockets() -> Iterator[None]:
    """
    Make socket objects non-blocking from their creation, for the length
    of the block.

    The listening sockets' open file descriptions, and so their blocking
    flag, are shared by the parent and every worker.  PyPy puts a socket
    object made from a descriptor into the default timeout's mode, which is
    blocking: adopting a socket would make it blocking for every worker,
    and a worker that lost the race for a connection would then block in
    C{accept} until the next one came.  Twisted's C{adoptStreamPort} makes
    such an object and leaves its mode alone.
    """
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(0.0)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def socketFamily(fd: int) -> int:
    """
    The address family of the socket open on C{fd}, which stays open.
    """
    sock = socket.socket(fileno=fd)
    try:
        return int(sock.family)
    finally:
        sock.detach()


def _adopted(port: IListeningPort, fd: int, reactor: Any) -> IListeningPort:
    # The reactor listens on a duplicate of the inherited descriptor.
    os.close(fd)
    # Every worker waits on this socket: a connection or a datagram wakes
    # one of those waiting, not all of them (nginx's EPOLLEXCLUSIVE).
    readExclusively(reactor, port)
    return port


def adopt(
    reactor: Any,
    fds: dict[str, list[int]],
    listener: Listener,
    target: Target,
    maxPacketSize: int,
) -> Deferred[IListeningPort]:
    """
    Serve C{target} on the inherited socket of C{listener}: the greeting
    factory on a TCP one, with the listener's TLS for C{ssl:} and reading
    the PROXY header first if the listener says so, or a reply protocol on
    a UDP one.
    """
    with nonBlockingSockets():
        if listener.kind == TCP:
            fd = fds["tcp"][listener.position]
            factory = cast(IProtocolFactory, target)
            if listener.tls:
                factory = tlsServerFactory(
                    reactor, listener.twistedDescription, factory
                )
            if listener.proxied:
                # Outside TLS: the header comes before the handshake.
                factory = ProxyHeaderFactory(
                    factory,
                    reactor,
                    admission=target.admission
                    if isinstance(target, GreetingFactory)
                    else None,
                    tellsRefusals=not listener.tls,
                )
            family = socketFamily(fd)
            adopting = execute(reactor.adoptStreamPort, fd, family, factory)
        else:
            fd = fds["udp"][listener.position]
            family = socketFamily(fd)
            adopting = execute(
                reactor.adoptDatagramPort, fd, family, target, maxPacketSize
            )
    return adopting.addCallback(_adopted, fd, reactor)


class ParentWatcher(FileDescriptor):
    """
    Reads the pipe from the parent, which the parent never writes, and
    calls C{onLost} at its end of file: the parent has exited, however it
    exited (even SIGKILL), since the kernel closes its end then.
    """

    def __init__(self, reactor: Any, fd: int, onLost: Any) -> None:
        super().__init__(reactor)
        self.fd = fd
        self.onLost = onLost
        os.set_blocking(fd, False)

    def fileno(self) -> int:
        return self.fd

    def doRead(self) -> Any:
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return None
        except OSError as error:
            return Failure(error)
        return None if data else Failure(EOFError("the parent has exited"))

    def connectionLost(self, reason: Failure) -> None:
        super().connectionLost(reason)  # type: ignore[no-untyped-call]
        self.onLost()


def _stop(reactor: Any) -> None:
    with suppress(ReactorNotRunning):  # stopping already: a signal came first
        reactor.stop()


class CountsReporter:
    """
    Reports a worker's counters to its parent, one line each time
    (L{countsLine}), on L{COUNTS_FD}: L{look} every L{REPORT_INTERVAL}
    seconds, which reports only counters that have changed, and L{report}
    once more when the worker has drained.

    The pipe is non-blocking: a report that does not fit (the parent is
    slow to read) is dropped and sent again at the next look.  A line is
    far below C{PIPE_BUF}, so each write is whole or nothing.

    @ivar servers: The servers whose counts are reported.
    @ivar fd: The pipe to the parent.
    """

    def __init__(self, servers: Servers, fd: int) -> None:
        self.servers = servers
        self.fd = fd
        self._reported: Counter[str] | None = None

    def look(self) -> None:
        """
        Report the counters if they have changed since the last report.
        """
        counts = self.servers.counts()
        if counts != self._reported:
            self._write(counts)

    def report(self) -> None:
        """
        Report the counters, changed or not.
        """
        self._write(self.servers.counts())

    def _write(self, counts: Counter[str]) -> None:
        try:
            os.write(self.fd, countsLine(counts))
        except OSError:
            return
        self._reported = counts

    def start(self, clock: Any) -> LoopingCall:
        """
        Look every L{REPORT_INTERVAL} seconds on C{clock}, from now on.
        """
        looking = LoopingCall(self.look)
        looking.clock = clock
        looking.start(REPORT_INTERVAL)
        return looking


def retire(
    reactor: Any,
    services: MultiService,
    connections: Collection[object],
    grace: float,
) -> LoopingCall:
    """
    Retire a worker a reload has replaced: stop listening at once (the
    shared sockets stay open in the parent and the other workers, whose
    accept queues are the same), wait until no connection is open or
    C{grace} seconds have passed, then stop the reactor, which drains what
    is left as on SIGTERM.  Sessions end when their clients say C{exit}
    or close, so none is cut unless it outlasts C{grace}.

    @param connections: The open TCP connections (empty without TCP).
    @param grace: C{--shutdown-timeout}.
    @return: The call that watches the connections, every L{RETIRE_POLL}
        seconds.
    """
    for service in services:
        if isinstance(service, ListeningService) and service.running:
            service.stopService()
    deadline = reactor.seconds() + grace

    def look() -> None:
        if not connections or reactor.seconds() >= deadline:
            watching.stop()
            _stop(reactor)

    watching = LoopingCall(look)
    watching.clock = reactor
    watching.start(RETIRE_POLL)
    return watching


def announceReady(services: MultiService, fd: int) -> Deferred[None]:
    """
    Write L{READY} to the parent once every listening service of
    C{services} listens: until then, a reload keeps the worker this one
    replaces serving.

    @return: A L{Deferred} that fires once L{READY} is written, or fails
        if a listener fails.
    """
    listening = [
        service.whenListening()
        for service in services
        if isinstance(service, ListeningService)
    ]

    def ready(ports: object) -> None:
        with suppress(OSError):
            os.write(fd, READY_LINE)

    return gatherResults(listening, consumeErrors=True).addCallback(ready)


def startLogging(
    howToLog: WorkerLog, options: Options, slot: int, reactor: Any
) -> None:
    """
    Log as C{howToLog} says (L{WorkerLog}), each line marked as this
    worker's, never waiting for the parent: append to the parent's log
    file, inherited as L{LOG_FD} and reopened by name on L{REOPEN}; or
    write to standard output, shared with the parent, without waiting for
    its reader; or relay through the parent over standard output, a pipe,
    without waiting for it either.  Lines a reader does not take in time
    are dropped, and said so, once it reads again.  SIGHUP (and SIGUSR1,
    unless it reopens) are ignored: the parent's to handle.
    """
    log: LogOutput = options["log"]
    log.json = howToLog.json
    for signum in REOPEN_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    if howToLog.mode == LOG_FILE:
        assert howToLog.path is not None
        stream: Stream = log.files.open(howToLog.path, LOG_FD)
        reopen = ReopenOnSignalService(log.files, reactor, signals=[REOPEN])
        reopen.startService()
    else:
        stream = NonBlockingWriter(
            nonBlockingSender(sys.stdout.fileno()), reactor, _dropped
        )
    if howToLog.mode == LOG_RELAY:
        observer = workerLogObserver(log.files.batched(stream), options["log-level"])
    else:
        log.markWorker(slot, os.getpid())
        own = log.observer(stream)
        assert own is not None
        observer = WorkerMarks(own, slot, os.getpid())
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


_log = Logger()


def _dropped(count: int) -> None:
    _log.warn(
        "Dropped {count} log lines: their reader did not keep up",
        count=count,
        greetdEvent="log.dropped",
    )


def main(argv: Sequence[str] | None = None, reactor: Any = None) -> None:
    """
    Run one worker until SIGTERM, SIGINT, C{RETIRE} or the parent's exit;
    or until a listener fails, logged, and then exit with status 1.
    """
    workerOptions = WorkerOptions()
    try:
        workerOptions.parseOptions(argv)  # type: ignore[no-untyped-call]
    except usage.UsageError as error:
        sys.stderr.write(f"greetd worker: {error}\n")
        raise SystemExit(1) from None
    if reactor is None:
        from twisted.internet import reactor
    options: Options = workerOptions["options"]
    fds = workerOptions["fds"]
    startLogging(workerOptions["worker-log"], options, workerOptions["slot"], reactor)
    servers = buildServers(options, reactor)
    services = serve(
        options["plan"],
        servers,
        partial(adopt, reactor, fds),
        options["shutdown-timeout"],
        options["max-connections"],
    )
    connections = servers.factory.connections if servers.factory else set()
    retiring = partial(
        retire, reactor, services, connections, options["shutdown-timeout"]
    )
    # Before READY: the parent sends RETIRE only to a worker that said it.
    signal.signal(RETIRE, lambda signum, frame: reactor.callFromThread(retiring))
    try:
        services.startService()
    except ListenFailed:
        raise SystemExit(1) from None
    reactor.addSystemEventTrigger("before", "shutdown", services.stopService)
    watcher = ParentWatcher(reactor, 0, partial(_stop, reactor))
    watcher.startReading()  # type: ignore[no-untyped-call]
    os.set_blocking(COUNTS_FD, False)
    failed: list[Failure] = []

    def listenerFailed(failure: Failure) -> None:
        failed.append(failure)
        _stop(reactor)

    announceReady(services, COUNTS_FD).addErrback(listenerFailed)
    reporter = CountsReporter(servers, COUNTS_FD)
    reporter.start(reactor)
    # The last counters, once drained: the parent keeps them
    # (greetd.core.counters.retire), so totals count every connection.
    reactor.addSystemEventTrigger("after", "shutdown", reporter.report)
    reactor.run()
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
