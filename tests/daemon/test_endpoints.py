"""
Tests for L{greetd.daemon.endpoints}.
"""

from __future__ import annotations

import os
import socket

from twisted.internet import endpoints as twisted_endpoints
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.error import AlreadyListened
from twisted.internet.protocol import DatagramProtocol
from twisted.python.systemd import ListenFDs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from greetd.daemon import endpoints
from greetd.daemon.endpoints import (
    MAX_DATAGRAM,
    AdoptedDatagramServerEndpoint,
    IDatagramServerEndpoint,
    UDPServerEndpoint,
    datagramServerFromString,
    splitDescription,
    streamServerFromString,
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

    def test_proxied(self) -> None:
        """
        C{haproxy:} in front is for the protocol: the endpoint is the same.
        """
        endpoint = self.parse("haproxy:udp:53:interface=127.0.0.2")
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


class InheritedSocketsTests(SynchronousTestCase):
    """
    C{systemd:} descriptions, for datagrams here and as a check before
    Twisted's own parser for streams, against real sockets standing in for
    inherited ones.
    """

    def setUp(self) -> None:
        self.reactor = MemoryUDPReactor()
        self.udp = self.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.tcp = self.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.udp6 = self.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.sockets = ListenFDs(
            [self.tcp.fileno(), self.udp.fileno(), self.udp6.fileno()],
            ("greetd-tcp", "greetd-udp", "greetd-udp6"),
        )
        self.patch(endpoints, "inheritedSockets", lambda: self.sockets)

    def socket(
        self, family: socket.AddressFamily, kind: socket.SocketKind
    ) -> socket.socket:
        created = socket.socket(family, kind)
        self.addCleanup(created.close)
        return created

    def adopted(self, description: str) -> AdoptedDatagramServerEndpoint:
        endpoint = datagramServerFromString(self.reactor, description, 1025)
        assert isinstance(endpoint, AdoptedDatagramServerEndpoint)
        return endpoint

    def test_byName(self) -> None:
        endpoint = self.adopted("systemd:domain=INET:name=greetd-udp")
        self.assertEqual(endpoint.fileno, self.udp.fileno())
        self.assertEqual(endpoint.addressFamily, socket.AF_INET)
        self.assertEqual(endpoint.maxPacketSize, 1025)

    def test_byIndex(self) -> None:
        endpoint = self.adopted("systemd:domain=INET6:index=2")
        self.assertEqual(endpoint.fileno, self.udp6.fileno())
        self.assertEqual(endpoint.addressFamily, socket.AF_INET6)

    def test_listenAdopts(self) -> None:
        """
        Listening adopts the descriptor, made non-blocking, with the family
        and packet size, and then closes it (the reactor has its own copy);
        it can be done once only.
        """
        closed: list[int] = []
        self.patch(AdoptedDatagramServerEndpoint, "_close", closed.append)
        endpoint = self.adopted("systemd:domain=INET:name=greetd-udp")
        self.assertTrue(verifyObject(IDatagramServerEndpoint, endpoint))
        self.assertTrue(os.get_blocking(self.udp.fileno()))
        protocol = DatagramProtocol()
        self.successResultOf(endpoint.listen(protocol))
        self.assertFalse(os.get_blocking(self.udp.fileno()))
        self.assertEqual(
            self.reactor.adoptedPorts,
            [(self.udp.fileno(), socket.AF_INET, protocol, 1025)],
        )
        self.assertEqual(closed, [self.udp.fileno()])
        self.failureResultOf(endpoint.listen(protocol), AlreadyListened)

    def test_errors(self) -> None:
        for description, message in [
            ("systemd:name=greetd-udp", "domain=INET or INET6"),
            ("systemd:domain=UNIX:name=greetd-udp", "'UNIX' is not INET or INET6"),
            ("systemd:domain=INET", "exactly one of index= and name="),
            ("systemd:domain=INET:index=1:name=greetd-udp", "exactly one"),
            (
                "systemd:domain=INET:name=nope",
                "no inherited socket is named 'nope' (LISTEN_FDNAMES names: "
                "greetd-tcp, greetd-udp, greetd-udp6)",
            ),
            ("systemd:domain=INET:index=3", "no inherited socket at index 3 (3 "),
            ("systemd:domain=INET:index=x", "index 'x' is not a number"),
            (
                "systemd:domain=INET:name=greetd-tcp",
                "greetd-tcp is AF_INET SOCK_STREAM, not AF_INET SOCK_DGRAM",
            ),
            ("systemd:domain=INET:index=2", "AF_INET6 SOCK_DGRAM, not AF_INET"),
            ("systemd:domain=INET:bogus=1", "unexpected keyword argument 'bogus'"),
        ]:
            error = self.assertRaises(
                ValueError, datagramServerFromString, self.reactor, description
            )
            self.assertIn(message, str(error), description)

    def test_nothingInherited(self) -> None:
        self.sockets = ListenFDs([], ())
        error = self.assertRaises(
            ValueError,
            datagramServerFromString,
            self.reactor,
            "systemd:domain=INET:index=0",
        )
        self.assertIn("no inherited socket at index 0 (0 inherited", str(error))

    def test_streamChecked(self) -> None:
        """
        A C{systemd:} stream description naming a socket that is not there,
        or not a stream, gets the same clear error before Twisted parses it.
        """
        for description, message in [
            ("systemd:domain=INET:name=nope", "no inherited socket is named 'nope'"),
            ("systemd:domain=INET:index=1", "is AF_INET SOCK_DGRAM, not AF_INET"),
            ("systemd:INET:index=9", "no inherited socket at index 9"),
            ("systemd:domain=INET:name=greetd-tcp:x=1", "bad arguments for systemd"),
        ]:
            error = self.assertRaises(
                ValueError, streamServerFromString, self.reactor, description
            )
            self.assertIn(message, str(error), description)

    def test_streamDelegates(self) -> None:
        """
        Valid descriptions are Twisted's to parse.
        """
        endpoint = streamServerFromString(self.reactor, "tcp:9999")
        self.assertIsInstance(endpoint, TCP4ServerEndpoint)

    def test_sharesTwistedsReading(self) -> None:
        """
        The real L{inheritedSockets} is the reading Twisted's C{systemd:}
        stream parser made, since that reading consumed the environment.
        """
        self.assertIs(
            self.originalInheritedSockets(),
            twisted_endpoints._SystemdParser._sddaemon,  # type: ignore[attr-defined]
        )

    originalInheritedSockets = staticmethod(endpoints.inheritedSockets)
