"""
Tests for L{greetd.client.tcp}, on in-memory transports and a fake clock.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from greetd.client.errors import (
    ConnectionClosed,
    GreetTimeout,
    ReplyTooLong,
    ServerError,
    ServerRefused,
    StrayLine,
    TLSFailed,
    UnexpectedReply,
)
from greetd.client.tcp import GreetingClientProtocol, Greetings, greetOverTCP
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


class StateTests(TCPTestCase):
    def test_fewAttributes(self) -> None:
        """
        The protocol moves bytes and fires Deferreds; its session keeps
        the state: a handful of attributes of its own, not flags.
        """
        self.protocol.dataReceived(b"Welcome")
        self.protocol.greet(b"Ann")
        own = set(vars(self.protocol)) - {"transport", "connected"}
        self.assertLessEqual(len(own), 8, sorted(own))


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
        A reply that is not the expected one (a daemon with another
        template) fails the session, saying what came.
        """
        self.protocol.dataReceived(b"Welcome")
        reply = self.protocol.greet(b"Ann")
        self.protocol.dataReceived(b"Hi Ann")
        self.assertEqual(
            str(self.fails(reply, UnexpectedReply)),
            "the reply to 'Ann' was 'Hi Ann', not 'Hello, Ann!'",
        )
        self.assertFalse(self.transport.connected)

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
        """
        A raw daemon's error line, however its reads cut it, is reported
        whole: it ends when the daemon closes.
        """
        self.protocol.dataReceived(b"Welcome")
        reply = self.protocol.greet(b"x" * 10)
        self.protocol.dataReceived(b"Error: message lo")
        self.protocol.dataReceived(b"nger than 8 bytes")
        self.assertNoResult(reply)
        self.transport.loseConnection()
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


class HostileServerTests(TCPTestCase):
    """
    A server that refuses, lies or never ends a line fails the session at
    once, with bounded memory.
    """

    def test_refusedInsteadOfBanner(self) -> None:
        """
        An error line instead of the banner is a refusal, not a banner.
        """
        ann = self.protocol.greet(b"Ann")
        self.protocol.dataReceived(b"Error: too many connections from your address\r\n")
        error = self.fails(self.protocol.banner, ServerRefused)
        self.assertEqual(
            str(error),
            "the server refused the connection: "
            "'Error: too many connections from your address'",
        )
        self.fails(ann, ServerRefused)
        self.assertEqual(self.sent(), b"")
        self.assertFalse(self.transport.connected)

    def test_wrongLine(self) -> None:
        self.protocol.dataReceived(b"Welcome\r\n")
        reply = self.protocol.greet(b"Ann")
        self.protocol.dataReceived(b"Hello, Bob!\r\n")
        self.fails(reply, UnexpectedReply)

    def test_greetedFromAReplyBeforeFailure(self) -> None:
        """
        A name greeted from the callback of a reply that came in the same
        chunk as a failure gets that failure, not an error of its own.
        """
        self.protocol.dataReceived(b"Welcome\r\n")
        ann, bob = self.protocol.greet(b"Ann"), self.protocol.greet(b"Bob")
        cid = ann.addCallback(lambda _: self.protocol.greet(b"Cid"))
        self.protocol.dataReceived(b"Hello, Ann!\r\nHi Bob\r\n")
        self.fails(bob, UnexpectedReply)
        self.fails(cid, UnexpectedReply)

    def test_strayLine(self) -> None:
        """
        A line after the replies owed fails the session at once, and the
        name greeted next (here, from the last reply's callback) with it,
        without being sent.
        """
        self.protocol.dataReceived(b"Welcome\r\n")
        ann = self.protocol.greet(b"Ann")
        bob = ann.addCallback(lambda _: self.protocol.greet(b"Bob"))
        self.sent()
        self.protocol.dataReceived(b"Hello, Ann!\r\nHello, Mallory!\r\n")
        failure = self.fails(bob, StrayLine)
        self.assertEqual(
            str(failure), "the server sent 'Hello, Mallory!', which answers no name"
        )
        self.assertEqual(self.sent(), b"")
        self.assertFalse(self.transport.connected)

    def test_endlessLine(self) -> None:
        """
        A reply line that never ends fails once it passes C{maxLength} (or
        the reply's own length), however it is cut.
        """
        protocol = GreetingClientProtocol(timeout=5, clock=self.clock, maxLength=64)
        transport = connected(protocol)
        protocol.dataReceived(b"Welcome\r\n")
        reply = protocol.greet(b"Ann")
        for _ in range(64):
            protocol.dataReceived(b"x")
        self.assertNoResult(reply)
        protocol.dataReceived(b"xx")
        self.assertEqual(
            str(self.fails(reply, ReplyTooLong)),
            "the reply to 'Ann' is longer than 64 bytes",
        )
        self.assertFalse(transport.connected)

    def test_longBanner(self) -> None:
        protocol = GreetingClientProtocol(timeout=5, clock=self.clock, maxLength=8)
        connected(protocol)
        protocol.dataReceived(b"Welcome, friend")
        self.assertEqual(
            str(self.fails(protocol.banner, ReplyTooLong)),
            "the banner is longer than 8 bytes",
        )


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

    def test_noNameAfterExit(self) -> None:
        """
        Once C{exit} is asked for, with a name still unanswered, a new name
        is refused and never sent; C{exit} follows the reply owed.
        """
        self.protocol.dataReceived(b"Welcome\r\n")
        ann = self.protocol.greet(b"Ann")
        self.protocol.exit()
        self.assertRaises(ValueError, self.protocol.greet, b"Bob")
        self.assertEqual(self.sent(), b"Ann\r\n")
        self.protocol.dataReceived(b"Hello, Ann!\r\n")
        self.assertEqual(self.successResultOf(ann), b"Hello, Ann!")
        self.assertEqual(self.sent(), b"exit\r\n")

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
