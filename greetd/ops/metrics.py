"""
Prometheus metrics, read from the services' own counters at scrape time.

The protocols keep plain integer counters; this collector turns them into
metrics only when Prometheus asks, so serving costs nothing per message.
"""

from __future__ import annotations

from collections import Counter
from functools import partial
from typing import Callable, Iterator, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from twisted.web import pages
from twisted.web.http import Request as HTTPRequest
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from greetd.protocols.datagram import DROP_REASONS, ReplyProtocol
from greetd.protocols.greeting import ERROR_REASONS, REFUSAL_REASONS, GreetingFactory

#: Counts that are a level now rather than a running total: they are not
#: carried over from a worker that has exited.
GAUGES = frozenset({"tcp.open"})


def readCounts(
    factory: GreetingFactory | None, replies: Sequence[ReplyProtocol]
) -> Counter[str]:
    """
    The counters of a L{GreetingFactory} and L{ReplyProtocol}s as one flat
    L{Counter}, so that counts from several worker processes can be sent as
    JSON and summed.

    Keys are C{tcp.connections}, C{tcp.open}, C{tcp.messages},
    C{tcp.bytesReceived}, C{tcp.bytesSent}, C{tcp.error.REASON},
    C{tcp.dropped.REASON}, C{udp.messages}, C{udp.bytesReceived},
    C{udp.bytesSent} and C{udp.dropped.REASON}.
    """
    counts: Counter[str] = Counter()
    if factory is not None:
        totals = factory.totals()
        counts["tcp.connections"] = factory.connectionsTotal
        counts["tcp.open"] = len(factory.connections)
        for name in ("messages", "bytesReceived", "bytesSent"):
            counts[f"tcp.{name}"] = totals[name]
        for reason in ERROR_REASONS:
            counts[f"tcp.error.{reason}"] = factory.errors[reason]
        for reason in REFUSAL_REASONS:
            counts[f"tcp.dropped.{reason}"] = factory.refused[reason]
    for protocol in replies:
        counts["udp.messages"] += protocol.replies
        counts["udp.bytesReceived"] += protocol.bytesReceived
        counts["udp.bytesSent"] += protocol.bytesSent
        for reason in DROP_REASONS:
            counts[f"udp.dropped.{reason}"] += protocol.dropped[reason]
    return counts


class CountsCollector:
    """
    Collects greetd's metrics from L{readCounts}-style counts, read afresh at
    every scrape: one process's own, or the sum over worker processes.

    Every reason is reported from the start, at 0 until it happens, so that
    rates and alerts work without waiting for the first event.

    @ivar counts: Returns the counts now.
    @ivar tcp: Whether TCP is served, so its metrics are reported.
    @ivar udp: Whether UDP is served, so its metrics are reported.
    @ivar workers: Returns how many worker processes run now, with
        C{--workers}; C{None} for a single process.
    """

    def __init__(
        self,
        counts: Callable[[], Counter[str]],
        tcp: bool,
        udp: bool,
        workers: Callable[[], int] | None = None,
    ) -> None:
        self.counts = counts
        self.tcp = tcp
        self.udp = udp
        self.workers = workers

    def collect(self) -> Iterator[Metric]:
        connections = CounterMetricFamily(
            "greetd_connections", "TCP connections admitted."
        )
        openConnections = GaugeMetricFamily(
            "greetd_connections_open", "TCP connections open now."
        )
        messages = CounterMetricFamily(
            "greetd_messages", "Messages and datagrams answered.", labels=["transport"]
        )
        received = CounterMetricFamily(
            "greetd_bytes_received",
            "Bytes received from clients.",
            labels=["transport"],
        )
        sent = CounterMetricFamily(
            "greetd_bytes_sent", "Bytes sent to clients.", labels=["transport"]
        )
        errors = CounterMetricFamily(
            "greetd_errors",
            "TCP connections closed with an error, by reason.",
            labels=["transport", "reason"],
        )
        dropped = CounterMetricFamily(
            "greetd_dropped",
            "Connections refused and datagrams left unanswered, by reason.",
            labels=["transport", "reason"],
        )
        counts = self.counts()
        served: list[tuple[str, Sequence[str]]] = []
        if self.tcp:
            served.append(("tcp", REFUSAL_REASONS))
        if self.udp:
            served.append(("udp", DROP_REASONS))
        if self.tcp:
            connections.add_metric([], counts["tcp.connections"])
            openConnections.add_metric([], counts["tcp.open"])
            for reason in ERROR_REASONS:
                errors.add_metric(["tcp", reason], counts[f"tcp.error.{reason}"])
        for transport, reasons in served:
            messages.add_metric([transport], counts[f"{transport}.messages"])
            received.add_metric([transport], counts[f"{transport}.bytesReceived"])
            sent.add_metric([transport], counts[f"{transport}.bytesSent"])
            for reason in reasons:
                count = counts[f"{transport}.dropped.{reason}"]
                dropped.add_metric([transport, reason], count)
        yield from (connections, openConnections, messages, received, sent)
        yield from (errors, dropped)
        if self.workers is not None:
            workers = GaugeMetricFamily(
                "greetd_workers", "Worker processes running now."
            )
            workers.add_metric([], self.workers())
            yield workers


class GreetdCollector(CountsCollector):
    """
    Collects greetd's metrics from a L{GreetingFactory} and the
    L{ReplyProtocol}s of this process, whichever are being served.
    """

    def __init__(
        self,
        factory: GreetingFactory | None = None,
        replies: Sequence[ReplyProtocol] = (),
    ) -> None:
        super().__init__(
            partial(readCounts, factory, replies), factory is not None, bool(replies)
        )
        self.factory = factory
        self.replies = replies


class MetricsResource(Resource):
    """
    C{/metrics} in the Prometheus text format, rendered in the reactor thread
    (prometheus_client's own Twisted resource collects in a thread pool,
    where the protocols' counters would change under it).
    """

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.registry = registry

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        return generate_latest(self.registry)


class QuietSite(Site):
    """
    A L{Site} that writes no access log: a scrape every few seconds would
    drown the daemon's own log lines.
    """

    def log(self, request: HTTPRequest) -> None:
        pass


def metricsSite(collector: CountsCollector) -> Site:
    """
    A web site serving C{collector}'s metrics, with the process's own (CPU,
    memory, open files) beside them, at C{/metrics}.
    """
    registry = CollectorRegistry()
    registry.register(collector)
    ProcessCollector(registry=registry)
    root = pages.notFound()
    root.putChild(b"metrics", MetricsResource(registry))
    site = QuietSite(root)  # type: ignore[no-untyped-call]
    site.noisy = False
    return site
