"""
Tests for L{greetd.client.udp}, on in-memory ports and a fake clock.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from greetd.client.errors import NoReply, PortUnreachable, UnexpectedReply
from greetd.client.udp import ReplyClientProtocol, greetOverUDP, sendTimes
from greetd.core.template import ReplyTemplate


class FakeConnectedUDP:
    """
    A connected UDP port in memory.

    @ivar sent: The datagrams written, in order.
    """

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.connectedTo: tuple[str, int] | None = None
        self.listening = True

    def connect(self, host: str, port: int) -> None:
        self.connectedTo = (host, port)

    def write(self, datagram: bytes, addr: object = None) -> None:
        self.sent.append(datagram)

    def stopListening(self) -> None:
        self.listening = False


class SendTimesTests(SynchronousTestCase):
    def test_doubling(self) -> None:
        """
        The waits between sends double and fill the timeout.
        """
        self.assertEqual(sendTimes(15, 3), [0, 1, 3, 7])
        self.assertEqual(sendTimes(5, 0), [0])

    def test_shortest(self) -> None:
        """
        No wait is shorter than L{MIN_RESEND_INTERVAL}, and no send falls
        at or after the timeout: a short timeout allows fewer resends.
        """
        self.assertEqual([round(t, 6) for t in sendTimes(0.5, 10)], [0, 0.1, 0.3])
        self.assertEqual(sendTimes(0.05, 3), [0])
        # 0.1 doubled 13 times: what a huge retries costs is bounded.
        self.assertEqual(len(sendTimes(1000, 10**6)), 14)


class UDPTests(SynchronousTestCase):
    """
    With C{timeout} 15 and C{retries} 3, a name is sent at 0, 1, 3 and 7
    seconds, and fails at 15.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.protocol = ReplyClientProtocol(
            "127.0.0.1", 9999, timeout=15, retries=3, clock=self.clock
        )
        self.port = FakeConnectedUDP()
        self.protocol.makeConnection(self.port)  # type: ignore[arg-type]

    def reply(self, datagram: bytes) -> None:
        self.protocol.datagramReceived(datagram, ("127.0.0.1", 9999))

    def test_reply(self) -> None:
        self.assertEqual(self.port.connectedTo, ("127.0.0.1", 9999))
        reply = self.protocol.greet(b"Ann")
        self.assertEqual(self.port.sent, [b"Ann"])
        self.reply(b"Hello, Ann!")
        self.assertEqual(self.successResultOf(reply), b"Hello, Ann!")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_resent(self) -> None:
        """
        A lost datagram is sent again after the timeout.
        """
        reply = self.protocol.greet(b"Ann")
        self.clock.advance(1)
        self.assertEqual(self.port.sent, [b"Ann", b"Ann"])
        self.reply(b"Hello, Ann!")
        self.assertEqual(self.successResultOf(reply), b"Hello, Ann!")

    def test_noReply(self) -> None:
        """
        C{retries} 3 sends a name four times, then gives up.
        """
        reply = self.protocol.greet(b"Sarah")
        self.clock.pump([1, 2, 4])
        self.assertEqual(self.port.sent, [b"Sarah"] * 4)
        self.clock.advance(7.9)
        self.assertNoResult(reply)
        self.clock.advance(0.1)
        self.assertEqual(self.port.sent, [b"Sarah"] * 4)
        self.assertEqual(
            str(self.failureResultOf(reply, NoReply).value),
            "no reply to 'Sarah' after 4 tries",
        )

    def test_noRetries(self) -> None:
        protocol = ReplyClientProtocol("::1", 1, retries=0, clock=self.clock)
        protocol.makeConnection(FakeConnectedUDP())  # type: ignore[arg-type]
        reply = protocol.greet(b"Ann")
        self.clock.advance(5)
        self.assertEqual(self.failureResultOf(reply, NoReply).value.tries, 1)  # type: ignore[attr-defined]

    def test_lateDuplicateIgnored(self) -> None:
        """
        A second reply to a name already answered is not taken for the
        next name's.
        """
        ann = self.protocol.greet(b"Ann")
        self.clock.advance(1)
        self.reply(b"Hello, Ann!")
        self.successResultOf(ann)
        bob = self.protocol.greet(b"Bob")
        self.reply(b"Hello, Ann!")
        self.assertNoResult(bob)
        self.reply(b"Hello, Bob!")
        self.assertEqual(self.successResultOf(bob), b"Hello, Bob!")

    def test_notTheReply(self) -> None:
        """
        A datagram that is not the expected reply but explains itself
        (nginx's empty datagram for one it could not deliver, a late
        duplicate of an earlier name's reply) is not an answer: the wait
        goes on, the name is resent, and its reply counts.
        """
        self.reply(b"Hello, Zoe!")  # nothing is being greeted: dropped
        zoe = self.protocol.greet(b"Zoe")
        self.reply(b"Hello, Zoe!")
        self.successResultOf(zoe)
        ann = self.protocol.greet(b"Ann")
        self.reply(b"")
        self.reply(b"Hello, Zoe!")
        self.assertNoResult(ann)
        self.assertEqual(self.protocol.ignored, 2)
        self.clock.advance(1)
        self.assertEqual(self.port.sent, [b"Zoe", b"Ann", b"Ann"])
        self.reply(b"Hello, Ann!")
        self.assertEqual(self.successResultOf(ann), b"Hello, Ann!")

    def test_replyToANameNeverSent(self) -> None:
        """
        A reply in the template's form to a name this protocol never sent
        is no late duplicate: it fails the name at once, as a reply in
        another form does, rather than after the whole timeout.
        """
        ann = self.protocol.greet(b"Ann")
        self.reply(b"Hello, Mallory!")
        failure = self.failureResultOf(ann, UnexpectedReply)
        self.assertEqual(
            str(failure.value),
            "the reply to 'Ann' was 'Hello, Mallory!', not 'Hello, Ann!'",
        )
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_rememberedBounded(self) -> None:
        """
        Only the last C{remembered} names' replies are taken for late
        duplicates: a long session's memory of them is bounded.
        """
        names = [b"n%d" % i for i in range(self.protocol.remembered + 1)]
        for name in names:
            waiting = self.protocol.greet(name)
            self.reply(b"Hello, " + name + b"!")
            self.successResultOf(waiting)
        ann = self.protocol.greet(b"Ann")
        self.reply(b"Hello, n1!")
        self.assertNoResult(ann)
        self.reply(b"Hello, n0!")
        self.failureResultOf(ann, UnexpectedReply)

    def test_onlyNotTheReply(self) -> None:
        """
        When every try gets only datagrams that are not the reply, the name
        fails once the tries are spent, saying what came instead.
        """
        ann = self.protocol.greet(b"Ann")
        for wait in (1, 2, 4, 8):
            self.reply(b"")
            self.assertNoResult(ann)
            self.clock.advance(wait)
        self.assertEqual(self.port.sent, [b"Ann"] * 4)
        failure = self.failureResultOf(ann, NoReply)
        self.assertEqual(
            str(failure.value),
            "no reply to 'Ann' after 4 tries (4 datagrams that were not the reply)",
        )
        self.assertEqual(failure.value.ignored, 4)  # type: ignore[attr-defined]

    def test_ignoredCountedPerName(self) -> None:
        ann = self.protocol.greet(b"Ann")
        self.reply(b"")
        self.reply(b"Hello, Ann!")
        self.successResultOf(ann)
        bob = self.protocol.greet(b"Bob")
        self.assertEqual(self.protocol.ignored, 0)
        self.clock.pump([1, 2, 4])
        self.reply(b"")
        self.clock.advance(8)
        self.assertEqual(
            str(self.failureResultOf(bob, NoReply).value),
            "no reply to 'Bob' after 4 tries (1 datagram that was not the reply)",
        )

    def test_otherTemplate(self) -> None:
        """
        The reply of a daemon with another template is recognised when the
        client is given that template.
        """
        protocol = ReplyClientProtocol(
            "127.0.0.1", 9999, ReplyTemplate("Hi %s"), clock=self.clock
        )
        protocol.makeConnection(FakeConnectedUDP())  # type: ignore[arg-type]
        ann = protocol.greet(b"Ann")
        protocol.datagramReceived(b"Hi Ann", ("127.0.0.1", 9999))
        self.assertEqual(self.successResultOf(ann), b"Hi Ann")

    def test_wrongReply(self) -> None:
        """
        A datagram that is not in the template's form is not ignored (the
        name would wait its whole timeout for a reply that never comes):
        it fails the name at once, saying what came.
        """
        ann = self.protocol.greet(b"Ann")
        self.reply(b"Hi Ann")
        failure = self.failureResultOf(ann, UnexpectedReply)
        self.assertEqual(
            str(failure.value), "the reply to 'Ann' was 'Hi Ann', not 'Hello, Ann!'"
        )
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_oneAtATime(self) -> None:
        """
        A datagram while no name is being greeted is dropped, and names are
        greeted one at a time.
        """
        self.reply(b"Hello, nobody!")
        ann = self.protocol.greet(b"Ann")
        self.assertRaises(ValueError, self.protocol.greet, b"Bob")
        self.reply(b"Hello, Ann!")
        self.assertEqual(self.successResultOf(ann), b"Hello, Ann!")

    def test_portUnreachable(self) -> None:
        reply = self.protocol.greet(b"Ann")
        self.protocol.connectionRefused()
        self.failureResultOf(reply, PortUnreachable)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_portClosed(self) -> None:
        """
        A port the reactor closes under a greeting (epoll's report of an
        ICMP error) ends it at once.
        """
        reply = self.protocol.greet(b"Ann")
        self.protocol.doStop()
        self.failureResultOf(reply, PortUnreachable)


class ResendPortTests(SynchronousTestCase):
    """
    With C{listen}, each resend leaves from a new port, kept open until the
    name is done.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.opened: list[tuple[FakeConnectedUDP, Any]] = []
        self.failOpening: OSError | None = None
        self.protocol = ReplyClientProtocol(
            "127.0.0.1", 9999, timeout=7, retries=2, clock=self.clock,
            listen=self.listen,
        )  # fmt: skip
        self.port = FakeConnectedUDP()
        self.protocol.makeConnection(self.port)  # type: ignore[arg-type]

    def listen(self, protocol: Any) -> FakeConnectedUDP:
        if self.failOpening is not None:
            raise self.failOpening
        port = FakeConnectedUDP()
        self.opened.append((port, protocol))
        protocol.makeConnection(port)
        return port

    def test_resendFromNewPort(self) -> None:
        ann = self.protocol.greet(b"Ann")
        self.clock.advance(1)
        self.clock.advance(2)
        self.assertEqual(self.port.sent, [b"Ann"])
        self.assertEqual(
            [(port.connectedTo, port.sent) for port, _ in self.opened],
            [(("127.0.0.1", 9999), [b"Ann"])] * 2,
        )
        # The reply to the first resend, on its port, answers the name.
        self.opened[0][1].datagramReceived(b"Hello, Ann!", ("127.0.0.1", 9999))
        self.assertEqual(self.successResultOf(ann), b"Hello, Ann!")
        self.assertEqual([port.listening for port, _ in self.opened], [False] * 2)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        # The next name starts on the protocol's own port again.
        self.protocol.greet(b"Bob")
        self.assertEqual(self.port.sent, [b"Ann", b"Bob"])

    def test_notTheReplyOnResendPort(self) -> None:
        ann = self.protocol.greet(b"Ann")
        self.clock.advance(1)
        self.opened[0][1].datagramReceived(b"", ("127.0.0.1", 9999))
        self.assertNoResult(ann)
        self.clock.advance(2)
        self.clock.advance(4)
        self.assertEqual(
            str(self.failureResultOf(ann, NoReply).value),
            "no reply to 'Ann' after 3 tries (1 datagram that was not the reply)",
        )
        self.assertEqual([port.listening for port, _ in self.opened], [False] * 2)

    def test_retiredPortIgnored(self) -> None:
        """
        Once a name is done, what its resend ports still receive, or their
        closing, is nothing to the next name.
        """
        ann = self.protocol.greet(b"Ann")
        self.clock.advance(1)
        self.protocol.datagramReceived(b"Hello, Ann!", ("127.0.0.1", 9999))
        self.successResultOf(ann)
        bob = self.protocol.greet(b"Bob")
        resend = self.opened[0][1]
        resend.datagramReceived(b"Hello, Bob!", ("127.0.0.1", 9999))
        resend.connectionRefused()
        resend.doStop()
        self.assertNoResult(bob)
        self.assertEqual(self.protocol.ignored, 0)

    def test_resendPortRefused(self) -> None:
        """
        ICMP port unreachable on a resend's port ends the name, as on the
        protocol's own.
        """
        ann = self.protocol.greet(b"Ann")
        self.clock.advance(1)
        self.opened[0][1].doStop()
        self.failureResultOf(ann, PortUnreachable)
        self.assertFalse(self.opened[0][0].listening)

    def test_cannotOpenPort(self) -> None:
        ann = self.protocol.greet(b"Ann")
        self.failOpening = OSError("too many open files")
        self.clock.advance(1)
        self.failureResultOf(ann, OSError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_sendFailsOnNewPort(self) -> None:
        """
        A resend whose write fails ends the name, and its port is closed.
        """

        def refuse(datagram: bytes, addr: object = None) -> None:
            raise OSError("network unreachable")

        def listen(protocol: Any) -> FakeConnectedUDP:
            port = FakeConnectedUDP()
            port.write = refuse  # type: ignore[method-assign]
            self.opened.append((port, protocol))
            protocol.makeConnection(port)
            return port

        self.protocol._listen = listen  # type: ignore[assignment]
        ann = self.protocol.greet(b"Ann")
        self.clock.advance(1)
        self.failureResultOf(ann, OSError)
        self.assertFalse(self.opened[0][0].listening)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class MemoryUDPClientReactor(MemoryReactorClock):
    """
    Hands out L{FakeConnectedUDP} ports and resolves every name to
    192.0.2.1.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ports: list[tuple[FakeConnectedUDP, Any, str]] = []

    def listenUDP(
        self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192
    ) -> FakeConnectedUDP:
        fake = FakeConnectedUDP()
        self.ports.append((fake, protocol, interface))
        protocol.makeConnection(fake)
        return fake

    def resolve(self, name: str, timeout: Any = ()) -> Deferred[str]:
        return succeed("192.0.2.1")


class GreetOverUDPTests(SynchronousTestCase):
    def test_session(self) -> None:
        reactor = MemoryUDPClientReactor()
        replies = greetOverUDP(reactor, "localhost", 9999, [b"Ann", b"Bob"])
        port, protocol, interface = reactor.ports[0]
        self.assertEqual((port.connectedTo, interface), (("192.0.2.1", 9999), ""))
        protocol.datagramReceived(b"Hello, Ann!", ("192.0.2.1", 9999))
        reactor.advance(0.5)
        # Bob's resend left from a port of its own, on the same interface.
        resend, resendProtocol, resendInterface = reactor.ports[1]
        self.assertEqual(
            (resend.connectedTo, resendInterface), (("192.0.2.1", 9999), "")
        )
        resendProtocol.datagramReceived(b"Hello, Bob!", ("192.0.2.1", 9999))
        self.assertEqual(
            self.successResultOf(replies), [b"Hello, Ann!", b"Hello, Bob!"]
        )
        self.assertEqual((port.sent, resend.sent), ([b"Ann", b"Bob"], [b"Bob"]))
        self.assertFalse(port.listening)
        self.assertFalse(resend.listening)

    def test_ipv6(self) -> None:
        reactor = MemoryUDPClientReactor()
        replies = greetOverUDP(reactor, "::1", 9999, [b"Ann", b"exit", b"Bob"])
        port, _, interface = reactor.ports[0]
        self.assertEqual((port.connectedTo, interface), (("::1", 9999), "::"))
        reactor.advance(0.5)
        resend, resendProtocol, resendInterface = reactor.ports[1]
        self.assertEqual((resend.connectedTo, resendInterface), (("::1", 9999), "::"))
        resendProtocol.datagramReceived(b"Hello, Ann!", ("::1", 9999))
        self.assertEqual(self.successResultOf(replies), [b"Hello, Ann!"])

    def test_failureStopsListening(self) -> None:
        reactor = MemoryUDPClientReactor()
        replies = greetOverUDP(reactor, "127.0.0.1", 9999, [b"Ann"], retries=0)
        reactor.advance(5)
        self.failureResultOf(replies, NoReply)
        self.assertFalse(reactor.ports[0][0].listening)
