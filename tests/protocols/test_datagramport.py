"""
Tests for L{greetd.protocols.datagramport}, on real loopback UDP sockets,
with an in-memory reactor that never runs: each test calls C{doRead} as
the reactor would.  They hold for Twisted's own C{doRead} as for the
direct one, which runs under PyPy.
"""

from __future__ import annotations

import platform
import socket
from typing import Any

from twisted.internet import udp
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from greetd.protocols.datagramport import DatagramPort, readsDirectly
from greetd.protocols.fastwrite import datagramWriter


class Recorder(DatagramProtocol):
    """
    Keep every datagram and its source; answer each with C{reply} through
    the port's writer, when set; raise for the datagram C{b"boom"}.
    """

    def __init__(self) -> None:
        self.received: list[tuple[bytes, Any]] = []
        self.reply: bytes | None = None

    def startProtocol(self) -> None:
        self.send = datagramWriter(self.transport)

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.received.append((datagram, addr))
        if datagram == b"boom":
            raise ZeroDivisionError()
        if self.reply is not None:
            self.send(self.reply + datagram, addr)


def listening(
    case: SynchronousTestCase,
    protocol: DatagramProtocol,
    interface: str = "127.0.0.1",
    maxPacketSize: int = 8192,
) -> DatagramPort:
    port = DatagramPort(0, protocol, interface, maxPacketSize, MemoryReactorClock())
    port.startListening()
    case.addCleanup(port.stopListening)
    return port


def peer(case: SynchronousTestCase, host: str = "127.0.0.1") -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sender = socket.socket(family, socket.SOCK_DGRAM)
    case.addCleanup(sender.close)
    sender.bind((host, 0))
    sender.settimeout(5)
    return sender


class DatagramPortTests(SynchronousTestCase):
    def test_readsDirectlyOnPyPy(self) -> None:
        """
        The C library is called directly on PyPy only.
        """
        self.assertEqual(readsDirectly(), platform.python_implementation() == "PyPy")

    def test_twistedsReadWhereNotDirect(self) -> None:
        """
        Where nothing reads directly, the reactor calls Twisted's own
        C{doRead}, with nothing in between.
        """
        self.assertEqual(DatagramPort.doRead is udp.Port.doRead, not readsDirectly())

    def test_datagramsAndSources(self) -> None:
        """
        Every waiting datagram is read in one C{doRead}, each with its
        source's C{(host, port)}, bytes as sent.
        """
        protocol = Recorder()
        port = listening(self, protocol)
        first, second = peer(self, "127.0.0.1"), peer(self, "127.0.0.2")
        first.sendto(b"Michael", port.socket.getsockname())
        second.sendto(b"\xff\x00\n", port.socket.getsockname())
        first.sendto(b"", port.socket.getsockname())
        port.doRead()
        self.assertEqual(
            protocol.received,
            [
                (b"Michael", first.getsockname()),
                (b"\xff\x00\n", second.getsockname()),
                (b"", first.getsockname()),
            ],
        )
        port.doRead()
        self.assertEqual(len(protocol.received), 3)

    def test_truncatedToMaxPacketSize(self) -> None:
        protocol = Recorder()
        port = listening(self, protocol, maxPacketSize=4)
        peer(self).sendto(b"Michael", port.socket.getsockname())
        port.doRead()
        self.assertEqual([data for data, _ in protocol.received], [b"Mich"])

    def test_replyToTheSource(self) -> None:
        """
        A reply to the source the protocol was handed reaches that source,
        from each of several.
        """
        protocol = Recorder()
        protocol.reply = b"Hello, "
        port = listening(self, protocol)
        senders = [peer(self, f"127.0.0.{n}") for n in (1, 2, 3)]
        for number, sender in enumerate(senders):
            sender.sendto(b"%d" % (number,), port.socket.getsockname())
        port.doRead()
        for number, sender in enumerate(senders):
            self.assertEqual(
                sender.recvfrom(100),
                (b"Hello, %d" % (number,), port.socket.getsockname()),
            )

    def test_replyElsewhere(self) -> None:
        """
        A datagram to any other address, equal or not to the source, goes
        to that address.
        """
        protocol = Recorder()
        port = listening(self, protocol)
        sender, other = peer(self, "127.0.0.1"), peer(self, "127.0.0.2")
        sender.sendto(b"one", port.socket.getsockname())
        port.doRead()
        _, source = protocol.received[0]
        port.replyTo(b"to other", other.getsockname())
        port.replyTo(b"to a copy", tuple(source))
        self.assertEqual(other.recv(100), b"to other")
        self.assertEqual(sender.recv(100), b"to a copy")

    def test_replyFailureRaises(self) -> None:
        """
        A reply the kernel refuses raises C{OSError}, as C{socket.sendto}.
        """
        port = listening(self, Recorder())
        sender = peer(self)
        sender.sendto(b"one", port.socket.getsockname())
        port.doRead()
        self.assertRaises(OSError, port.replyTo, b"x" * 70000, ("127.0.0.1", 1))
        protocol: Any = port.protocol
        _, source = protocol.received[0]
        self.assertRaises(OSError, port.replyTo, b"x" * 70000, source)

    def test_replyOnceClosed(self) -> None:
        """
        Once the port has stopped listening, a reply raises C{OSError}, as
        the closed socket's C{sendto} does, which the protocol counts: the
        source it last handled is no longer the datagram being handled.
        """
        protocol = Recorder()
        reactor = MemoryReactorClock()
        port = DatagramPort(0, protocol, "127.0.0.1", 8192, reactor)
        port.startListening()
        sender = peer(self)
        sender.sendto(b"one", port.socket.getsockname())
        port.doRead()
        _, source = protocol.received[0]
        port.stopListening()
        reactor.advance(0)
        self.assertRaises(OSError, port.replyTo, b"late", source)

    def test_directOnlyWhileListening(self) -> None:
        """
        An IPv4 port reads and answers through the C library on PyPy
        (L{DatagramPort.direct}) while it listens, and no longer once it
        has stopped, so that nothing is sent on a descriptor that may be
        another's by then.
        """
        reactor = MemoryReactorClock()
        port = DatagramPort(0, Recorder(), "127.0.0.1", 8192, reactor)
        port.startListening()
        self.assertEqual(port.direct, readsDirectly())
        port.stopListening()
        reactor.advance(0)
        self.assertFalse(port.direct)

    def test_protocolErrorLoggedNextRead(self) -> None:
        """
        An exception from the protocol is logged, and the next datagram read.
        """
        protocol = Recorder()
        port = listening(self, protocol)
        sender = peer(self)
        sender.sendto(b"boom", port.socket.getsockname())
        sender.sendto(b"after", port.socket.getsockname())
        port.doRead()
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual([data for data, _ in protocol.received], [b"boom", b"after"])

    def test_maxThroughput(self) -> None:
        """
        One C{doRead} stops once C{maxThroughput} bytes are read; the rest
        wait for the next.
        """
        protocol = Recorder()
        port = listening(self, protocol)
        port.maxThroughput = 10
        sender = peer(self)
        for _ in range(4):
            sender.sendto(b"four", port.socket.getsockname())
        port.doRead()
        self.assertEqual(len(protocol.received), 3)
        port.doRead()
        self.assertEqual(len(protocol.received), 4)

    def test_hostsBounded(self) -> None:
        """
        The text kept of source addresses is bounded: past L{maxHosts}
        sources it starts again, and sources are still named right.
        """
        protocol = Recorder()
        port = listening(self, protocol)
        port.maxHosts = 2
        senders = [peer(self, f"127.0.0.{n}") for n in (1, 2, 3, 1)]
        for sender in senders:
            sender.sendto(b"x", port.socket.getsockname())
        port.doRead()
        self.assertEqual(
            [addr for _, addr in protocol.received],
            [sender.getsockname() for sender in senders],
        )
        self.assertLessEqual(len(getattr(port, "_hosts", {})), 2)

    def test_connectedReadsAsTwisted(self) -> None:
        """
        A port connected to one peer is read as Twisted reads it: a refusal
        from that peer reaches the protocol.
        """
        refused: list[bool] = []
        protocol = Recorder()
        protocol.connectionRefused = lambda: refused.append(True)  # type: ignore[method-assign]
        port = listening(self, protocol)
        closed = peer(self)
        address = closed.getsockname()
        closed.close()
        port.connect(*address)
        port.write(b"anyone?")
        port.doRead()
        self.assertEqual(refused, [True])

    def test_IPv6(self) -> None:
        """
        An IPv6 port reads as Twisted's does: C{(host, port)}.
        """
        protocol = Recorder()
        protocol.reply = b"Hello, "
        try:
            port = listening(self, protocol, "::1")
        except Exception as error:  # pragma: no cover (no IPv6 here)
            raise SkipTest(f"no IPv6 loopback: {error}") from error
        sender = peer(self, "::1")
        sender.sendto(b"six", port.socket.getsockname()[:2])
        port.doRead()
        self.assertEqual(protocol.received, [(b"six", sender.getsockname()[:2])])
        self.assertEqual(sender.recv(100), b"Hello, six")
