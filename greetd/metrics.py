"""
Prometheus metrics, read from the services' own counters at scrape time.

The protocols keep plain integer counters; this collector turns them into
metrics only when Prometheus asks, so serving costs nothing per message.
"""

from __future__ import annotations

from typing import Iterator, Sequence

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

from greetd.datagram import DROP_REASONS, ReplyProtocol
from greetd.greeting import ERROR_REASONS, REFUSAL_REASONS, GreetingFactory


class GreetdCollector:
    """
    Collects greetd's metrics from a L{GreetingFactory} and the
    L{ReplyProtocol}s, whichever are being served.

    Every reason is reported from the start, at 0 until it happens, so that
    rates and alerts work without waiting for the first event.
    """

    def __init__(
        self,
        factory: GreetingFactory | None = None,
        replies: Sequence[ReplyProtocol] = (),
    ) -> None:
        self.factory = factory
        self.replies = replies

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
        factory = self.factory
        if factory is not None:
            totals = factory.totals()
            connections.add_metric([], factory.connectionsTotal)
            openConnections.add_metric([], len(factory.connections))
            messages.add_metric(["tcp"], totals["messages"])
            received.add_metric(["tcp"], totals["bytesReceived"])
            sent.add_metric(["tcp"], totals["bytesSent"])
            for reason in ERROR_REASONS:
                errors.add_metric(["tcp", reason], factory.errors[reason])
            for reason in REFUSAL_REASONS:
                dropped.add_metric(["tcp", reason], factory.refused[reason])
        if self.replies:
            messages.add_metric(["udp"], sum(p.replies for p in self.replies))
            received.add_metric(["udp"], sum(p.bytesReceived for p in self.replies))
            sent.add_metric(["udp"], sum(p.bytesSent for p in self.replies))
            for reason in DROP_REASONS:
                count = sum(p.dropped[reason] for p in self.replies)
                dropped.add_metric(["udp", reason], count)
        yield from (connections, openConnections, messages, received, sent)
        yield from (errors, dropped)


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


def metricsSite(collector: GreetdCollector) -> Site:
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
