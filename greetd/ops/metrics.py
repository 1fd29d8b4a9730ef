"""
Prometheus metrics, read from the services' own counters at scrape time.

The protocols keep plain integer counters; this collector turns them into
metrics only when Prometheus asks, so serving costs nothing per message.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Iterator, Sequence, cast

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from twisted.internet.interfaces import IReactorTime
from twisted.web import pages
from twisted.web.resource import Resource
from twisted.web.server import Request

from greetd.core.counters import (
    COUNTER,
    GAUGE,
    METRICS,
    SCHEMA,
    Counts,
    HasCounts,
    readCounts,
)
from greetd.ops.metricshttp import MetricsChannel, MetricsSite

_FAMILIES = {COUNTER: CounterMetricFamily, GAUGE: GaugeMetricFamily}


class CountsCollector:
    """
    Collects greetd's metrics from counts read afresh at every scrape: one
    process's own, or the sum over worker processes.  Each count of the
    schema is a sample of its metric family, so the collector needs no
    change when a count is added.

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
        counts: Callable[[], Counts[str]],
        tcp: bool,
        udp: bool,
        workers: Callable[[], int] | None = None,
    ) -> None:
        self.counts = counts
        self.tcp = tcp
        self.udp = udp
        self.workers = workers

    def collect(self) -> Iterator[Metric]:
        served = {"tcp": self.tcp, "udp": self.udp}
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
            metric.name: _FAMILIES[metric.kind](
                metric.name, metric.help, labels=list(metric.labels)
            )
            for metric in METRICS
        }
        counts = self.counts()
        for count in SCHEMA:
            if served[count.transport]:
                families[count.metric.name].add_metric(
                    list(count.labelValues), counts[count.key]
                )
        yield from (family for family in families.values() if family.samples)
        if self.workers is not None:
            workers = GaugeMetricFamily(
                "greetd_workers", "Worker processes running now."
            )
            workers.add_metric([], self.workers())
            yield workers


class GreetdCollector(CountsCollector):
    """
    Collects greetd's metrics from the greeting factory and the reply
    protocols of this process, whichever are being served.
    """

    def __init__(
        self,
        factory: HasCounts | None = None,
        replies: Sequence[HasCounts] = (),
    ) -> None:
        sources = [*([factory] if factory is not None else []), *replies]
        super().__init__(
            partial(readCounts, sources), factory is not None, bool(replies)
        )


class MetricsResource(Resource):
    """
    C{/metrics} in the Prometheus text format, rendered in the reactor thread
    (prometheus_client's own Twisted resource collects in a thread pool,
    where the protocols' counters would change under it).

    Rendering takes a few tenths of a millisecond, so a client pipelining
    scrapes would spend that every reactor turn; a pipelined scrape (one
    its client sent before it could see the previous response) is answered
    with the body last rendered, if that is at most L{reuseFor} seconds
    old.  A scrape that waited for its previous response is always
    rendered afresh.

    @ivar clock: What tells the time.
    @ivar body: The body last rendered.
    @ivar renderedAt: When it was rendered.
    """

    isLeaf = True

    #: Seconds a rendered body answers pipelined scrapes.
    reuseFor = 1.0

    body = b""
    renderedAt = float("-inf")

    def __init__(
        self, registry: CollectorRegistry, clock: IReactorTime | None = None
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.registry = registry
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock = cast(IReactorTime, clock)

    def render_GET(self, request: Request) -> bytes:
        if request.postpath:
            # /metrics/anything: only /metrics is served.
            page: bytes = pages.notFound().render(request)
            return page
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        now = self.clock.seconds()
        channel = getattr(request, "channel", None)
        if not (isinstance(channel, MetricsChannel) and channel.pipelined) or (
            now - self.renderedAt > self.reuseFor
        ):
            self.body, self.renderedAt = generate_latest(self.registry), now
        return self.body


def metricsSite(collector: CountsCollector) -> MetricsSite:
    """
    A web site serving C{collector}'s metrics, with the process's own (CPU,
    memory, open files) beside them, at C{/metrics}, bounded as
    L{greetd.ops.metricshttp} says.
    """
    registry = CollectorRegistry()
    registry.register(collector)
    ProcessCollector(registry=registry)
    root = pages.notFound()
    root.putChild(b"metrics", MetricsResource(registry))
    return MetricsSite(cast(Resource, root))
