"""
Tests for L{greetd.client.api}, on in-memory transports and a fake clock.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import (
    MemoryReactorClock,
    StringTransportWithDisconnection,
)
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from greetd.client.api import (
    ConnectionClosed,
    GreetingClientProtocol,
    Greetings,
    GreetTimeout,
    NoReply,
    PortUnreachable,
    ReplyClientProtocol,
    ServerError,
    TLSFailed,
    greetOverTCP,
    greetOverUDP,
)
from greetd.core.framing import FRAMINGS, MessageFramer
from greetd.core.template import ReplyTemplate


def connected(
    protocol: GreetingClientProtocol,
) -> StringTransportWithDisconnection:
    transport = StringTransportWithDisconnection()
    transport.protocol = protocol
    protocol.makeConnection(transport)
    return transport


class TCPTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.protocol = GreetingClientProtocol(timeout=5, clock=self.clock)
        self.transport = connected(self.protocol)

    def sent(self) -> bytes:
        value = self.transport.value()
        self.transport.clear()
        return value

    def fails(self, waiting: Deferred[Any], kind: type[Exception]) -> Exception:
        """
        The exception C{waiting} has failed with, checked to be a C{kind}.
        """
        failure = self.failureResultOf(waiting, kind)
        value = failure.value
        assert isinstance(value, Exception)
        return value


class RawServerTests(TCPTestCase):
    """
    A banner without a line ending: an C{auto} or C{raw} daemon.
    """

    def test_seedSession(self) -> None:
        """
        Names go bare, each after the previous reply; C{exit} goes last.
        """
        self.protocol.dataReceived(b"Welcome")
        self.assertEqual(self.successResultOf(self.protocol.banner), b"Welcome")
        self.assertFalse(self.protocol.lineMode)
        ann = self.protocol.greet(b"Ann")
        bob = self.protocol.greet(b"Bob")
        self.assertEqual(self.sent(), b"Ann")
        self.protocol.dataReceived(b"Hello, Ann!")
        self.assertEqual(self.successResultOf(ann), b"Hello, Ann!")
        self.assertEqual(self.sent(), b"Bob")
        self.protocol.dataReceived(b"Hello, Bob!")
        self.assertEqual(self.successResultOf(bob), b"Hello, Bob!")
        closed = self.protocol.exit()
        self.assertEqual(self.sent(), b"exit")
        self.assertFalse(self.transport.connected)
        self.successResultOf(closed)

    def test_splitReply(self) -> None:
        """
        A reply that arrives in several chunks is put back together.
        """
        self.protocol.dataReceived(b"Welcome")
        reply = self.protocol.greet(b"Sarah")
        for chunk in (b"Hel", b"lo, Sa", b"rah", b"!"):
            self.assertNoResult(reply)
            self.protocol.dataReceived(chunk)
        self.assertEqual(self.successResultOf(reply), b"Hello, Sarah!")

    def test_otherTemplate(self) -> None:
        """
        A reply that is not the expected one is what arrived, the seed's rule.
        """
        self.protocol.dataReceived(b"Welcome")
        reply = self.protocol.greet(b"Ann")
        self.protocol.dataReceived(b"Hi Ann")
        self.assertEqual(self.successResultOf(reply), b"Hi Ann")

    def test_customTemplate(self) -> None:
        protocol = GreetingClientProtocol(ReplyTemplate("<%s>"), clock=self.clock)
        connected(protocol)
        protocol.dataReceived(b"Hi")
        reply = protocol.greet(b"Ann")
        protocol.dataReceived(b"<An")
        self.assertNoResult(reply)
        protocol.dataReceived(b"n>")
        self.assertEqual(self.successResultOf(reply), b"<Ann>")

    def test_unsolicitedIgnored(self) -> None:
        """
        Bytes that arrive while no reply is owed answer no name.
        """
        self.protocol.dataReceived(b"Welcome")
        self.protocol.dataReceived(b"noise")
        reply = self.protocol.greet(b"Ann")
        self.protocol.dataReceived(b"Hello, Ann!")
        self.assertEqual(self.successResultOf(reply), b"Hello, Ann!")

    def test_serverError(self) -> None:
        self.protocol.dataReceived(b"Welcome")
        reply = self.protocol.greet(b"x" * 10)
        self.protocol.dataReceived(b"Error: message longer than 8 bytes")
        error = self.fails(reply, ServerError)
        self.assertEqual(
            str(error), "the server said 'Error: message longer than 8 bytes'"
        )
        self.assertFalse(self.transport.connected)

    def test_closedWithPartialReply(self) -> None:
        self.protocol.dataReceived(b"Welcome")
        reply = self.protocol.greet(b"Ann")
        self.protocol.dataReceived(b"Hello, A")
        self.transport.loseConnection()
        self.assertEqual(
            str(self.fails(reply, ConnectionClosed)),
            "connection closed while waiting for the reply to 'Ann' "
            "(received only 'Hello, A')",
        )

    def test_reset(self) -> None:
        self.protocol.dataReceived(b"Welcome")
        reply = self.protocol.greet(b"Ann")
        self.protocol.connectionLost(Failure(ConnectionLost()))
        self.assertEqual(
            str(self.fails(reply, ConnectionClosed)),
            "connection reset while waiting for the reply to 'Ann'",
        )

    def test_tlsFailed(self) -> None:
        """
        A TLS failure says what OpenSSL said, not that the connection was
        reset.
        """
        from OpenSSL.SSL import Error

        banner = self.protocol.banner
        problem = Error([("SSL routines", "", "certificate verify failed")])
        self.protocol.connectionLost(Failure(problem))
        self.assertEqual(
            str(self.fails(banner, TLSFailed)), "TLS failed: certificate verify failed"
        )

    def test_closedWhileIdle(self) -> None:
        """
        A close between names fails the next one at once.
        """
        self.protocol.dataReceived(b"Welcome")
        self.transport.loseConnection()
        self.assertEqual(
            str(self.fails(self.protocol.greet(b"Ann"), ConnectionClosed)),
            "connection closed",
        )
        self.successResultOf(self.protocol.exit())

    def test_badNames(self) -> None:
        for name in (b"", b"a\nb", b"a\rb", b"exit"):
            self.assertRaises(ValueError, self.protocol.greet, name)


class LineServerTests(TCPTestCase):
    """
    A banner that is a line: a C{line} daemon.
    """

    def test_pipelined(self) -> None:
        protocol, transport = self.protocol, self.transport
        protocol.dataReceived(b"Welcome\r\n")
        self.assertTrue(protocol.lineMode)
        self.assertEqual(self.successResultOf(protocol.banner), b"Welcome")
        ann, bob = protocol.greet(b"Ann"), protocol.greet(b"Bob")
        self.assertEqual(transport.value(), b"Ann\r\nBob\r\n")
        protocol.dataReceived(b"Hello, Ann!\r\nHello, B")
        self.assertEqual(self.successResultOf(ann), b"Hello, Ann!")
        self.assertNoResult(bob)
        protocol.dataReceived(b"ob!\r\n")
        self.assertEqual(self.successResultOf(bob), b"Hello, Bob!")
        transport.clear()
        protocol.exit()
        self.assertEqual(transport.value(), b"exit\r\n")

    def test_serverErrorLine(self) -> None:
        self.protocol.dataReceived(b"Welcome\n")
        reply = self.protocol.greet(b"x" * 10)
        self.protocol.dataReceived(b"Error: message longer than 8 bytes\r\n")
        self.assertEqual(
            self.fails(reply, ServerError).text,  # type: ignore[attr-defined]
            b"Error: message longer than 8 bytes",
        )


class NoBannerTests(TCPTestCase):
    """
    A daemon with no banner (C{--welcome ''}): after L{bannerWait} the
    first name goes as a line, and the answer tells the framing.
    """

    def noBanner(self) -> None:
        """
        Let the banner wait pass, checking that nothing is sent before.
        """
        self.clock.advance(GreetingClientProtocol.bannerWait - 0.01)
        self.assertNoResult(self.protocol.banner)
        self.assertEqual(self.sent(), b"")
        self.clock.advance(0.01)
        self.assertEqual(self.successResultOf(self.protocol.banner), b"")

    def test_lineDaemon(self) -> None:
        """
        A C{line} or C{auto} daemon answers the line with a line: the
        session goes on in lines, pipelined once the first reply is in.
        """
        ann, bob = self.protocol.greet(b"Ann"), self.protocol.greet(b"Bob")
        self.noBanner()
        self.assertEqual(self.sent(), b"Ann\r\n")
        self.protocol.dataReceived(b"Hello, Ann")
        self.protocol.dataReceived(b"!\r")
        self.assertNoResult(ann)
        self.protocol.dataReceived(b"\n")
        self.assertEqual(self.successResultOf(ann), b"Hello, Ann!")
        self.assertTrue(self.protocol.lineMode)
        cid = self.protocol.greet(b"Cid")
        self.assertEqual(self.sent(), b"Bob\r\nCid\r\n")
        self.protocol.dataReceived(b"Hello, Bob!\r\nHello, Cid!\r\n")
        self.assertEqual(self.successResultOf(bob), b"Hello, Bob!")
        self.assertEqual(self.successResultOf(cid), b"Hello, Cid!")
        self.protocol.exit()
        self.assertEqual(self.sent(), b"exit\r\n")

    def test_rawDaemon(self) -> None:
        """
        A C{raw} daemon greets the name with its line ending: the name is
        sent again bare, and the session goes on as the seed's.
        """
        ann, bob = self.protocol.greet(b"Ann"), self.protocol.greet(b"Bob")
        self.noBanner()
        self.assertEqual(self.sent(), b"Ann\r\n")
        self.protocol.dataReceived(b"Hello, Ann\r\n")
        self.assertEqual(self.sent(), b"")
        self.protocol.dataReceived(b"!")
        self.assertEqual(self.sent(), b"Ann")
        self.assertNoResult(ann)
        self.assertFalse(self.protocol.lineMode)
        self.protocol.dataReceived(b"Hello, Ann!")
        self.assertEqual(self.successResultOf(ann), b"Hello, Ann!")
        self.assertEqual(self.sent(), b"Bob")
        self.protocol.dataReceived(b"Hello, Bob!")
        self.assertEqual(self.successResultOf(bob), b"Hello, Bob!")
        self.protocol.exit()
        self.assertEqual(self.sent(), b"exit")

    def test_rawDaemonTimedAgain(self) -> None:
        """
        The bare name's reply gets a whole timeout of its own.
        """
        ann = self.protocol.greet(b"Ann")
        self.noBanner()
        self.clock.advance(4)
        self.protocol.dataReceived(b"Hello, Ann\r\n!")
        self.clock.advance(4.9)
        self.protocol.dataReceived(b"Hello, Ann!")
        self.assertEqual(self.successResultOf(ann), b"Hello, Ann!")

    def test_lateBanner(self) -> None:
        """
        A banner that comes after the wait is dropped, not taken for the
        reply, whichever framing it comes with.
        """
        for banner, reply, framing in [
            (b"Welcome", b"Hello, Ann!\r\n", True),
            (b"Welcome\r\n", b"Hello, Ann!\r\n", True),
            (b"Welcome", b"Hello, Ann\r\n!", False),
        ]:
            self.setUp()
            ann = self.protocol.greet(b"Ann")
            self.noBanner()
            self.protocol.dataReceived(banner)
            self.protocol.dataReceived(reply)
            if not framing:
                self.protocol.dataReceived(b"Hello, Ann!")
            self.assertEqual(self.successResultOf(ann), b"Hello, Ann!")
            self.assertEqual(self.protocol.lineMode, framing)

    def test_waitBoundedByTimeout(self) -> None:
        """
        With a timeout shorter than L{bannerWait}, the wait lasts the timeout.
        """
        protocol = GreetingClientProtocol(timeout=0.1, clock=self.clock)
        connected(protocol)
        self.clock.advance(0.1)
        self.assertEqual(self.successResultOf(protocol.banner), b"")

    def test_silentServer(self) -> None:
        """
        A server that says nothing at all times out on the first name.
        """
        ann = self.protocol.greet(b"Ann")
        self.noBanner()
        self.clock.advance(4.9)
        self.assertNoResult(ann)
        self.clock.advance(0.1)
        self.assertEqual(
            str(self.fails(ann, GreetTimeout)),
            "timed out after 5s waiting for a banner or the reply to 'Ann'",
        )
        self.assertFalse(self.transport.connected)

    def test_serverError(self) -> None:
        """
        An error line answers the first name as it does with a banner.
        """
        reply = self.protocol.greet(b"x" * 10)
        self.noBanner()
        self.protocol.dataReceived(b"Error: message longer than 8 bytes\r\n")
        self.fails(reply, ServerError)

    def test_noNames(self) -> None:
        """
        With nothing to greet, C{exit} goes as a line and the session ends.
        """
        self.noBanner()
        closed = self.protocol.exit()
        self.assertEqual(self.sent(), b"exit\r\n")
        self.protocol.connectionLost(Failure(ConnectionLost()))
        self.successResultOf(closed)


_name = st.binary(min_size=1, max_size=40).filter(
    lambda name: b"\r" not in name and b"\n" not in name and name != b"exit"
)


class NoBannerPropertyTests(SynchronousTestCase):
    """
    Against a daemon with no banner, any name is answered right in every
    framing, however the network cuts the daemon's bytes.
    """

    @given(name=_name, framing=st.sampled_from(FRAMINGS), data=st.data())
    def test_anyFramingAnyChunking(
        self, name: bytes, framing: str, data: st.DataObject
    ) -> None:
        clock = Clock()
        protocol = GreetingClientProtocol(timeout=5, clock=clock)
        transport = connected(protocol)
        # The daemon, in memory: its framer and template.
        framer, template = MessageFramer(framing, 1024), ReplyTemplate()
        reply = protocol.greet(name)
        clock.advance(GreetingClientProtocol.bannerWait)
        while transport.value():
            sent = transport.value()
            transport.clear()
            answer = b"".join(
                template.format(message.payload) + message.ending
                for message in framer.feed(sent)
            )
            cuts = sorted(data.draw(st.lists(st.integers(0, len(answer)))))
            for start, end in zip([0, *cuts], [*cuts, len(answer)]):
                if end > start:
                    protocol.dataReceived(answer[start:end])
        self.assertEqual(self.successResultOf(reply), template.format(name))
        self.assertEqual(protocol.lineMode, framing != "raw")


class TimeoutTests(TCPTestCase):
    def test_replyNeverComes(self) -> None:
        self.protocol.dataReceived(b"Welcome")
        reply = self.protocol.greet(b"Ann")
        self.clock.advance(4)
        self.protocol.dataReceived(b"Hello")
        self.clock.advance(1)
        self.assertEqual(
            str(self.fails(reply, GreetTimeout)),
            "timed out after 5s waiting for the reply to 'Ann'",
        )
        self.assertFalse(self.transport.connected)
        self.fails(self.protocol.greet(b"Bob"), GreetTimeout)

    def test_eachReplyTimedAlone(self) -> None:
        """
        The timeout bounds each wait, not the session.
        """
        self.protocol.dataReceived(b"Welcome")
        for name in (b"Ann", b"Bob", b"Cid"):
            reply = self.protocol.greet(name)
            self.clock.advance(4)
            self.protocol.dataReceived(b"Hello, %s!" % name)
            self.successResultOf(reply)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_closeTimesOut(self) -> None:
        """
        A close that does not finish within the timeout is aborted.
        """
        self.protocol.dataReceived(b"Welcome")
        aborted: list[bool] = []
        self.patch(self.transport, "loseConnection", lambda: None)
        self.patch(self.transport, "abortConnection", lambda: aborted.append(True))
        closed = self.protocol.exit()
        self.clock.advance(4.9)
        self.assertEqual(aborted, [])
        self.clock.advance(0.1)
        self.assertEqual(aborted, [True])
        self.assertNoResult(closed)
        self.protocol.connectionLost(Failure(ConnectionLost()))
        self.successResultOf(closed)


class FakeEndpoint:
    """
    Connects to an in-memory transport, or never (when C{hang} is set).
    """

    def __init__(self, hang: bool = False) -> None:
        self.hang = hang
        self.transport = StringTransportWithDisconnection()

    def connect(self, factory: Factory[Protocol]) -> Deferred[Protocol]:
        if self.hang:
            return Deferred()
        protocol = factory.buildProtocol(None)
        assert protocol is not None
        self.transport.protocol = protocol
        protocol.makeConnection(self.transport)
        return succeed(protocol)


class GreetOverTCPTests(SynchronousTestCase):
    def test_session(self) -> None:
        clock = Clock()
        endpoint = FakeEndpoint()
        seen: list[tuple[bytes, bytes]] = []
        session = greetOverTCP(
            endpoint,  # type: ignore[arg-type]
            [b"Ann", b"Bob"],
            clock=clock,
            onReply=lambda name, reply: seen.append((name, reply)),
        )
        protocol = endpoint.transport.protocol
        protocol.dataReceived(b"Welcome")
        protocol.dataReceived(b"Hello, Ann!")
        protocol.dataReceived(b"Hello, Bob!")
        self.assertEqual(
            self.successResultOf(session),
            Greetings(b"Welcome", [b"Hello, Ann!", b"Hello, Bob!"]),
        )
        self.assertEqual(endpoint.transport.value(), b"AnnBobexit")
        self.assertEqual(seen, [(b"Ann", b"Hello, Ann!"), (b"Bob", b"Hello, Bob!")])

    def test_exitEndsNames(self) -> None:
        endpoint = FakeEndpoint()
        session = greetOverTCP(
            endpoint,  # type: ignore[arg-type]
            [b"exit", b"Ann"],
            clock=Clock(),
        )
        endpoint.transport.protocol.dataReceived(b"Welcome\n")
        self.assertEqual(self.successResultOf(session), Greetings(b"Welcome", []))
        self.assertEqual(endpoint.transport.value(), b"exit\r\n")

    def test_connectTimesOut(self) -> None:
        clock = Clock()
        session = greetOverTCP(
            FakeEndpoint(hang=True),  # type: ignore[arg-type]
            [b"Ann"],
            clock=clock,
            timeout=1,
        )
        clock.advance(1)
        failure = self.failureResultOf(session, GreetTimeout)
        self.assertEqual(
            str(failure.value), "timed out after 1s waiting for the connection"
        )

    def test_badNameBeforeConnecting(self) -> None:
        endpoint = FakeEndpoint()
        session = greetOverTCP(endpoint, [b"a\nb"], clock=Clock())  # type: ignore[arg-type]
        self.failureResultOf(session, ValueError)
        self.assertFalse(hasattr(endpoint.transport, "protocol"))


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


class UDPTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.protocol = ReplyClientProtocol(
            "127.0.0.1", 9999, timeout=1, retries=3, clock=self.clock
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
        self.clock.pump([1, 1, 1])
        self.assertNoResult(reply)
        self.clock.advance(1)
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
        A datagram that is not the expected reply (nginx's empty datagram
        for one it could not deliver, another template's reply) is not an
        answer: the wait goes on, the name is resent, and its reply counts.
        """
        ann = self.protocol.greet(b"Ann")
        self.reply(b"")
        self.reply(b"Hi Ann")
        self.assertNoResult(ann)
        self.assertEqual(self.protocol.ignored, 2)
        self.clock.advance(1)
        self.assertEqual(self.port.sent, [b"Ann", b"Ann"])
        self.reply(b"Hello, Ann!")
        self.assertEqual(self.successResultOf(ann), b"Hello, Ann!")

    def test_onlyNotTheReply(self) -> None:
        """
        When every try gets only datagrams that are not the reply, the name
        fails once the tries are spent, saying what came instead.
        """
        ann = self.protocol.greet(b"Ann")
        for _ in range(4):
            self.reply(b"")
            self.assertNoResult(ann)
            self.clock.advance(1)
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
        self.clock.pump([1] * 3)
        self.reply(b"")
        self.clock.advance(1)
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
        protocol.datagramReceived(b"Hello, Ann!", ("127.0.0.1", 9999))
        self.assertNoResult(ann)
        protocol.datagramReceived(b"Hi Ann", ("127.0.0.1", 9999))
        self.assertEqual(self.successResultOf(ann), b"Hi Ann")

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
            "127.0.0.1", 9999, timeout=1, retries=2, clock=self.clock,
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
        self.clock.advance(1)
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
        self.clock.advance(1)
        self.clock.advance(1)
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
        reactor.advance(5)
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
        reactor.advance(5)
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
