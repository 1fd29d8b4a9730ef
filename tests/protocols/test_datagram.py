"""
Tests for L{greetd.protocols.datagram}.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.error import MessageLengthError
from twisted.internet.task import Clock
from twisted.logger import formatEvent
from twisted.trial.unittest import SynchronousTestCase

from greetd.core.access import AccessPolicy, parseNetwork
from greetd.core.template import ReplyTemplate
from greetd.protocols.datagram import ReplyProtocol
from tests.helpers import captureLogs, listening


class ReplyProtocolTests(SynchronousTestCase):
    def test_seedReplies(self) -> None:
        protocol, transport = listening(ReplyProtocol())
        for name in (b"Michael", b"Tracy", b"Sarah"):
            protocol.datagramReceived(name, ("127.0.0.1", 5000))
        self.assertEqual(
            transport.sent,
            [
                (b"Hello, Michael!", ("127.0.0.1", 5000)),
                (b"Hello, Tracy!", ("127.0.0.1", 5000)),
                (b"Hello, Sarah!", ("127.0.0.1", 5000)),
            ],
        )
        self.assertEqual(
            (protocol.replies, protocol.bytesReceived, protocol.bytesSent),
            (3, 17, 41),
        )

    def test_empty(self) -> None:
        protocol, transport = listening(ReplyProtocol())
        protocol.datagramReceived(b"", ("127.0.0.1", 5000))
        self.assertEqual(transport.sent, [(b"Hello, !", ("127.0.0.1", 5000))])

    def test_bytesAndIPv6(self) -> None:
        """
        Any bytes come back as they came, to the source's host and port
        (IPv6 sources carry flow information that is not an address).
        """
        protocol, transport = listening(ReplyProtocol(ReplyTemplate("[%s]")))
        protocol.datagramReceived(b"\xff\x00\n", ("::1", 5000, 0, 0))
        self.assertEqual(transport.sent, [(b"[\xff\x00\n]", ("::1", 5000))])

    def test_tooLongDropped(self) -> None:
        events = captureLogs(self, ReplyProtocol)
        protocol, transport = listening(ReplyProtocol(maxLength=4))
        protocol.datagramReceived(b"12345", ("127.0.0.1", 5000))
        protocol.datagramReceived(b"1234", ("127.0.0.1", 5000))
        self.assertEqual(transport.sent, [(b"Hello, 1234!", ("127.0.0.1", 5000))])
        self.assertEqual(protocol.dropped["length"], 1)
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["log_level"].name, "debug")
        self.assertEqual(
            formatEvent(events[0]), "Dropped a datagram from 127.0.0.1:5000: length"
        )

    def test_sendFailureCounted(self) -> None:
        """
        A reply the kernel refuses is counted, not raised into the reactor.
        """
        protocol, transport = listening(ReplyProtocol())
        for error in (OSError(101, "Network is unreachable"), MessageLengthError()):
            transport.error = error
            protocol.datagramReceived(b"x", ("127.0.0.1", 5000))
        self.assertEqual(protocol.dropped["send-failed"], 2)
        self.assertEqual(protocol.replies, 0)

    def test_badMaxLength(self) -> None:
        self.assertRaises(ValueError, ReplyProtocol, maxLength=0)


class AbuseTests(SynchronousTestCase):
    """
    The reply service refuses to be a reflector: low source ports, denied
    sources and floods get no reply, and every drop is counted by reason.
    """

    def test_lowPortsDropped(self) -> None:
        protocol, transport = listening(ReplyProtocol(clock=Clock()))
        for port in (0, 7, 19, 53, 123, 1023):
            protocol.datagramReceived(b"x", ("127.0.0.1", port))
        protocol.datagramReceived(b"x", ("127.0.0.1", 1024))
        self.assertEqual(transport.sent, [(b"Hello, x!", ("127.0.0.1", 1024))])
        self.assertEqual(protocol.dropped["low-port"], 6)

    def test_lowPortsAllowed(self) -> None:
        protocol, transport = listening(
            ReplyProtocol(clock=Clock(), allowLowPorts=True)
        )
        protocol.datagramReceived(b"x", ("127.0.0.1", 53))
        self.assertEqual(len(transport.sent), 1)

    def test_access(self) -> None:
        rules = AccessPolicy(allow=[parseNetwork("127.0.0.0/8")])
        protocol, transport = listening(ReplyProtocol(clock=Clock(), access=rules))
        protocol.datagramReceived(b"x", ("192.0.2.1", 5000))
        protocol.datagramReceived(b"y", ("127.0.0.9", 5000))
        self.assertEqual(transport.sent, [(b"Hello, y!", ("127.0.0.9", 5000))])
        self.assertEqual(protocol.dropped["access"], 1)

    def test_perSourceRate(self) -> None:
        clock = Clock()
        protocol, transport = listening(ReplyProtocol(clock=clock, rate=2))
        for _ in range(5):
            protocol.datagramReceived(b"a", ("127.0.0.1", 5000))
        protocol.datagramReceived(b"b", ("127.0.0.2", 5000))
        self.assertEqual(len(transport.sent), 3)
        self.assertEqual(protocol.dropped["rate"], 3)
        clock.advance(0.5)
        protocol.datagramReceived(b"a", ("127.0.0.1", 5000))
        self.assertEqual(len(transport.sent), 4)

    def test_globalRate(self) -> None:
        clock = Clock()
        protocol, transport = listening(ReplyProtocol(clock=clock, globalRate=3))
        for source in range(10):
            protocol.datagramReceived(b"a", (f"127.0.0.{source}", 5000))
        self.assertEqual(len(transport.sent), 3)
        self.assertEqual(protocol.dropped["global-rate"], 7)
        self.assertEqual(protocol.bytesReceived, 10)

    def test_globalRateSparesSource(self) -> None:
        """
        A datagram the global rate refuses does not spend its source's
        token: with the global rate spent, a source's datagrams are all
        refused by it and none by the source's own rate.
        """
        clock = Clock()
        protocol, transport = listening(
            ReplyProtocol(clock=clock, rate=2, globalRate=1)
        )
        protocol.datagramReceived(b"a", ("127.0.0.1", 5000))
        for _ in range(5):
            protocol.datagramReceived(b"b", ("127.0.0.2", 5000))
        self.assertEqual(protocol.dropped["global-rate"], 5)
        self.assertEqual(protocol.dropped["rate"], 0)
        clock.advance(1)
        protocol.datagramReceived(b"b", ("127.0.0.2", 5000))
        self.assertEqual(len(transport.sent), 2)

    def test_ipv6Prefix(self) -> None:
        """
        The rate per source counts every address of one IPv6 /64 together,
        and IPv4-mapped addresses as IPv4; C{ipv6Prefix=128} counts each
        address apart.
        """
        protocol, transport = listening(ReplyProtocol(clock=Clock(), rate=2))
        for host in ("2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8:0:1::1"):
            protocol.datagramReceived(b"x", (host, 5000, 0, 0))
        for host in ("192.0.2.1", "::ffff:192.0.2.1", "::ffff:192.0.2.1"):
            protocol.datagramReceived(b"x", (host, 5000, 0, 0))
        self.assertEqual(
            [address[0] for _, address in transport.sent],
            [
                *("2001:db8::1", "2001:db8::2", "2001:db8:0:1::1"),
                *("192.0.2.1", "::ffff:192.0.2.1"),
            ],
        )
        protocol, transport = listening(
            ReplyProtocol(clock=Clock(), rate=1, ipv6Prefix=128)
        )
        for host in ("2001:db8::1", "2001:db8::2", "2001:db8::1"):
            protocol.datagramReceived(b"x", (host, 5000, 0, 0))
        self.assertEqual(len(transport.sent), 2)

    def test_dropsLoggedOncePerMinutePerSource(self) -> None:
        events = captureLogs(self, ReplyProtocol)
        clock = Clock()
        protocol, _ = listening(ReplyProtocol(clock=clock))
        for _ in range(1000):
            protocol.datagramReceived(b"x", ("127.0.0.1", 53))
            protocol.datagramReceived(b"x", ("127.0.0.2", 53))
        clock.advance(60)
        protocol.datagramReceived(b"x", ("127.0.0.1", 53))
        self.assertEqual(protocol.dropped["low-port"], 2001)
        self.assertEqual(
            [event["peer"] for event in events],
            ["127.0.0.1:53", "127.0.0.2:53", "127.0.0.1:53"],
        )

    def test_replyLoopEnds(self) -> None:
        """
        Two reply services aimed at each other stop by themselves: each reply
        is longer than what it answers, until one is over C{maxLength}.
        """
        clock = Clock()
        first, firstTransport = listening(ReplyProtocol(clock=clock, maxLength=100))
        second, secondTransport = listening(ReplyProtocol(clock=clock, maxLength=100))
        firstAddress, secondAddress = ("127.0.0.1", 4001), ("127.0.0.1", 4002)
        pending = [(first, b"x", secondAddress)]
        exchanged = 0
        while pending and exchanged < 1000:
            protocol, datagram, source = pending.pop()
            transport = firstTransport if protocol is first else secondTransport
            protocol.datagramReceived(datagram, source)
            if transport.sent:
                reply, _ = transport.sent.pop()
                exchanged += 1
                if protocol is first:
                    pending.append((second, reply, firstAddress))
                else:
                    pending.append((first, reply, secondAddress))
        self.assertEqual(exchanged, 13)
        self.assertEqual(first.dropped["length"] + second.dropped["length"], 1)


class SafeDefaultsTests(SynchronousTestCase):
    def test_rateLimitedByDefault(self) -> None:
        """
        A reply protocol built with no arguments is not an open reflector:
        the daemon's per-source and global rates apply, and low source
        ports are refused.
        """
        protocol = ReplyProtocol(clock=Clock())
        self.assertEqual(protocol.perSource.rate, 10)
        assert protocol.overall is not None
        self.assertEqual(protocol.overall.rate, 1000)
        self.assertFalse(protocol.allowLowPorts)


#: What nginx's C{proxy_protocol on} puts before a client's datagram.
HEADER = b"PROXY TCP4 192.0.2.7 127.0.0.1 5555 9999\r\n"

#: Where the balancer's datagrams come from.
BALANCER = ("127.0.0.1", 40000)


class ProxiedTests(SynchronousTestCase):
    """
    Behind a balancer sending a PROXY header on each datagram, the header's
    source is the datagram's source, and the reply goes to the balancer.
    """

    def test_reply(self) -> None:
        protocol, transport = listening(ReplyProtocol(clock=Clock(), proxied=True))
        protocol.datagramReceived(HEADER + b"Alice", BALANCER)
        self.assertEqual(transport.sent, [(b"Hello, Alice!", BALANCER)])
        self.assertEqual((protocol.replies, protocol.bytesSent), (1, 13))

    def test_perClientLimits(self) -> None:
        """
        Rates and access control see each client: one over its rate does
        not take another's replies, and each refusal is answered with an
        empty datagram, so that the balancer does not count the server
        failed.
        """
        events = captureLogs(self, ReplyProtocol)
        rules = AccessPolicy(deny=[parseNetwork("192.0.2.66")])
        protocol, transport = listening(
            ReplyProtocol(clock=Clock(), rate=1, access=rules, proxied=True)
        )
        other = b"PROXY TCP4 192.0.2.8 127.0.0.1 6666 9999\r\n"
        denied = b"PROXY TCP4 192.0.2.66 127.0.0.1 6666 9999\r\n"
        for datagram in (HEADER + b"a", HEADER + b"b", other + b"c", denied + b"d"):
            protocol.datagramReceived(datagram, BALANCER)
        self.assertEqual(
            transport.sent,
            [
                (b"Hello, a!", BALANCER),
                (b"", BALANCER),
                (b"Hello, c!", BALANCER),
                (b"", BALANCER),
            ],
        )
        self.assertEqual((protocol.dropped["rate"], protocol.dropped["access"]), (1, 1))
        self.assertEqual(
            [formatEvent(event) for event in events],
            [
                "Dropped a datagram from 192.0.2.7:5555 via 127.0.0.1:40000: rate",
                "Dropped a datagram from 192.0.2.66:6666 via 127.0.0.1:40000: access",
            ],
        )
        self.assertEqual(events[0]["via"], "127.0.0.1:40000")

    def test_noHeader(self) -> None:
        """
        A datagram without a valid header (not from the balancer) is
        dropped unanswered.
        """
        protocol, transport = listening(ReplyProtocol(clock=Clock(), proxied=True))
        protocol.datagramReceived(b"Alice", BALANCER)
        protocol.datagramReceived(b"PROXY TCP4 x y 1 2\r\nAlice", BALANCER)
        self.assertEqual(transport.sent, [])
        self.assertEqual(protocol.dropped["proxy"], 2)

    def test_untrustedSource(self) -> None:
        """
        A datagram from a source outside C{proxyFrom} (loopback unless
        given) is dropped unanswered, whatever its header says: it cannot
        spend the rate of the client it names, nor be answered at all.
        """
        events = captureLogs(self, ReplyProtocol)
        protocol, transport = listening(
            ReplyProtocol(clock=Clock(), rate=1, proxied=True)
        )
        for _ in range(3):
            protocol.datagramReceived(HEADER + b"x", ("198.51.100.7", 40000))
        self.assertEqual(transport.sent, [])
        self.assertEqual(protocol.dropped["proxy"], 3)
        self.assertEqual(
            [formatEvent(event) for event in events],
            ["Dropped a datagram from 198.51.100.7:40000: proxy"],
        )
        self.assertEqual(events[0]["proxyError"], "peer not in --proxy-from")
        protocol.datagramReceived(HEADER + b"Alice", BALANCER)
        self.assertEqual(transport.sent, [(b"Hello, Alice!", BALANCER)])

    def test_proxyFrom(self) -> None:
        """
        C{proxyFrom} names the balancers believed; loopback then is not.
        """
        protocol, transport = listening(
            ReplyProtocol(
                clock=Clock(),
                proxied=True,
                proxyFrom=[parseNetwork("198.51.100.0/24")],
            )
        )
        balancer = ("198.51.100.7", 40000)
        protocol.datagramReceived(HEADER + b"Alice", balancer)
        protocol.datagramReceived(HEADER + b"Bob", BALANCER)
        self.assertEqual(transport.sent, [(b"Hello, Alice!", balancer)])

    def test_refusalAnswersBounded(self) -> None:
        """
        The empty answers to refused datagrams spend a bucket of their own,
        at the global rate: a flood of refused datagrams gets a bounded
        number of answers, and the answers come back as the bucket refills.
        """
        clock = Clock()
        protocol, transport = listening(
            ReplyProtocol(clock=clock, rate=1, globalRate=5, proxied=True)
        )
        for _ in range(100):
            protocol.datagramReceived(HEADER + b"x", BALANCER)
        self.assertEqual(transport.sent.count((b"Hello, x!", BALANCER)), 1)
        self.assertEqual(transport.sent.count((b"", BALANCER)), 5)
        self.assertEqual(protocol.dropped["rate"], 99)
        clock.advance(1)
        for _ in range(100):
            protocol.datagramReceived(
                b"PROXY TCP4 192.0.2.8 127.0.0.1 1 2\r\n" + b"y" * 2000, BALANCER
            )
        self.assertEqual(transport.sent.count((b"", BALANCER)), 10)

    def test_lowPorts(self) -> None:
        """
        A low port is refused on either side: a client's is answered with
        an empty datagram through the balancer, while a datagram really sent
        from a low port (a forged source) gets nothing.
        """
        protocol, transport = listening(ReplyProtocol(clock=Clock(), proxied=True))
        protocol.datagramReceived(
            b"PROXY TCP4 192.0.2.7 127.0.0.1 53 9999\r\nx", BALANCER
        )
        protocol.datagramReceived(HEADER + b"x", ("192.0.2.9", 53))
        self.assertEqual(transport.sent, [(b"", BALANCER)])
        self.assertEqual(protocol.dropped["low-port"], 2)

    def test_lengthOfClientDatagram(self) -> None:
        """
        C{maxLength} bounds the client's datagram, not the header.
        """
        protocol, transport = listening(
            ReplyProtocol(clock=Clock(), maxLength=3, proxied=True)
        )
        protocol.datagramReceived(HEADER + b"abc", BALANCER)
        protocol.datagramReceived(HEADER + b"abcd", BALANCER)
        self.assertEqual(transport.sent, [(b"Hello, abc!", BALANCER), (b"", BALANCER)])

    def test_unknownSource(self) -> None:
        protocol, transport = listening(
            ReplyProtocol(clock=Clock(), rate=1, proxied=True)
        )
        protocol.datagramReceived(b"PROXY UNKNOWN x\r\na", BALANCER)
        protocol.datagramReceived(b"PROXY UNKNOWN x\r\nb", BALANCER)
        self.assertEqual(transport.sent, [(b"Hello, a!", BALANCER), (b"", BALANCER)])

    def test_notProxied(self) -> None:
        """
        Without C{proxied}, a header is just bytes to greet.
        """
        protocol, transport = listening(ReplyProtocol(clock=Clock()))
        protocol.datagramReceived(HEADER + b"a", BALANCER)
        self.assertEqual(transport.sent, [(b"Hello, " + HEADER + b"a!", BALANCER)])

    @given(st.binary(max_size=300), st.sampled_from([b"", HEADER, b"PROXY "]))
    def test_anyDatagram(self, datagram: bytes, prefix: bytes) -> None:
        """
        Whatever arrives, a proxied protocol answers the balancer at most
        once, with the reply to what followed a valid header or with an
        empty datagram, or drops it silently as not from a balancer; every
        datagram is counted once as a reply or a drop.
        """
        protocol, transport = listening(
            ReplyProtocol(clock=Clock(), maxLength=100, rate=1, proxied=True)
        )
        for _ in range(2):
            protocol.datagramReceived(prefix + datagram, BALANCER)
        self.assertLessEqual(len(transport.sent), 2)
        for sent, address in transport.sent:
            self.assertEqual(address, BALANCER)
            self.assertTrue(sent == b"" or sent.startswith(b"Hello, "))
        self.assertEqual(protocol.replies + sum(protocol.dropped.values()), 2)
        if prefix == HEADER:
            self.assertEqual(protocol.dropped["proxy"], 0)
            self.assertEqual(len(transport.sent), 2)
