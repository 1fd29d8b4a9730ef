"""
Where greetd's time goes, step by step: micro-benchmarks of one connection's
path (churn), one message's (ping-pong) and one datagram's (UDP), on real
sockets where the step is a system call, each step timed alone and each
path timed whole beside plain Twisted's, so that a change can be priced
before it lands.

    python -m bench.micro [--only churn|pingpong|udp] [--seconds S] [--json F]

greetd is built as C{twistd greetd} builds it (L{buildServers}) from the
benchmark's arguments (L{bench.run.GREETD_LIMITS}): the default logging (the
access log, to a file, batched) and every limit in force.  Each figure is
CPU time (user + system of this process) per operation, the least of
L{REPEATS} runs of at most C{--seconds} and L{MAX_COUNT} operations each:
CPU time, because this machine is shared, and the least, because
interference only ever adds.  What is not here is the reactor's own work
and the kernel's (accept, epoll): C{bench.run} measures those, whole.
"""

from __future__ import annotations

import argparse
import json
import socket
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Callable, Sequence

from twisted.internet import tcp, udp
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from bench.peers.twisted_plain import Greeting as PlainGreeting
from bench.peers.twisted_plain import Reply as PlainReply
from bench.report import rstTable
from bench.run import GREETD_LIMITS
from greetd.core.accessline import Closed
from greetd.core.framing import MessageFramer
from greetd.core.sources import sourceKey
from greetd.daemon.build import buildServers
from greetd.daemon.endpoints import MAX_DATAGRAM
from greetd.daemon.options import Options
from greetd.ops.logfile import BatchedWriter
from greetd.protocols.datagramport import DatagramPort
from greetd.protocols.fastwrite import writeThrough
from greetd.protocols.greeting import GreetingFactory
from greetd.protocols.peer import peerForLog
from greetd.protocols.streamport import StreamServer

#: Runs of each step; the least is kept.
REPEATS = 5

#: The most operations in one run.
MAX_COUNT = 200_000

PEER = ("127.0.0.2", 40000)


class Reactor(MemoryReactorClock):
    """
    A reactor as greetd sees it, for real sockets, that runs nothing:
    wall time, calls kept and never run (none falls due within a run),
    descriptors registered, and the benchmark doing the reactor's part by
    hand.
    """

    def __init__(self) -> None:
        super().__init__()
        self.running = True

    def seconds(self) -> float:
        return time.time()


def perOperation(step: Callable[[int], None], seconds: float) -> float:
    """
    The least CPU microseconds per operation over L{REPEATS} runs of
    C{step(count)}, which performs C{count} operations.
    """
    count, best = 100, float("inf")
    # Size a run to about C{seconds}.
    while count < MAX_COUNT:
        started = time.process_time()
        step(count)
        if time.process_time() - started >= seconds / 4:
            break
        count *= 4
    count = min(count, MAX_COUNT)
    for _ in range(REPEATS):
        started = time.process_time()
        step(count)
        best = min(best, (time.process_time() - started) / count)
    return best * 1e6


def repeat(body: Callable[[], object]) -> Callable[[int], None]:
    """
    A step that calls C{body} C{count} times.
    """

    def step(count: int) -> None:
        for _ in range(count):
            body()

    return step


def drainedEvery(
    body: Callable[[], object], drain: Callable[[], None]
) -> Callable[[int], None]:
    """
    A step that calls C{body} C{count} times and C{drain} every 64 calls
    and at the end: the far end of what C{body} sends is read, so sends
    never block.
    """

    def step(count: int) -> None:
        for number in range(count):
            body()
            if number % 64 == 0:
                drain()
        drain()

    return step


def greetdServers(clock: Any, logFile: IO[str]) -> Any:
    """
    greetd's TCP factory and UDP protocol, built as twistd greetd builds
    them, with the access log batched to C{logFile}.
    """
    options = Options()
    options.parseOptions(
        ["--tcp", "tcp:0", "--udp", "udp:0", *GREETD_LIMITS],
    )
    log = options["log"]
    log.stream = BatchedWriter(logFile, clock)
    servers = buildServers(options, clock)
    # As a listening port does: the factory then knows it serves one.
    servers.factory.doStart()
    return servers


class Sink:
    """
    A connected pair of stream sockets; the far end is read now and then
    so the near end's sends never block.
    """

    def __init__(self) -> None:
        self.near, self.far = socket.socketpair()
        for end in (self.near, self.far):
            end.setblocking(False)
        self.sent = 0

    def drain(self) -> None:
        try:
            while self.far.recv(1 << 16):
                pass
        except BlockingIOError:
            pass


def tcpServer(
    protocol: Protocol,
    sink: Sink,
    reactor: Reactor,
    kind: type[tcp.Server] = StreamServer,
) -> tcp.Server:
    """
    A real TCP server transport on C{sink}'s near end, connected to
    C{protocol}, as a port's C{doRead} makes one after C{accept}: greetd's
    L{StreamServer}, as greetd's reactor makes them, or C{kind}.
    """
    near = sink.near.dup()
    near.setblocking(False)
    transport = kind(near, protocol, PEER, None, 0, reactor)  # type: ignore[arg-type]
    protocol.makeConnection(transport)
    return transport


def connection(
    factory: Factory[Any], reactor: Reactor, kind: type[tcp.Server] = tcp.Server
) -> None:
    """
    One connection of the churn workload, as the reactor drives it: the
    transport (a C{kind}: greetd's reactor makes L{StreamServer}s, Twisted's
    C{tcp.Server}s) made on a socket of its own (a socket shared between
    connections would be shut down by the first close, and every later
    send would fail), the banner sent, C{exit} received, the close.
    """
    near, far = socket.socketpair()
    near.setblocking(False)
    protocol = factory.buildProtocol(PEER)  # type: ignore[arg-type]
    assert protocol is not None
    transport = kind(near, protocol, PEER, None, 0, reactor)  # type: ignore[arg-type]
    protocol.makeConnection(transport)
    protocol.dataReceived(b"exit\r\n")
    if not transport.disconnected:
        # The reactor's part, where the protocol has left the close to it:
        # the write loop finds nothing owed and closes.
        why = transport.doWrite()
        if why is None:
            why = transport._postLoseConnection()
        transport.connectionLost(Failure(why))
    reactor.readers.clear()
    reactor.writers.clear()
    far.close()


def churn(factory: GreetingFactory, seconds: float) -> dict[str, float]:
    """
    One connection's path, step by step, and whole beside plain Twisted's.
    """
    reactor = Reactor()
    sink = Sink()
    admission = factory.admission
    limiter = admission.limiter
    results: dict[str, float] = {}
    results["source key (sourceKey, IPv4)"] = perOperation(
        repeat(lambda: sourceKey(PEER[0], limiter.ipv6Prefix)), seconds
    )

    # Sources in turn, as bench.run's generator spreads them: one source
    # alone would soon be over --rate-per-ip at PyPy's pace.
    sources = [f"127.0.0.{2 + n}" for n in range(32)]

    def admit(count: int) -> None:
        for number in range(count):
            source = sources[number % 32]
            admission.admit(source, source, str)
            admission.release(source)

    results["admission (access, limits, per-source rate) + release"] = perOperation(
        admit, seconds
    )

    protocol = factory.buildProtocol(PEER)  # type: ignore[arg-type]
    assert protocol is not None

    def bookkeeping(count: int) -> None:
        for number in range(count):
            protocol.host = protocol.source = sources[number % 32]
            factory.admit(protocol)
            factory.connectionClosed(protocol)

    results["tracking and counters (factory admit + connectionClosed)"] = perOperation(
        bookkeeping, seconds
    )

    def framer() -> None:
        MessageFramer("line", factory.maxLength).feed(b"exit\r\n")

    results["framing (a framer, exit fed)"] = perOperation(repeat(framer), seconds)

    transport = tcpServer(PlainGreeting(), sink, reactor)
    sink.drain()

    def producer() -> None:
        transport.registerProducer(object(), True)  # type: ignore[arg-type]
        transport.unregisterProducer()

    # On plain TCP, only once a reply waits unsent: not at churn.
    results["producer (un)registration, not on plain TCP"] = perOperation(
        repeat(producer), seconds
    )
    closed = Closed(peerForLog(transport)[0], *PEER, 0.0123, 0, 6, 9, "exit")
    results["access line (FastAccessLog.closed, batched write)"] = perOperation(
        repeat(lambda: factory.accessLog.closed(closed)), seconds
    )

    def record() -> None:
        peer, port, via = peerForLog(transport)
        Closed(peer, PEER[0], port, 0.0123, 0, 6, 9, "exit", via).text  # noqa: B018

    results["access record (peer formatted, Closed, its text)"] = perOperation(
        repeat(record), seconds
    )

    results["whole connection, greetd (socket pair to close)"] = perOperation(
        repeat(lambda: connection(factory, reactor, StreamServer)), seconds
    )
    plain = Factory.forProtocol(PlainGreeting)
    results["whole connection, plain Twisted (socket pair to close)"] = perOperation(
        repeat(lambda: connection(plain, reactor)), seconds
    )
    return results


def pingpong(factory: GreetingFactory, seconds: float) -> dict[str, float]:
    """
    One message's path, step by step, and whole beside plain Twisted's.
    """
    reactor = Reactor()
    sink = Sink()
    results: dict[str, float] = {}
    framer = MessageFramer("line", factory.maxLength)
    results["framing (MessageFramer.feed, one line)"] = perOperation(
        repeat(lambda: framer.feed(b"Michael\n")), seconds
    )
    template = factory.template
    results["reply (ReplyTemplate.format)"] = perOperation(
        repeat(lambda: template.format(b"Michael")), seconds
    )

    def drained(body: Callable[[], object]) -> Callable[[int], None]:
        return drainedEvery(body, sink.drain)

    greetd = factory.buildProtocol(PEER)  # type: ignore[arg-type]
    assert greetd is not None
    transport = tcpServer(greetd, sink, reactor)

    def sendOne() -> None:
        unsent = writeThrough(transport, b"Hello, Michael!\n")
        if unsent:
            # What the kernel did not take is queued, as the protocol does.
            transport.write(unsent)

    results["write-through (one send)"] = perOperation(drained(sendOne), seconds)
    results["whole message, greetd (dataReceived to send)"] = perOperation(
        drained(lambda: greetd.dataReceived(b"Michael\n")), seconds
    )
    plain = PlainGreeting()
    plainTransport = tcpServer(plain, sink, reactor, tcp.Server)

    def plainMessage() -> None:
        plain.dataReceived(b"Michael\n")
        # Twisted's transport.write only queues: its send is the reactor's
        # doWrite, a turn later.
        plainTransport.doWrite()

    results["whole message, plain Twisted (dataReceived, doWrite)"] = perOperation(
        drained(plainMessage), seconds
    )

    def throughConnection(
        transport: tcp.Server, send: Callable[[], object]
    ) -> Callable[[int], None]:
        """
        A message from the peer, read by C{transport}'s C{doRead} and
        answered (C{send} sends what the reactor would send a turn later),
        the reply read by the peer: the peer's C{send} and C{recv} are in
        it, the same for any server.
        """
        far = sink.far

        def step(count: int) -> None:
            for _ in range(count):
                far.send(b"Michael\n")
                transport.doRead()
                send()
                far.recv(100)

        return step

    sink.drain()
    results["through the connection, greetd (peer's send, doRead, peer's recv)"] = (
        perOperation(throughConnection(transport, lambda: None), seconds)
    )
    results["through the connection, plain Twisted (tcp.Server, doWrite)"] = (
        perOperation(throughConnection(plainTransport, plainTransport.doWrite), seconds)
    )
    return results


def datagrams(reply: DatagramProtocol, seconds: float) -> dict[str, float]:
    """
    One datagram's path, step by step, and whole beside plain Twisted's.
    """
    from greetd.protocols.datagram import ReplyProtocol

    assert isinstance(reply, ReplyProtocol)
    reactor = Reactor()
    # Twenty flows, each from its own loopback address, as bench.run's.
    sources = [f"127.0.0.{2 + n}" for n in range(20)]
    sinks = []
    for host in sources:
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind((host, 0))
        sink.setblocking(False)
        sinks.append(sink)
    flows = [sink.getsockname() for sink in sinks]

    def drain() -> None:
        for sink in sinks:
            try:
                while True:
                    sink.recv(2048)
            except BlockingIOError:
                pass

    def drained(body: Callable[[], object]) -> Callable[[int], None]:
        return drainedEvery(body, drain)

    results: dict[str, float] = {}
    results["source key (sourceKey, IPv4)"] = perOperation(
        repeat(lambda: sourceKey(PEER[0], reply.ipv6Prefix)), seconds
    )
    perSource, overall = reply.perSource, reply.overall
    assert overall is not None

    def perSourceBucket(count: int) -> None:
        for number in range(count):
            perSource.allow(sources[number % 20], time.time())

    results["per-source bucket (KeyedRateLimiter.allow, 20 sources)"] = perOperation(
        perSourceBucket, seconds
    )
    results["global bucket (TokenBucket.take)"] = perOperation(
        repeat(lambda: overall.take(time.time())), seconds
    )
    results["clock (reactor.seconds)"] = perOperation(
        repeat(reply.clock.seconds), seconds
    )
    results["reply (ReplyTemplate.format)"] = perOperation(
        repeat(lambda: reply.template.format(b"Michael")), seconds
    )
    # As greetd's reactor listens (GreetdReactor.listenUDP).
    port = DatagramPort(0, reply, "127.0.0.1", MAX_DATAGRAM, reactor)  # type: ignore[arg-type]
    port.startListening()
    results["send (socket.sendto)"] = perOperation(
        drained(lambda: port.socket.sendto(b"Hello, Michael!", flows[0])), seconds
    )

    def greetdDatagrams(count: int) -> None:
        for number in range(count):
            reply.datagramReceived(b"Michael", flows[number % 20])
            if number % 64 == 0:
                drain()
        drain()

    results["whole datagram, greetd (datagramReceived to sendto)"] = perOperation(
        greetdDatagrams, seconds
    )
    plain = PlainReply()
    plainPort = udp.Port(0, plain, "127.0.0.1", reactor=reactor)  # type: ignore[arg-type]
    plainPort.startListening()
    results["whole datagram, plain Twisted (datagramReceived, write)"] = perOperation(
        drained(lambda: plain.datagramReceived(b"Michael", flows[0])), seconds
    )

    def throughPort(listening: udp.Port) -> Callable[[int], None]:
        """
        Datagrams sent from the flows in turn, read and answered by
        C{listening}'s C{doRead} twenty at a time, the replies drained:
        the peers' C{sendto} and C{recv} are in it, the same for any port.
        """
        target = listening.socket.getsockname()

        def step(count: int) -> None:
            for number in range(count):
                sinks[number % 20].sendto(b"Michael", target)
                if number % 20 == 19:
                    listening.doRead()  # type: ignore[no-untyped-call]
                    drain()
            listening.doRead()  # type: ignore[no-untyped-call]
            drain()

        return step

    results["through the port, greetd (peer's sendto, doRead, peer's recv)"] = (
        perOperation(throughPort(port), seconds)
    )
    results["through the port, plain Twisted (the same on udp.Port)"] = perOperation(
        throughPort(plainPort), seconds
    )
    port.stopListening()
    plainPort.stopListening()
    for sink in sinks:
        sink.close()
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.micro", description=__doc__)
    parser.add_argument("--only", action="append", choices=("churn", "pingpong", "udp"))
    parser.add_argument(
        "--seconds", type=float, default=0.2, help="CPU seconds a run takes, about"
    )
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument(
        "--rst", type=Path, help="write them here as tables for the documentation"
    )
    options = parser.parse_args(argv)
    only = options.only or ("churn", "pingpong", "udp")
    clock = Reactor()
    with tempfile.TemporaryFile("w+") as logFile:
        servers = greetdServers(clock, logFile)
        paths = {
            "churn": lambda: churn(servers.factory, options.seconds),
            "pingpong": lambda: pingpong(servers.factory, options.seconds),
            "udp": lambda: datagrams(servers.replies[0], options.seconds),
        }
        figures = {}
        for name in only:
            figures[name] = paths[name]()
            print(f"{name}: CPU us per operation (least of {REPEATS} runs)")
            for step, micros in figures[name].items():
                print(f"  {micros:7.3f}  {step}")
        servers.factory.accessLog.output.stream.drain()
    if options.json:
        options.json.write_text(json.dumps(figures, indent=1) + "\n")
    if options.rst:
        options.rst.write_text(tables(figures) + "\n")


#: Each path's title in the tables.
TITLES = {
    "churn": "One connection (churn), CPython",
    "pingpong": "One message (ping-pong), CPython",
    "udp": "One datagram (UDP), CPython",
}


def tables(figures: dict[str, dict[str, float]]) -> str:
    """
    Each path's steps as a reStructuredText table: CPU microseconds each.
    """
    return "\n\n".join(
        rstTable(
            TITLES[name],
            ["step", "CPU us"],
            [[step, f"{micros:.2f}"] for step, micros in steps.items()],
        )
        for name, steps in figures.items()
    )


if __name__ == "__main__":
    main()
