"""
Tests for L{greetd.ops.metricshttp}: the metrics site over in-memory
transports, on a fake clock.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from greetd.ops import metrics
from greetd.ops.metrics import GreetdCollector, MetricsResource, metricsSite
from greetd.ops.metricshttp import MetricsChannel, MetricsSite
from tests.helpers import oneTurn

ADDRESS = IPv4Address("TCP", "127.0.0.1", 40000)


class MetricsChannelTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.site = metricsSite(GreetdCollector())
        self.site.reactor = self.clock  # type: ignore[assignment]

    def connect(self) -> tuple[MetricsChannel, StringTransport]:
        channel = self.site.buildProtocol(ADDRESS)
        assert isinstance(channel, MetricsChannel)
        transport = StringTransport()
        channel.makeConnection(transport)
        return channel, transport

    def test_slowRequestCut(self) -> None:
        """
        A request whose headers take longer than the request timeout is
        answered 408 and closed, however steadily its bytes trickle in.
        """
        channel, transport = self.connect()
        channel.dataReceived(b"GET /metrics HTTP/1.1\r\n")
        for _ in range(9):
            self.clock.advance(1)
            channel.dataReceived(b"X")
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 408 "))
        self.assertTrue(transport.disconnecting)

    def test_keepAliveWaitsAgain(self) -> None:
        """
        A kept-alive connection idle after a response is closed quietly
        after the site's idle timeout, with no unsolicited C{408}; the next
        request has its own deadline from its first byte.
        """
        channel, transport = self.connect()
        channel.dataReceived(b"GET /metrics HTTP/1.1\r\nHost: m\r\n\r\n")
        self.assertIn(b"200 OK", transport.value())
        transport.clear()
        self.clock.advance(MetricsSite.idleTimeout - 1)
        self.assertEqual(transport.value(), b"")
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.disconnecting)
        channel, transport = self.connect()
        channel.dataReceived(b"GET /metrics HTTP/1.1\r\nHost: m\r\n\r\n")
        self.clock.advance(MetricsChannel.requestTimeout)
        channel.dataReceived(b"GET /metrics HTTP/1.1\r\n")
        self.clock.advance(MetricsChannel.requestTimeout - 1)
        # The status line, not the bytes: a metric's value may hold "408".
        self.assertNotIn(b"HTTP/1.1 408 ", transport.value())
        self.clock.advance(1)
        self.assertIn(b"HTTP/1.1 408 ", transport.value())

    def test_oneRequestPerTurn(self) -> None:
        """
        Pipelined requests are answered one per reactor turn, reading
        paused meanwhile; none while the peer is not taking responses.
        """
        channel, transport = self.connect()
        channel.dataReceived(b"GET /metrics HTTP/1.1\r\n\r\n" * 3)
        self.assertEqual(transport.value().count(b"200 OK"), 1)
        self.assertEqual(transport.producerState, "paused")
        oneTurn(self.clock)
        self.assertEqual(transport.value().count(b"200 OK"), 2)
        channel.pauseProducing()  # The transport's buffer is full.
        oneTurn(self.clock)
        self.assertEqual(transport.value().count(b"200 OK"), 2)
        channel.resumeProducing()
        self.assertEqual(transport.producerState, "paused")
        oneTurn(self.clock)
        self.assertEqual(transport.value().count(b"200 OK"), 3)
        self.assertEqual(transport.producerState, "producing")
        channel.dataReceived(b"GET /metrics HTTP/1.1\r\n\r\n")
        self.assertEqual(transport.value().count(b"200 OK"), 4)

    def test_pipelinedReuseBody(self) -> None:
        """
        A pipelined scrape is answered with the body rendered for the one
        before it, if at most L{MetricsResource.reuseFor} seconds old; a
        scrape that waited for its previous response is rendered afresh.
        """
        renders = iter(b"render %d\n" % n for n in range(10))
        self.patch(metrics, "generate_latest", lambda registry: next(renders))
        resource = self.site.resource.getStaticEntity(b"metrics")
        assert isinstance(resource, MetricsResource)
        resource.clock = self.clock
        channel, transport = self.connect()
        channel.dataReceived(b"GET /metrics HTTP/1.1\r\n\r\n" * 3)
        oneTurn(self.clock)
        self.clock.advance(MetricsResource.reuseFor + 0.1)
        channel.dataReceived(b"GET /metrics HTTP/1.1\r\n\r\n")
        oneTurn(self.clock)
        bodies = [
            response.split(b"\r\n\r\n", 1)[1]
            for response in transport.value().split(b"HTTP/1.1 ")[1:]
        ]
        self.assertEqual(
            bodies, [b"render 0\n", b"render 0\n", b"render 1\n", b"render 2\n"]
        )

    def test_refusedIgnoresTheRest(self) -> None:
        channel, transport = self.connect()
        channel.dataReceived(
            b"POST /metrics HTTP/1.1\r\nContent-Length: 100\r\n\r\n" + b"x" * 60
        )
        channel.dataReceived(b"x" * 40 + b"GET /metrics HTTP/1.1\r\n\r\n")
        response = transport.value()
        self.assertTrue(response.startswith(b"HTTP/1.1 405 "))
        self.assertNotIn(b"200", response)
        self.assertTrue(transport.disconnecting)

    def test_connectionCap(self) -> None:
        """
        Past L{MetricsSite.maxConnections} open connections, a new one is
        not built (its port closes it); one closing makes room.
        """
        channels = [self.connect()[0] for _ in range(MetricsSite.maxConnections)]
        self.assertIsNone(self.site.buildProtocol(ADDRESS))
        channels[0].connectionLost()
        self.assertIsNotNone(self.site.buildProtocol(ADDRESS))

    def test_idleClosedQuietly(self) -> None:
        """
        An idle connection is closed after the site's idle timeout, with no
        log line.
        """
        channel, transport = self.connect()
        channel.dataReceived(b"GET /metrics HTTP/1.1\r\nHost: m\r\n\r\n")
        self.clock.advance(MetricsSite.idleTimeout)
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)
        self.clock.advance(MetricsChannel.closeTimeout)
        self.assertTrue(transport.disconnected)

    def test_everyCloseHasADeadline(self) -> None:
        """
        A peer that does not take what it is owed when its connection
        closes (a refusal, a request timeout, the end of a request not kept
        alive) is cut after L{MetricsChannel.closeTimeout}; one that does is
        not, and no call is left pending.
        """
        for request in [
            b"POST /metrics HTTP/1.1\r\nContent-Length: 1\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nContent-Length: 1\r\n\r\n",
            b"GET /metrics HTTP/1.0\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\n",
            b"\x00garbage\r\n\r\n",
        ]:
            channel, transport = self.connect()
            channel.dataReceived(request)
            self.clock.advance(MetricsChannel.requestTimeout)
            self.assertTrue(transport.disconnecting, request)
            self.clock.advance(MetricsChannel.closeTimeout)
            self.assertTrue(transport.disconnected, request)
            channel.connectionLost()
        channel, transport = self.connect()
        channel.dataReceived(b"GET /metrics HTTP/1.0\r\n\r\n")
        channel.connectionLost()
        self.assertEqual(self.clock.getDelayedCalls(), [])
