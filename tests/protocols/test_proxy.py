"""
Tests for L{greetd.protocols.proxy}.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from greetd.core.access import AccessPolicy, parseNetwork
from greetd.protocols.greeting import GreetingFactory
from greetd.protocols.proxy import (
    ProxyHeaderFactory,
    ProxyHeaderProtocol,
)
from tests.helpers import AbortableTransport, capturingAccessLog

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
        accessLog, events = capturingAccessLog()
        factory = GreetingFactory(clock=Clock(), accessLog=accessLog)
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
        self.assertEqual(factory.admission.refused["access"], 1)
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
