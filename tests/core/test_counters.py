"""
Tests for L{greetd.core.counters}, the counter schema.
"""

from __future__ import annotations

from collections import Counter

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from greetd.core.counters import (
    DROP_REASONS,
    ERROR_REASONS,
    GAUGES,
    METRICS,
    REFUSAL_REASONS,
    SCHEMA,
    key,
    retire,
    sumCounts,
)
from greetd.protocols.datagram import ReplyProtocol
from greetd.protocols.greeting import GreetingFactory


class SchemaTests(SynchronousTestCase):
    def test_keysUnique(self) -> None:
        keys = [count.key for count in SCHEMA]
        self.assertEqual(len(keys), len(set(keys)))

    def test_everyReasonCounted(self) -> None:
        keys = {count.key for count in SCHEMA}
        for reason in REFUSAL_REASONS:
            self.assertIn(key("tcp", "dropped", reason), keys)
        for reason in ERROR_REASONS:
            self.assertIn(key("tcp", "error", reason), keys)
        for reason in DROP_REASONS:
            self.assertIn(key("udp", "dropped", reason), keys)

    def test_labelsMatchTheirMetric(self) -> None:
        for count in SCHEMA:
            self.assertIn(count.metric, METRICS)
            self.assertEqual(len(count.labelValues), len(count.metric.labels))

    def test_gauges(self) -> None:
        self.assertEqual(GAUGES, {"tcp.open", "tcp.headersOpen"})

    def test_producersReportTheSchema(self) -> None:
        """
        The factory and the reply protocol report exactly the schema's
        counts of their transport: nothing undeclared, nothing missing.
        """
        tcp = {count.key for count in SCHEMA if count.transport == "tcp"}
        udp = {count.key for count in SCHEMA if count.transport == "udp"}
        self.assertEqual(set(GreetingFactory(clock=Clock()).counts()), tcp)
        self.assertEqual(set(ReplyProtocol(clock=Clock()).counts()), udp)


class SummingTests(SynchronousTestCase):
    def test_sumWithRetired(self) -> None:
        self.assertEqual(
            sumCounts(
                [Counter({"tcp.messages": 2, "tcp.open": 1}), Counter({"tcp.open": 2})],
                Counter({"tcp.messages": 5}),
            ),
            Counter({"tcp.messages": 7, "tcp.open": 3}),
        )

    def test_retireKeepsCountersNotGauges(self) -> None:
        retired: Counter[str] = Counter({"udp.messages": 1})
        retire(retired, Counter({"udp.messages": 2, "tcp.open": 4}))
        self.assertEqual(retired, Counter({"udp.messages": 3}))
