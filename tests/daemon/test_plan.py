"""
Tests for L{greetd.daemon.plan}, the listener plan and the endpoint grammar.
"""

from __future__ import annotations

from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from greetd.daemon.endpoints import (
    MAX_DATAGRAM,
    IDatagramServerEndpoint,
    ProxiedServerEndpoint,
    UDPServerEndpoint,
)
from greetd.daemon.plan import datagramServerFromString, streamServerFromString
from greetd.protocols.greeting import GreetingFactory
from greetd.protocols.proxy import ProxyHeaderFactory
from tests.helpers import MemoryUDPReactor


class DatagramServerFromStringTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryUDPReactor()

    def parse(self, description: str) -> UDPServerEndpoint:
        endpoint = datagramServerFromString(self.reactor, description)
        assert isinstance(endpoint, UDPServerEndpoint)
        return endpoint

    def test_portOnly(self) -> None:
        endpoint = self.parse("udp:9999")
        self.assertEqual((endpoint.port, endpoint.interface), (9999, ""))
        self.assertEqual(endpoint.maxPacketSize, MAX_DATAGRAM)

    def test_ipv6Interface(self) -> None:
        endpoint = self.parse(r"udp:0:interface=\:\:1")
        self.assertEqual((endpoint.port, endpoint.interface), (0, "::1"))

    def test_keywords(self) -> None:
        endpoint = self.parse("udp:interface=127.0.0.2:port=53")
        self.assertEqual((endpoint.port, endpoint.interface), (53, "127.0.0.2"))

    def test_errors(self) -> None:
        for description, message in [
            ("udp", "port number is required"),
            ("udp:x", "'x' is not a number"),
            ("udp:70000", "out of range"),
            ("udp:1:interface=localhost", "not an IPv4 or IPv6 address"),
            ("udp:1:bogus=1", "unexpected keyword argument 'bogus'"),
            ("udp:1:2:3", "too many positional arguments"),
            ("tcp:1", "unknown datagram endpoint type 'tcp'"),
        ]:
            error = self.assertRaises(
                ValueError, datagramServerFromString, self.reactor, description
            )
            self.assertIn(message, str(error), description)

    def test_listen(self) -> None:
        endpoint = datagramServerFromString(
            self.reactor, "udp:9999:interface=127.0.0.1", maxPacketSize=1025
        )
        self.assertTrue(verifyObject(IDatagramServerEndpoint, endpoint))
        protocol = DatagramProtocol()
        port = self.successResultOf(endpoint.listen(protocol))
        self.assertEqual(self.reactor.udpServers, [(9999, protocol, "127.0.0.1", 1025)])
        self.assertEqual(port.getHost().port, 9999)


class StreamServerFromStringTests(SynchronousTestCase):
    def test_haproxyPrefix(self) -> None:
        reactor = MemoryReactor()
        endpoint = streamServerFromString(
            reactor, "haproxy:tcp:9999:interface=127.0.0.1"
        )
        assert isinstance(endpoint, ProxiedServerEndpoint)
        self.assertIsInstance(endpoint.endpoint, TCP4ServerEndpoint)
        factory = GreetingFactory(clock=Clock())
        self.successResultOf(endpoint.listen(factory))
        [(port, wrapper, _, interface)] = reactor.tcpServers
        self.assertEqual((port, interface), (9999, "127.0.0.1"))
        assert isinstance(wrapper, ProxyHeaderFactory)
        self.assertIs(wrapper.wrappedFactory, factory)

    def test_otherEndpoints(self) -> None:
        endpoint = streamServerFromString(MemoryReactor(), "tcp:9999")
        self.assertIsInstance(endpoint, TCP4ServerEndpoint)
