"""
Soak greetd: hold many concurrent connections on loopback for a set time,
with traffic on some of them, and report lost replies and the daemon's
memory over time.

    python -m bench.soak --connections 10000 --active 200 --duration 60

It starts its own C{twistd greetd} on an ephemeral loopback port, with the
per-address limits lifted (every client here is on loopback), and exits 1
when a reply was lost, a connection dropped, or the daemon's RSS grew after
every connection was open.  Every phase is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall, deferLater, react
from twisted.python.failure import Failure

from greetd.testing import Daemon, twistdCommand

#: Connection attempts in flight at once while ramping up.
CONNECT_CONCURRENCY = 256

#: Loopback source addresses the connections are spread over.
SOURCES = 32


class SoakClient(Protocol):
    """
    One connection: checks the banner, and when active sends a line on
    each L{tick} and checks each reply.

    @ivar sent: Lines sent.
    @ivar answered: Replies received that matched what was sent.
    @ivar wrong: Replies that did not.
    @ivar closed: Whether the daemon closed the connection.
    """

    def __init__(self, name: bytes) -> None:
        self.name = name
        self.buffer = b""
        self.banner = False
        self.sent = 0
        self.answered = 0
        self.wrong = 0
        self.closed = False
        self.expected = b"Hello, " + name + b"!"

    def tick(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(self.name + b"\n")
            self.sent += 1

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        if not self.banner and self.buffer.startswith(b"Welcome"):
            self.banner = True
            self.buffer = self.buffer[7:]
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            if line == self.expected:
                self.answered += 1
            else:
                self.wrong += 1

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.closed = True


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def raiseOwnFileLimit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            raise SystemExit(f"soak: the open-file limit {hard} is below {wanted}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


async def soak(reactor: Any, options: argparse.Namespace) -> dict[str, Any]:
    count: int = options.connections
    raiseOwnFileLimit(count + 256)
    with tempfile.TemporaryDirectory() as where:
        daemon = Daemon(
            twistdCommand(
                "--no-udp",
                "--tcp",
                "tcp:0:interface=127.0.0.1:backlog=4096",
                "--max-connections",
                str(count + 100),
                "--max-per-ip",
                "0",
                "--rate-per-ip",
                "0",
                "--idle-timeout",
                str(max(300, options.duration + 60)),
            ),
            Path(where),
        )
        try:
            daemon.waitForListeners(1)
            return await drive(reactor, options, daemon)
        finally:
            daemon.stop()


async def drive(
    reactor: Any, options: argparse.Namespace, daemon: Daemon
) -> dict[str, Any]:
    port = daemon.tcp[0][1]
    pid = daemon.process.pid
    samples: list[tuple[float, int]] = []
    started = time.monotonic()

    def sample() -> None:
        samples.append((round(time.monotonic() - started, 1), rss(pid)))

    sampler = LoopingCall(sample)
    sampler.clock = reactor
    sampler.start(options.sample)
    clients: list[SoakClient] = []
    limit = DeferredSemaphore(CONNECT_CONCURRENCY)

    def connect(index: int) -> Deferred[Any]:
        source = f"127.0.0.{2 + index % SOURCES}"
        endpoint = TCP4ClientEndpoint(
            reactor, "127.0.0.1", port, timeout=30, bindAddress=(source, 0)
        )
        client = SoakClient(b"soak%d" % index)
        clients.append(client)
        return connectProtocol(endpoint, client)

    await gatherResults(
        [limit.run(connect, index) for index in range(options.connections)]
    ).addTimeout(options.connect_timeout, reactor)
    connectedAt = time.monotonic() - started
    await deferLater(reactor, 1.0, lambda: None)
    sample()
    baseline = samples[-1][1]
    active = clients[: options.active]
    ticker = LoopingCall(lambda: [client.tick() for client in active])
    ticker.clock = reactor
    ticker.start(options.interval)
    await deferLater(reactor, options.duration, lambda: None)
    ticker.stop()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
        client.answered + client.wrong < client.sent for client in active
    ):
        await deferLater(reactor, 0.1, lambda: None)
    sample()
    sampler.stop()
    sent = sum(client.sent for client in active)
    answered = sum(client.answered for client in active)
    after = [value for when, value in samples if when >= connectedAt + 1.0]
    return {
        "connections": len(clients),
        "connectSeconds": round(connectedAt, 1),
        "openAtEnd": sum(not client.closed for client in clients),
        "bannersSeen": sum(client.banner for client in clients),
        "activeConnections": len(active),
        "sent": sent,
        "answered": answered,
        "wrong": sum(client.wrong for client in active),
        "lost": sent - answered,
        "rssBaseline": baseline,
        "rssMax": max(after),
        "rssGrowth": max(after) - baseline,
        "rssSamples": samples,
    }


def verdict(report: dict[str, Any]) -> list[str]:
    """
    What went wrong, if anything.
    """
    problems = []
    if report["lost"] or report["wrong"]:
        problems.append(f"{report['lost']} replies lost, {report['wrong']} wrong")
    if report["openAtEnd"] != report["connections"]:
        problems.append(
            f"{report['connections'] - report['openAtEnd']} connections dropped"
        )
    if report["bannersSeen"] != report["connections"]:
        problems.append("some connections never saw the banner")
    tolerance = max(4 * 1024 * 1024, report["rssBaseline"] // 20)
    if report["rssGrowth"] > tolerance:
        problems.append(f"RSS grew by {report['rssGrowth']} bytes")
    return problems


def summary(report: dict[str, Any]) -> str:
    """
    The report, for people.
    """
    megabytes = 1024 * 1024
    lines = [
        f"connections held:  {report['openAtEnd']}/{report['connections']} "
        f"(opened in {report['connectSeconds']}s)",
        f"traffic:           {report['activeConnections']} connections, "
        f"{report['sent']} lines sent, {report['answered']} answered, "
        f"{report['lost']} lost, {report['wrong']} wrong",
        f"daemon RSS:        {report['rssBaseline'] / megabytes:.1f} MB with all "
        f"open, max {report['rssMax'] / megabytes:.1f} MB after "
        f"(growth {report['rssGrowth'] / megabytes:+.2f} MB)",
        "RSS over time:     "
        + ", ".join(
            f"{when:g}s {value / megabytes:.1f}" for when, value in report["rssSamples"]
        ),
        "verdict:           " + ("; ".join(report["problems"]) or "ok"),
    ]
    return "\n".join(lines)


def parseArguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument(
        "--active", type=int, default=200, help="connections with traffic"
    )
    parser.add_argument(
        "--interval", type=float, default=0.1, help="seconds between lines"
    )
    parser.add_argument(
        "--duration", type=float, default=60.0, help="seconds of traffic"
    )
    parser.add_argument(
        "--sample", type=float, default=5.0, help="seconds between RSS samples"
    )
    parser.add_argument("--connect-timeout", type=float, default=120.0)
    parser.add_argument("--json", type=Path, help="also write the report here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    options = parseArguments(sys.argv[1:] if argv is None else argv)

    async def run(reactor: Any) -> None:
        report = await soak(reactor, options)
        problems = verdict(report)
        report["problems"] = problems
        print(summary(report))
        if options.json:
            options.json.write_text(json.dumps(report, indent=1))
        if problems:
            raise SystemExit("soak: " + "; ".join(problems))

    react(lambda reactor: Deferred.fromCoroutine(run(reactor)))


if __name__ == "__main__":
    main()
