"""
Tests for L{greetd.ops.metrics}.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from greetd.core.limits import ConnectionLimiter
from greetd.ops.metrics import GreetdCollector, MetricsResource, metricsSite
from greetd.protocols.datagram import ReplyProtocol
from greetd.protocols.greeting import GreetingFactory
from tests.helpers import connect, listening, scrape


class CollectorTests(SynchronousTestCase):
    def test_everythingFromZero(self) -> None:
        metrics = scrape(
            GreetdCollector(GreetingFactory(clock=Clock()), [ReplyProtocol()])
        )
        self.assertEqual(metrics[("greetd_connections_total", ())], 0)
        self.assertEqual(metrics[("greetd_connections_open", ())], 0)
        for reason in (
            *("access", "max-connections", "max-per-ip", "rate-per-ip"),
            "proxy-header",
        ):
            key = ("greetd_dropped_total", (("reason", reason), ("transport", "tcp")))
            self.assertEqual(metrics[key], 0)
        for reason in ("low-port", "access", "length", "rate", "global-rate"):
            key = ("greetd_dropped_total", (("reason", reason), ("transport", "udp")))
            self.assertEqual(metrics[key], 0)
        self.assertIn(("process_resident_memory_bytes", ()), metrics)

    def test_traffic(self) -> None:
        factory = GreetingFactory(clock=Clock(), limiter=ConnectionLimiter(1))
        first, _ = connect(factory)
        first.dataReceived(b"Michael\nTracy\n")
        connect(factory)
        reply, _ = listening(ReplyProtocol(maxLength=4))
        reply.datagramReceived(b"Sarah", ("127.0.0.1", 5000))
        reply.datagramReceived(b"Ann", ("127.0.0.1", 5000))
        metrics = scrape(GreetdCollector(factory, [reply]))
        tcp = (("transport", "tcp"),)
        udp = (("transport", "udp"),)
        self.assertEqual(metrics[("greetd_connections_total", ())], 1)
        self.assertEqual(metrics[("greetd_connections_open", ())], 1)
        self.assertEqual(metrics[("greetd_messages_total", tcp)], 2)
        self.assertEqual(metrics[("greetd_messages_total", udp)], 1)
        self.assertEqual(metrics[("greetd_bytes_received_total", tcp)], 14)
        self.assertEqual(metrics[("greetd_bytes_sent_total", tcp)], 7 + 16 + 14)
        self.assertEqual(metrics[("greetd_bytes_received_total", udp)], 8)
        self.assertEqual(metrics[("greetd_bytes_sent_total", udp)], 11)
        self.assertEqual(
            metrics[
                (
                    "greetd_dropped_total",
                    (("reason", "max-connections"), ("transport", "tcp")),
                )
            ],
            1,
        )
        self.assertEqual(
            metrics[
                ("greetd_dropped_total", (("reason", "length"), ("transport", "udp")))
            ],
            1,
        )
        first.dataReceived(b"x" * 2000)
        metrics = scrape(GreetdCollector(factory, [reply]))
        self.assertEqual(
            metrics[
                ("greetd_errors_total", (("reason", "length"), ("transport", "tcp")))
            ],
            1,
        )
        self.assertEqual(metrics[("greetd_connections_open", ())], 0)
        self.assertEqual(metrics[("greetd_messages_total", tcp)], 2)

    def test_onlyUDP(self) -> None:
        metrics = scrape(GreetdCollector(None, [ReplyProtocol()]))
        self.assertNotIn(("greetd_connections_open", ()), metrics)
        self.assertEqual(metrics[("greetd_messages_total", (("transport", "udp"),))], 0)

    def test_unknownPath(self) -> None:
        site = metricsSite(GreetdCollector())
        request = DummyRequest([b"other"])
        resource = site.getResourceFor(request)
        self.assertNotIsInstance(resource, MetricsResource)
        resource.render(request)
        self.assertEqual(request.responseCode, 404)
