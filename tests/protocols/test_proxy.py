"""
Tests for L{greetd.protocols.proxy}.
"""

from __future__ import annotations

from ipaddress import IPv6Address as IPv6

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.interfaces import IAddress
from twisted.internet.task import Clock
from twisted.logger import LogLevel, formatEvent
from twisted.protocols.policies import WrappingFactory
from twisted.trial.unittest import SynchronousTestCase

from greetd.core.access import AccessPolicy, TrustedPeers, parseNetwork
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
        ProxyHeaderFactory(factory, clock, headerTimeout, factory.admission)
    )
    return wrapper, transport, clock


def connectThrough(
    wrappers: ProxyHeaderFactory, peer: IAddress = BALANCER
) -> tuple[ProxyHeaderProtocol, AbortableTransport]:
    """
    Connect a new protocol of C{wrappers} from C{peer}, by default the
    balancer's address.
    """
    wrapper = wrappers.buildProtocol(peer)
    assert isinstance(wrapper, ProxyHeaderProtocol)
    transport = AbortableTransport(peerAddress=peer)
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
        self.assertEqual(protocol.peer, "192.0.2.7:5555 via 127.0.0.1:40000")
        self.assertEqual(events[0]["peer"], "192.0.2.7:5555 via 127.0.0.1:40000")
        # Plain Twisted addresses, which compare equal to Twisted's own.
        self.assertEqual(wrapper.getPeer(), IPv4Address("TCP", "192.0.2.7", 5555))
        self.assertEqual(wrapper.balancer, BALANCER)
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
        wrappers = ProxyHeaderFactory(factory, clock, admission=factory.admission)
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
        clock.advance(10)
        clock.advance(50)
        wrapper, _ = connectThrough(wrappers)
        wrapper.dataReceived(b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n")
        warnings = [event for event in events if event["reason"] == "proxy-header"]
        self.assertEqual(len(warnings), 2)
        self.assertEqual(warnings[1]["proxyError"], "bad source address")

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
        self.assertEqual(protocol.peer, "[2001:db8::7]:5555 via 127.0.0.1:40000")
        self.assertEqual(wrapper.getPeer(), IPv6Address("TCP", "2001:db8::7", 5555))
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


#: A peer on another host, outside the default C{--proxy-from}.
STRANGER = IPv4Address("TCP", "203.0.113.9", 40000)


class TrustedPeerTests(SynchronousTestCase):
    """
    Only a peer in the admission's C{proxyFrom} (loopback unless given) may
    name a client: from anyone else a header is not believed.
    """

    def test_untrustedDroppedAtOnce(self) -> None:
        """
        A direct client claiming an allowed address is not served under
        C{--allow 10.0.0.0/8}: it is dropped as soon as it connects, counted
        as a bad header and warned of once a minute, and holds no place.
        """
        events = captureLogs(self, Admission)
        clock = Clock()
        allowed = AccessPolicy(allow=[parseNetwork("10.0.0.0/8")])
        factory = GreetingFactory(clock=clock, access=allowed)
        wrappers = ProxyHeaderFactory(factory, clock, admission=factory.admission)
        for _ in range(3):
            wrapper, transport = connectThrough(wrappers, STRANGER)
            self.assertFalse(transport.connected)
            wrapper.dataReceived(b"PROXY TCP4 10.1.2.3 10.0.0.1 5555 9999\r\nAnn\n")
            self.assertEqual(transport.value(), b"")
        self.assertEqual(factory.connections, set())
        self.assertEqual(factory.admission.refused["proxy-header"], 3)
        self.assertEqual(factory.admission.limiter.open, 0)
        self.assertEqual(clock.getDelayedCalls(), [])
        [event] = events
        self.assertEqual(
            formatEvent(event),
            "Dropped a connection from 203.0.113.9:40000: "
            "bad PROXY header (peer not in --proxy-from)",
        )

    def test_proxyFromTrusts(self) -> None:
        """
        A peer in C{proxyFrom} is believed; loopback then is not.
        """
        factory = GreetingFactory(clock=Clock())
        factory.admission.proxyFrom = TrustedPeers([parseNetwork("203.0.113.0/24")])
        wrappers = ProxyHeaderFactory(factory, Clock(), admission=factory.admission)
        wrapper, transport = connectThrough(wrappers, STRANGER)
        wrapper.dataReceived(HEADER)
        self.assertEqual(transport.value(), b"Welcome")
        _, balancer = connectThrough(wrappers)
        self.assertFalse(balancer.connected)

    def test_loopbackAndUnixTrusted(self) -> None:
        """
        By default loopback peers are believed, IPv4 ones seen through a
        dual-stack socket too, and UNIX-socket peers (no address: the file
        system guards them); a peer on another host is not.
        """
        factory = GreetingFactory(clock=Clock(), limiter=ConnectionLimiter())
        wrappers = ProxyHeaderFactory(factory, Clock(), admission=factory.admission)
        for peer, believed in [
            (IPv6Address("TCP", "::ffff:127.0.0.1", 40000), True),
            (IPv6Address("TCP", "::1", 40000), True),
            (UNIXAddress(None), True),
            (IPv6Address("TCP", "::ffff:203.0.113.9", 40000), False),
            (IPv6Address("TCP", "2001:db8::1", 40000), False),
        ]:
            wrapper, transport = connectThrough(wrappers, peer)
            wrapper.dataReceived(HEADER)
            self.assertEqual(transport.value() == b"Welcome", believed, peer)


class HeaderPhaseLimitTests(SynchronousTestCase):
    """
    A trusted peer's connection still sending its header holds a place
    under the total cap from accept, and not under the per-source cap: a
    balancer carries many clients.
    """

    def test_totalCapFromAccept(self) -> None:
        """
        Connections from one trusted balancer that have not finished their
        header are not capped per peer; no more than C{maxConnections} are
        open in all, past which a connection is closed at once.
        """
        clock = Clock()
        factory = GreetingFactory(clock=clock, limiter=ConnectionLimiter(6, 2, 1))
        wrappers = ProxyHeaderFactory(factory, clock, admission=factory.admission)
        stalled = [connectThrough(wrappers) for _ in range(4)]
        self.assertEqual([transport.connected for _, transport in stalled], [True] * 4)
        self.assertEqual(factory.admission.refused["max-per-ip"], 0)
        other = IPv4Address("TCP", "127.0.0.2", 40000)
        for client in range(2):
            wrapper, transport = connectThrough(wrappers, other)
            wrapper.dataReceived(b"PROXY TCP4 192.0.2.%d 127.0.0.1 1 2\r\n" % client)
            self.assertEqual(transport.value(), b"Welcome")
        self.assertEqual(factory.admission.limiter.open, 6)
        _, refused = connectThrough(wrappers)
        self.assertEqual(refused.value(), b"Error: too many connections\r\n")
        self.assertEqual(factory.admission.refused["proxy-max-connections"], 1)

    def test_stalledCutAtDeadline(self) -> None:
        """
        A trusted peer's connections that never finish their header are cut
        at the header deadline, and their places return: the balancer's next
        connections are served.
        """
        clock = Clock()
        factory = GreetingFactory(clock=clock, limiter=ConnectionLimiter(10, 2, 0))
        wrappers = ProxyHeaderFactory(factory, clock, 10, factory.admission)
        stalled = [connectThrough(wrappers) for _ in range(10)]
        for wrapper, _ in stalled:
            wrapper.dataReceived(b"PROXY TCP4 192.0.2.")
        self.assertEqual(factory.admission.limiter.open, 10)
        clock.advance(9.9)
        self.assertFalse(any(transport.aborted for _, transport in stalled))
        clock.advance(0.1)
        self.assertTrue(all(transport.aborted for _, transport in stalled))
        self.assertEqual(factory.admission.limiter.open, 0)
        self.assertEqual(clock.getDelayedCalls(), [])
        for client in range(10):
            wrapper, transport = connectThrough(wrappers)
            wrapper.dataReceived(b"PROXY TCP4 192.0.2.%d 127.0.0.1 1 2\r\n" % client)
            self.assertEqual(transport.value(), b"Welcome")

    def test_placeHandedToClient(self) -> None:
        """
        Once the header is read, the balancer's place is given back and the
        client takes its own, under every limit; a connection lost before
        its header gives its place back too.
        """
        clock = Clock()
        factory = GreetingFactory(clock=clock, limiter=ConnectionLimiter(0, 1, 0))
        wrappers = ProxyHeaderFactory(factory, clock, admission=factory.admission)
        for client in range(3):
            wrapper, transport = connectThrough(wrappers)
            wrapper.dataReceived(b"PROXY TCP4 192.0.2.%d 127.0.0.1 1 2\r\n" % client)
            self.assertEqual(transport.value(), b"Welcome")
        self.assertEqual(factory.admission.limiter.open, 3)
        _, transport = connectThrough(wrappers)
        self.assertEqual(factory.admission.limiter.open, 4)
        transport.loseConnection()
        _, transport = connectThrough(wrappers, IPv4Address("TCP", "127.0.0.2", 1))
        clock.advance(10)
        self.assertTrue(transport.aborted)
        self.assertEqual(factory.admission.limiter.open, 3)

    def test_overTotalCapTold(self) -> None:
        """
        A connection over the total cap before its header is told so in
        the line a client over it gets, its sending side shut and its input
        discarded for the linger, then closed; it is counted as a
        C{proxy-max-connections} refusal, apart from the clients' own.
        """
        clock = Clock()
        factory = GreetingFactory(clock=clock, limiter=ConnectionLimiter(1, 0, 0))
        wrappers = ProxyHeaderFactory(factory, clock, admission=factory.admission)
        connectThrough(wrappers)
        wrapper, transport = connectThrough(wrappers)
        self.assertEqual(transport.value(), b"Error: too many connections\r\n")
        self.assertTrue(transport.writeClosed)
        wrapper.dataReceived(HEADER + b"Ann\n")
        self.assertEqual(transport.value(), b"Error: too many connections\r\n")
        self.assertEqual(factory.admission.lingering, 1)
        clock.advance(factory.admission.refusalLinger)
        self.assertFalse(transport.connected)
        self.assertEqual(factory.admission.lingering, 0)
        self.assertEqual(factory.admission.limiter.open, 1)
        refused = factory.admission.refused
        self.assertEqual(
            (refused["proxy-max-connections"], refused["max-connections"]), (1, 0)
        )

    def test_overTotalCapUnderTLS(self) -> None:
        """
        In front of TLS (C{haproxy:ssl:}) the refusal is not told in plain
        text: the connection is closed at once.
        """
        clock = Clock()
        factory = GreetingFactory(clock=clock, limiter=ConnectionLimiter(1, 0, 0))
        wrappers = ProxyHeaderFactory(
            WrappingFactory(factory),
            clock,
            admission=factory.admission,
            tellsRefusals=False,
        )
        connectThrough(wrappers)
        _, transport = connectThrough(wrappers)
        self.assertEqual((transport.value(), transport.connected), (b"", False))
        self.assertEqual(factory.admission.lingering, 0)

    def test_headerPhaseCounted(self) -> None:
        """
        The connections still sending their header are a gauge of their
        own, and one that misses the deadline is a C{proxy-timeout}
        refusal.
        """
        clock = Clock()
        factory = GreetingFactory(clock=clock)
        wrappers = ProxyHeaderFactory(factory, clock, 10, factory.admission)
        for _ in range(3):
            connectThrough(wrappers)
        counts = factory.counts()
        self.assertEqual((counts["tcp.headersOpen"], counts["tcp.open"]), (3, 0))
        clock.advance(10)
        counts = factory.counts()
        self.assertEqual(counts["tcp.headersOpen"], 0)
        self.assertEqual(counts["tcp.dropped.proxy-timeout"], 3)

    def test_noAdmissionBelievesAnyone(self) -> None:
        """
        Without an admission given, any peer's header is believed and no
        place is held: the factory wrapped is not searched for one.
        """
        factory = GreetingFactory(clock=Clock(), limiter=ConnectionLimiter(1, 0, 0))
        wrappers = ProxyHeaderFactory(factory, Clock())
        for _ in range(2):
            wrapper, _ = connectThrough(wrappers, STRANGER)
            self.assertEqual(factory.admission.limiter.held, 0)
            wrapper.dataReceived(HEADER)
        self.assertEqual(factory.admission.refused["max-connections"], 1)
