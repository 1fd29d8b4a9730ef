"""
Tests for L{greetd.protocols.datagram}.
"""

from __future__ import annotations

from twisted.internet.error import MessageLengthError
from twisted.internet.task import Clock
from twisted.logger import formatEvent
from twisted.trial.unittest import SynchronousTestCase

from greetd.core.access import AccessPolicy, parseNetwork
from greetd.core.template import ReplyTemplate
from greetd.protocols.datagram import ReplyProtocol
from tests.helpers import captureLogs


class RecordingDatagramTransport:
    """
    Records what a L{ReplyProtocol} sends, or fails as told.

    @ivar sent: C{(datagram, address)} pairs, in order.
    @ivar error: Raised by L{write} when set.
    """

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.error: Exception | None = None

    def write(self, datagram: bytes, address: tuple[str, int]) -> None:
        if self.error is not None:
            raise self.error
        self.sent.append((datagram, address))


def listening(
    protocol: ReplyProtocol,
) -> tuple[ReplyProtocol, RecordingDatagramTransport]:
    transport = RecordingDatagramTransport()
    protocol.makeConnection(transport)  # type: ignore[arg-type]
    return protocol, transport


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
