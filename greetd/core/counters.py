"""
The counter schema: every count greetd keeps, declared once.

The protocols keep plain integers; a process reports them as one flat
mapping from a L{Count}'s C{key} (C{"tcp.dropped.max-per-ip"}) to a number.
Everything else is derived from L{SCHEMA}: the Prometheus collector
(L{greetd.ops.metrics}) renders each count as a sample of its L{Metric}, a
worker (L{greetd.daemon.worker}) reports the mapping to its parent, and the
parent (L{greetd.daemon.pool}) sums the workers' mappings, keeping the
counters of a worker that has exited but not its gauges (L{GAUGES}).

Adding a count is one edit here (a L{Count}, or a reason in one of the
C{*_REASONS} tuples), plus the code that counts it.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, NamedTuple, Protocol

#: A running total: only ever goes up, and survives its worker.
COUNTER = "counter"

#: A level now: read afresh, and forgotten with its worker.
GAUGE = "gauge"

#: Why a TCP connection may be refused before it is served: access control,
#: a connection limit; on a C{haproxy:} listener before its client is
#: known, a PROXY header that is not one or from a peer not trusted to send
#: one, the total cap, or the header's deadline; or an accept that failed
#: (out of descriptors: L{greetd.ops.accepterrors}).
REFUSAL_REASONS = (
    "access",
    "max-connections",
    "max-per-ip",
    "rate-per-ip",
    "proxy-header",
    "proxy-max-connections",
    "proxy-timeout",
    "accept",
)

#: Why an admitted TCP connection may be closed with an error.
ERROR_REASONS = ("length", "idle-timeout", "write-timeout", "internal")

#: Why a datagram may be left unanswered.
DROP_REASONS = (
    "low-port",
    "access",
    "length",
    "rate",
    "global-rate",
    "send-failed",
    "proxy",
)

#: The transports a count may belong to.
TRANSPORTS = ("tcp", "udp")

#: What every count is read into: its L{Count.key} to its value.
Counts = Counter


class Metric(NamedTuple):
    """
    A Prometheus metric family.

    @ivar name: Its name, without the C{_total} Prometheus adds to counters.
    @ivar help: What it counts, for C{# HELP}.
    @ivar kind: L{COUNTER} or L{GAUGE}.
    @ivar labels: The names of its labels.
    """

    name: str
    help: str
    kind: str
    labels: tuple[str, ...] = ()


CONNECTIONS = Metric(
    "greetd_connections",
    "TCP connections admitted as clients, with health checks that sent a message.",
    COUNTER,
)
HEALTH_CHECKS = Metric(
    "greetd_health_checks",
    "TCP connections admitted as load balancer health checks (one that sends "
    "a message is then a client, counted in greetd_connections_total too).",
    COUNTER,
)
CONNECTIONS_OPEN = Metric("greetd_connections_open", "TCP connections open now.", GAUGE)
HEADERS_OPEN = Metric(
    "greetd_proxy_headers_open",
    "TCP connections open now that are still sending their PROXY header "
    "(not in greetd_connections_open).",
    GAUGE,
)
MESSAGES = Metric(
    "greetd_messages", "Messages and datagrams answered.", COUNTER, ("transport",)
)
BYTES_RECEIVED = Metric(
    "greetd_bytes_received", "Bytes received from clients.", COUNTER, ("transport",)
)
BYTES_SENT = Metric(
    "greetd_bytes_sent", "Bytes sent to clients.", COUNTER, ("transport",)
)
ERRORS = Metric(
    "greetd_errors",
    "TCP connections closed with an error, by reason.",
    COUNTER,
    ("transport", "reason"),
)
DROPPED = Metric(
    "greetd_dropped",
    "Connections refused and datagrams left unanswered, by reason.",
    COUNTER,
    ("transport", "reason"),
)

#: Every metric family, in the order a scrape shows them.
METRICS = (
    CONNECTIONS,
    HEALTH_CHECKS,
    CONNECTIONS_OPEN,
    HEADERS_OPEN,
    MESSAGES,
    BYTES_RECEIVED,
    BYTES_SENT,
    ERRORS,
    DROPPED,
)


def key(transport: str, name: str, reason: str | None = None) -> str:
    """
    The flat key of a count: C{tcp.messages}, C{udp.dropped.rate}.
    """
    return f"{transport}.{name}" if reason is None else f"{transport}.{name}.{reason}"


class Count(NamedTuple):
    """
    One count: a sample of a L{Metric}.

    @ivar key: Its flat key (L{key}), as processes report it.
    @ivar transport: The service it belongs to, C{"tcp"} or C{"udp"}.
    @ivar metric: The family it is a sample of.
    @ivar labelValues: Its label values, in the order of C{metric.labels}.
    """

    key: str
    transport: str
    metric: Metric
    labelValues: tuple[str, ...]


def _schema() -> tuple[Count, ...]:
    counts = [
        Count(key("tcp", "connections"), "tcp", CONNECTIONS, ()),
        Count(key("tcp", "healthChecks"), "tcp", HEALTH_CHECKS, ()),
        Count(key("tcp", "open"), "tcp", CONNECTIONS_OPEN, ()),
        Count(key("tcp", "headersOpen"), "tcp", HEADERS_OPEN, ()),
    ]
    for transport in TRANSPORTS:
        counts += [
            Count(key(transport, "messages"), transport, MESSAGES, (transport,)),
            Count(
                key(transport, "bytesReceived"),
                transport,
                BYTES_RECEIVED,
                (transport,),
            ),
            Count(key(transport, "bytesSent"), transport, BYTES_SENT, (transport,)),
        ]
    counts += [
        Count(key("tcp", "error", reason), "tcp", ERRORS, ("tcp", reason))
        for reason in ERROR_REASONS
    ]
    for transport, reasons in (("tcp", REFUSAL_REASONS), ("udp", DROP_REASONS)):
        counts += [
            Count(
                key(transport, "dropped", reason),
                transport,
                DROPPED,
                (transport, reason),
            )
            for reason in reasons
        ]
    return tuple(counts)


#: Every count greetd keeps.
SCHEMA = _schema()

#: The keys of the counts that are gauges.
GAUGES = frozenset(count.key for count in SCHEMA if count.metric.kind == GAUGE)


def sumCounts(reports: list[Counts[str]], retired: Counts[str]) -> Counts[str]:
    """
    The counts of several processes summed, with C{retired}, the counters
    of processes that have exited.
    """
    total: Counts[str] = Counter(retired)
    for report in reports:
        total.update(report)
    return total


def retire(retired: Counts[str], report: Counts[str]) -> None:
    """
    Keep the counters of a process that has exited in C{retired}, so that
    sums never go backwards; its gauges go with it.
    """
    for name, value in report.items():
        if name not in GAUGES:
            retired[name] += value


class HasCounts(Protocol):
    """
    Something that reports counts of the schema (L{greetd.core.counters}):
    a L{GreetingFactory <greetd.protocols.greeting.GreetingFactory>} or a
    L{ReplyProtocol <greetd.protocols.datagram.ReplyProtocol>}.
    """

    def counts(self) -> Counts[str]: ...


def readCounts(sources: Iterable[HasCounts]) -> Counts[str]:
    """
    The counts of C{sources}, summed.
    """
    total: Counts[str] = Counter()
    for source in sources:
        total.update(source.counts())
    return total
