"""
Tests for L{greetd.datagram}.
"""

from __future__ import annotations

from twisted.internet.error import MessageLengthError
from twisted.logger import formatEvent
from twisted.trial.unittest import SynchronousTestCase

from greetd.datagram import ReplyProtocol
from greetd.template import ReplyTemplate
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
    protocol.transport = transport  # type: ignore[assignment]
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
