"""
Tests for L{greetd.protocols.proxy}.
"""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase

from greetd.core.access import AccessPolicy, parseNetwork
from greetd.protocols.greeting import GreetingFactory, GreetingProtocol
from greetd.protocols.proxy import (
    MAX_HEADER,
    ProxiedServerEndpoint,
    ProxyHeaderFactory,
    ProxyHeaderProtocol,
    splitProxyHeader,
    streamServerFromString,
)
from tests.helpers import AbortableTransport, captureLogs

BALANCER = IPv4Address("TCP", "127.0.0.1", 40000)
HEADER = b"PROXY TCP4 192.0.2.7 127.0.0.1 5555 9999\r\n"


def proxied(
    factory: GreetingFactory, headerTimeout: float = 10
) -> tuple[ProxyHeaderProtocol, AbortableTransport, Clock]:
    clock = Clock()
    wrapper = ProxyHeaderFactory(factory, clock, headerTimeout).buildProtocol(BALANCER)
    assert isinstance(wrapper, ProxyHeaderProtocol)
    transport = AbortableTransport(peerAddress=BALANCER)
    transport.protocol = wrapper
    wrapper.makeConnection(transport)
    return wrapper, transport, clock


class ProxyHeaderProtocolTests(SynchronousTestCase):
    def test_waitsForHeader(self) -> None:
        """
        Nothing reaches the greeting protocol, and no banner is sent, until
        the header is complete; then the client's address is the peer.
        """
        events = captureLogs(self, GreetingProtocol)
        factory = GreetingFactory(clock=Clock())
        wrapper, transport, _ = proxied(factory)
        self.assertEqual(transport.value(), b"")
        wrapper.dataReceived(HEADER[:20])
        self.assertEqual((transport.value(), factory.connections), (b"", set()))
        wrapper.dataReceived(HEADER[20:])
        self.assertEqual(transport.value(), b"Welcome")
        [protocol] = factory.connections
        self.assertEqual(protocol.peer, "192.0.2.7:5555")
        self.assertEqual(events[0]["peer"], "192.0.2.7:5555")
        wrapper.dataReceived(b"Ann\n")
        self.assertEqual(transport.value(), b"WelcomeHello, Ann!\n")

    def test_dataWithHeader(self) -> None:
        factory = GreetingFactory(clock=Clock())
        wrapper, transport, _ = proxied(factory)
        wrapper.dataReceived(HEADER + b"Michael")
        self.assertEqual(transport.value(), b"WelcomeHello, Michael!")

    def test_accessUsesClientAddress(self) -> None:
        denied = AccessPolicy(deny=[parseNetwork("192.0.2.0/24")])
        factory = GreetingFactory(clock=Clock(), access=denied)
        wrapper, transport, _ = proxied(factory)
        wrapper.dataReceived(HEADER)
        self.assertEqual(factory.refused["access"], 1)
        self.assertFalse(transport.connected)

    def test_badHeader(self) -> None:
        factory = GreetingFactory(clock=Clock())
        wrapper, transport, _ = proxied(factory)
        wrapper.dataReceived(b"Michael, no header at all\r\n")
        self.assertFalse(transport.connected)
        self.assertEqual(factory.connections, set())
        self.assertEqual(transport.value(), b"")

    def test_headerTimeout(self) -> None:
        factory = GreetingFactory(clock=Clock())
        wrapper, transport, clock = proxied(factory, headerTimeout=10)
        wrapper.dataReceived(HEADER[:10])
        clock.advance(10)
        self.assertTrue(transport.aborted)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_timerCancelled(self) -> None:
        factory = GreetingFactory(clock=Clock(), idleTimeout=0)
        wrapper, transport, clock = proxied(factory)
        wrapper.dataReceived(HEADER)
        self.assertEqual(clock.getDelayedCalls(), [])
        wrapper.dataReceived(b"exit")
        self.assertFalse(transport.connected)
        self.assertEqual(factory.connections, set())


class EndpointTests(SynchronousTestCase):
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


#: A version 2 header's fixed part: the signature, then version 2 PROXY.
V2 = b"\r\n\r\n\x00\r\nQUIT\n\x21"


def v2Header(familyTransport: int, addresses: bytes) -> bytes:
    return V2 + bytes([familyTransport]) + struct.pack("!H", len(addresses)) + addresses


class SplitProxyHeaderTests(SynchronousTestCase):
    """
    L{splitProxyHeader} takes the PROXY header off a datagram, as nginx's
    C{proxy_protocol on} sends it for UDP.
    """

    def test_nginx(self) -> None:
        """
        What nginx 1.22 sends for UDP: a version 1 line (saying TCP4) and
        the client's datagram, in one datagram.
        """
        self.assertEqual(
            splitProxyHeader(b"PROXY TCP4 127.0.0.2 127.0.0.1 38567 20000\r\nAlice"),
            (("127.0.0.2", 38567), b"Alice"),
        )
        self.assertEqual(
            splitProxyHeader(b"PROXY TCP6 2001:db8::7 ::1 5000 9999\r\n"),
            (("2001:db8::7", 5000), b""),
        )

    def test_version2(self) -> None:
        addresses = bytes([192, 0, 2, 7, 127, 0, 0, 1]) + struct.pack("!HH", 4000, 53)
        self.assertEqual(
            splitProxyHeader(v2Header(0x12, addresses) + b"hi"),
            (("192.0.2.7", 4000), b"hi"),
        )
        local = V2[:-1] + b"\x20\x00\x00\x00"
        self.assertEqual(splitProxyHeader(local + b"hi"), (None, b"hi"))

    def test_unknown(self) -> None:
        """
        A header that names no client (the balancer speaking for itself)
        leaves the datagram's own source.
        """
        self.assertEqual(
            splitProxyHeader(b"PROXY UNKNOWN x\r\nAlice"), (None, b"Alice")
        )

    def test_invalid(self) -> None:
        for datagram in [
            b"Alice",
            b"",
            b"PROXY TCP4 127.0.0.2",
            b"PROXY TCP4 host 127.0.0.1 1 2\r\nA",
            b"PROXY TCP4 2001:db8::7 127.0.0.1 1 2\r\nA",
            b"PROXY TCP4 127.0.0.2 127.0.0.1 65536 2\r\nA",
            b"PROXY TCP4 127.0.0.2 127.0.0.1 port 2\r\nA",
            b"PROXY TCP4 \xff 127.0.0.1 1 2\r\nA",
            b"PROXY UDP4 127.0.0.2 127.0.0.1 1 2\r\nA",
            b"PROXY " + b"x" * 200 + b"\r\nA",
            v2Header(0x12, b"\x00" * 4),
            v2Header(0x12, b"\x00" * MAX_HEADER),
            V2[:-1] + b"\x31\x12\x00\x00",
        ]:
            with self.assertRaises(ValueError, msg=repr(datagram)):
                splitProxyHeader(datagram)

    @given(st.binary(max_size=600))
    def test_anyBytes(self, datagram: bytes) -> None:
        """
        Whatever a datagram holds, it is split or refused with a
        L{ValueError}, and the client's datagram is what followed a header.
        """
        for candidate in (datagram, b"PROXY " + datagram, V2 + datagram):
            try:
                client, payload = splitProxyHeader(candidate)
            except ValueError:
                continue
            self.assertTrue(candidate.endswith(payload))
            if client is not None:
                self.assertLessEqual(0, client[1])
                self.assertLessEqual(client[1], 65535)
            self.assertLessEqual(len(candidate) - len(payload), MAX_HEADER)
