"""
Tests for L{greetd.endpoints}.
"""

from __future__ import annotations

from twisted.internet.protocol import DatagramProtocol
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from greetd.endpoints import (
    MAX_DATAGRAM,
    IDatagramServerEndpoint,
    UDPServerEndpoint,
    datagramServerFromString,
    splitDescription,
)
from tests.helpers import MemoryUDPReactor


class SplitDescriptionTests(SynchronousTestCase):
    def test_positionalAndKeyword(self) -> None:
        self.assertEqual(
            splitDescription("udp:9999:interface=127.0.0.1"),
            (["udp", "9999"], {"interface": "127.0.0.1"}),
        )

    def test_escapes(self) -> None:
        self.assertEqual(
            splitDescription(r"udp:9999:interface=\:\:1"),
            (["udp", "9999"], {"interface": "::1"}),
        )
        self.assertEqual(splitDescription("a\\=b:c=d=e"), (["a=b"], {"c": "d=e"}))

    def test_positionalAfterKeyword(self) -> None:
        self.assertRaises(ValueError, splitDescription, "udp:port=1:2")

    def test_keywordTwice(self) -> None:
        self.assertRaises(ValueError, splitDescription, "udp:port=1:port=2")


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
