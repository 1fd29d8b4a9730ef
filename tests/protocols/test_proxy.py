"""
Tests for L{greetd.protocols.proxy}.
"""

from __future__ import annotations

from ipaddress import IPv6Address as IPv6

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.task import Clock
from twisted.logger import LogLevel, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from greetd.core.access import AccessPolicy, parseNetwork
from greetd.core.limits import ConnectionLimiter
from greetd.core.proxyheader import V2_SIGNATURE
from greetd.protocols.admission import Admission
from greetd.protocols.greeting import GreetingFactory
from greetd.protocols.proxy import ProxyHeaderFactory, ProxyHeaderProtocol
from tests.helpers import AbortableTransport, captureLogs, capturingAccessLog

BALANCER = IPv4Address("TCP", "127.0.0.1", 40000)
HEADER = b"PROXY TCP4 192.0.2.7 127.0.0.1 5555 9999\r\n"


def proxied(
    factory: GreetingFactory, headerTimeout: float = 10
) -> tuple[ProxyHeaderProtocol, AbortableTransport, Clock]:
    clock = Clock()
    wrapper, transport = connectThrough(
        ProxyHeaderFactory(factory, clock, headerTimeout)
    )
    return wrapper, transport, clock


def connectThrough(
    wrappers: ProxyHeaderFactory,
) -> tuple[ProxyHeaderProtocol, AbortableTransport]:
    """
    Connect a new protocol of C{wrappers} from the balancer's address.
    """
    wrapper = wrappers.buildProtocol(BALANCER)
    assert isinstance(wrapper, ProxyHeaderProtocol)
    transport = AbortableTransport(peerAddress=BALANCER)
    transport.protocol = wrapper
    wrapper.makeConnection(transport)
    return wrapper, transport


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

    def test_invalidHeaderWarnsOnce(self) -> None:
        """
        A header that is not one drops the connection and is counted as a
        C{proxy-header} refusal; it is logged as one warning line, no
        traceback, at most once a minute per source.
        """
        events = captureLogs(self, Admission)
        clock = Clock()
        factory = GreetingFactory(clock=clock)
        wrappers = ProxyHeaderFactory(factory, clock)
        for data in (b"PROXY TCP4 abc 127.0.0.1 1 2\r\n", b"\xff\xfe", b"PROXY TCP4"):
            wrapper, _ = connectThrough(wrappers)
            wrapper.dataReceived(data)
            wrapper.dataReceived(b"more")
        self.assertEqual(factory.admission.refused["proxy-header"], 2)
        self.assertEqual(factory.connections, set())
        self.assertEqual(len(events), 1)
        [event] = events
        self.assertEqual(event["log_level"], LogLevel.warn)
        self.assertNotIn("log_failure", event)
        self.assertEqual(
            formatEvent(event),
            "Dropped a connection from 127.0.0.1:40000: "
            "bad PROXY header (bad source address)",
        )
        self.assertEqual(
            (event["reason"], event["greetdEvent"]),
            ("proxy-header", "connection.refused"),
        )
        clock.advance(60)
        wrapper, _ = connectThrough(wrappers)
        wrapper.dataReceived(b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n")
        self.assertEqual(len(events), 2)
        self.assertEqual(events[1]["proxyError"], "bad source address")

    def test_invalidHeaderCloses(self) -> None:
        factory = GreetingFactory(clock=Clock())
        wrapper, transport, clock = proxied(factory)
        wrapper.dataReceived(b"PROXY TCP4 1.2.3.4 1.2.3.4 99999 2\r\nexit\n")
        self.assertFalse(transport.connected)
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(transport.value(), b"")

    def test_v2(self) -> None:
        """
        A version 2 header names the client; the bytes after it are its
        first message.
        """
        factory = GreetingFactory(clock=Clock())
        wrapper, transport, _ = proxied(factory)
        header = V2_SIGNATURE + bytes([0x21, 0x21, 0, 36])
        header += IPv6("2001:db8::7").packed + IPv6("::1").packed + b"\x15\xb3\x27\x0f"
        wrapper.dataReceived(header[:7])
        wrapper.dataReceived(header[7:] + b"Sarah")
        [protocol] = factory.connections
        self.assertEqual(protocol.peer, "[2001:db8::7]:5555")
        self.assertEqual(wrapper.getHost(), IPv6Address("TCP", "::1", 9999))
        self.assertEqual(transport.value(), b"WelcomeHello, Sarah!")

    def test_localIsTheBalancer(self) -> None:
        """
        A v2 LOCAL header (a health check) is served as the balancer's own
        connection, and marked local.
        """
        factory = GreetingFactory(clock=Clock())
        wrapper, transport, _ = proxied(factory)
        wrapper.dataReceived(V2_SIGNATURE + bytes([0x20, 0x00, 0, 0]))
        self.assertEqual(transport.value(), b"Welcome")
        [protocol] = factory.connections
        self.assertEqual(protocol.peer, "127.0.0.1:40000")
        assert wrapper.header is not None
        self.assertTrue(wrapper.header.local)
        self.assertTrue(wrapper.healthCheck)
        self.assertTrue(protocol.healthCheck)
        self.assertEqual((factory.connectionsTotal, factory.healthChecksTotal), (0, 1))

    def test_ipv6PrefixThroughHeaders(self) -> None:
        """
        Clients of one IPv6 /64 named by PROXY headers share the per-address
        limits; with a prefix of 128 each address is apart.
        """
        for prefix, admitted in ((64, 2), (128, 5)):
            factory = GreetingFactory(
                clock=Clock(), limiter=ConnectionLimiter(0, 2, ipv6Prefix=prefix)
            )
            for host in range(1, 6):
                wrapper, _, _ = proxied(factory)
                wrapper.dataReceived(
                    b"PROXY TCP6 2001:db8::%d ::1 5555 9999\r\n" % host
                )
            self.assertEqual(len(factory.connections), admitted)
            self.assertEqual(factory.admission.refused["max-per-ip"], 5 - admitted)
