"""
Tests for L{greetd.core.session}, the client's session without I/O: bytes
and names in, events out.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from greetd.core.framing import FRAMINGS, MessageFramer
from greetd.core.session import (
    _TRANSITIONS,
    BANNER,
    BANNER_EXIT,
    CLOSING,
    ENDED,
    LINES,
    LINES_EXIT,
    OVER,
    PROBING,
    PROBING_EXIT,
    RAW,
    RAW_EXIT,
    ClientSession,
)
from greetd.core.sessionevents import (
    Banner,
    Close,
    Closed,
    ErrorReply,
    Event,
    Refused,
    Reply,
    Send,
    Stray,
    TooLong,
    Wait,
    WrongReply,
)
from greetd.core.template import ReplyTemplate


class TransitionTableTests(SynchronousTestCase):
    def test_everyStateEveryInput(self) -> None:
        """
        Every state says what every input does: nothing is left to chance.
        """
        inputs = {"greet", "exit", "silence", "data", "lost"}
        self.assertEqual(
            set(_TRANSITIONS),
            {BANNER, PROBING, LINES, RAW, CLOSING, OVER, ENDED}
            | {BANNER_EXIT, PROBING_EXIT, LINES_EXIT, RAW_EXIT},
        )
        for state, table in _TRANSITIONS.items():
            self.assertEqual(set(table), inputs, state)


def exitSent(ending: bytes, *then: Event) -> list[Event]:
    """
    The events of a session whose last owed reply came with C{exit} asked:
    no wait more for a reply, C{exit} sent and the close awaited, then
    C{then}.
    """
    exit = [Send(b"exit" + ending), Close(), Wait("the connection to close")]
    return [Wait(None), *exit, *then]


class ExitTests(SynchronousTestCase):
    """
    Once C{exit} is asked for, no name more is taken, whether the names
    before it are answered and the framing known yet or not.
    """

    def test_namesUnanswered(self) -> None:
        session = ClientSession()
        session.receive(b"Welcome\r\n")
        session.greet(b"Ann")
        self.assertEqual(session.exit(), [])
        self.assertEqual(session.state, LINES_EXIT)
        self.assertRaises(ValueError, session.greet, b"Bob")
        self.assertEqual(session.exit(), [])
        self.assertEqual(
            session.receive(b"Hello, Ann!\r\n"),
            exitSent(b"\r\n", Reply(b"Ann", b"Hello, Ann!")),
        )
        self.assertEqual(session.state, CLOSING)

    def test_rawNamesUnanswered(self) -> None:
        session = ClientSession()
        session.receive(b"Welcome")
        session.greet(b"Ann")
        session.greet(b"Bob")
        session.exit()
        self.assertEqual(session.state, RAW_EXIT)
        self.assertRaises(ValueError, session.greet, b"Cid")
        self.assertEqual(
            session.receive(b"Hello, Ann!"),
            [Send(b"Bob"), Wait("the reply to 'Bob'"), Reply(b"Ann", b"Hello, Ann!")],
        )
        self.assertEqual(
            session.receive(b"Hello, Bob!"),
            exitSent(b"", Reply(b"Bob", b"Hello, Bob!")),
        )

    def test_bannerNotYetCome(self) -> None:
        """
        Before the banner, C{exit} waits for the framing (to know how to
        end it) as the names do, in the twin states.
        """
        session = ClientSession()
        session.greet(b"Ann")
        self.assertEqual(session.exit(), [])
        self.assertEqual(session.state, BANNER_EXIT)
        self.assertRaises(ValueError, session.greet, b"Bob")
        session.silence()
        self.assertEqual(session.state, PROBING_EXIT)
        self.assertRaises(ValueError, session.greet, b"Bob")
        self.assertEqual(
            session.receive(b"Hello, Ann\r\n!"),
            [Send(b"Ann"), Wait("the reply to 'Ann'")],
        )
        self.assertEqual(session.state, RAW_EXIT)
        self.assertEqual(
            session.receive(b"Hello, Ann!"),
            exitSent(b"", Reply(b"Ann", b"Hello, Ann!")),
        )

    def test_exitOnly(self) -> None:
        session = ClientSession()
        self.assertEqual(session.exit(), [])
        self.assertEqual(
            session.receive(b"Welcome\r\n"),
            [
                Send(b"exit\r\n"),
                Close(),
                Wait("the connection to close"),
                Banner(b"Welcome"),
            ],
        )

    def test_failureAfterExit(self) -> None:
        """
        A session that fails after C{exit} is asked for still takes no name
        more; one that fails before takes it, to give it the failure.
        """
        for asked, state in [(True, ENDED), (False, OVER)]:
            session = ClientSession()
            session.receive(b"Welcome\r\n")
            session.greet(b"Ann")
            if asked:
                session.exit()
            session.receive(b"Hi Ann\r\n")
            self.assertEqual(session.state, state)
            if asked:
                self.assertRaises(ValueError, session.greet, b"Bob")
            else:
                self.assertEqual(session.greet(b"Bob"), [])

    def test_closedAfterExit(self) -> None:
        session = ClientSession()
        session.receive(b"Welcome\r\n")
        session.exit()
        self.assertEqual(session.lost(True), [])
        self.assertEqual(session.state, ENDED)
        self.assertRaises(ValueError, session.greet, b"Bob")

    @given(
        steps=st.lists(
            st.sampled_from(["greet", "exit", "silence", "banner", "line", "raw"]),
            max_size=12,
        )
    )
    def test_noNameAfterExit(self, steps: list[str]) -> None:
        """
        Whatever comes before and after it, once C{exit} is asked for every
        name greeted is refused, nothing more is sent after C{exit}, and no
        name greeted after it is ever sent.
        """
        session, asked, names = ClientSession(), False, iter(range(100))
        sent: list[bytes] = []
        before = {b"exit"}
        for step in steps:
            if step == "greet":
                name = b"n%d" % next(names)
                if asked:
                    self.assertRaises(ValueError, session.greet, name)
                    continue
                before.add(name)
                events = session.greet(name)
            elif step == "exit":
                asked, events = True, session.exit()
            elif step == "silence":
                events = session.silence()
            else:
                data = {"banner": b"Hi\r\n", "line": b"Hello, n0!\r\n"}
                events = session.receive(data.get(step, b"Hello, n0!"))
            sent += [event.data for event in events if isinstance(event, Send)]
        names = [data.rstrip(b"\r\n") for data in sent]
        self.assertLessEqual(set(names), before)
        if b"exit" in names:
            self.assertEqual(names.index(b"exit"), len(names) - 1)


class LineSessionTests(SynchronousTestCase):
    def test_pipelined(self) -> None:
        """
        After a line banner, names go as lines at once, and each reply
        restarts the wait for the next, or ends it.
        """
        session = ClientSession()
        self.assertEqual(session.greet(b"Ann"), [])
        self.assertEqual(
            session.receive(b"Welcome\r\n"),
            [Send(b"Ann\r\n"), Wait("the reply to 'Ann'"), Banner(b"Welcome")],
        )
        self.assertEqual((session.state, session.lineMode), (LINES, True))
        self.assertEqual(session.greet(b"Bob"), [Send(b"Bob\r\n")])
        self.assertEqual(
            session.receive(b"Hello, Ann!\r\nHello, Bob!\r"),
            [Wait("the reply to 'Bob'"), Reply(b"Ann", b"Hello, Ann!")],
        )
        self.assertEqual(
            session.receive(b"\n"), [Wait(None), Reply(b"Bob", b"Hello, Bob!")]
        )
        self.assertEqual(
            session.exit(),
            [Send(b"exit\r\n"), Close(), Wait("the connection to close")],
        )
        self.assertEqual(session.state, CLOSING)
        self.assertRaises(ValueError, session.greet, b"Cid")
        self.assertEqual(session.receive(b"noise"), [])
        self.assertEqual(session.lost(True), [])
        self.assertEqual(session.state, ENDED)

    def test_actionsFirst(self) -> None:
        """
        What to send comes before the replies that let it go, so that a
        caller told of a reply, who greets another name then, sends in
        order.
        """
        session = ClientSession()
        session.receive(b"Welcome")
        session.greet(b"Ann")
        session.greet(b"Bob")
        events = session.receive(b"Hello, Ann!")
        self.assertEqual(
            events,
            [Send(b"Bob"), Wait("the reply to 'Bob'"), Reply(b"Ann", b"Hello, Ann!")],
        )

    def test_errorLine(self) -> None:
        session = ClientSession()
        session.receive(b"Welcome\n")
        session.greet(b"x" * 10)
        self.assertEqual(
            session.receive(b"Error: message longer than 8 bytes\r\n"),
            [ErrorReply(b"Error: message longer than 8 bytes")],
        )
        self.assertEqual(session.state, OVER)
        self.assertEqual(session.receive(b"Hello, x!\r\n"), [])
        # The caller hears of the failure with these events: a name it
        # greets meanwhile (from a reply's callback) waits for it.
        self.assertEqual(session.greet(b"Cid"), [])


class RawSessionTests(SynchronousTestCase):
    def test_oneAtATime(self) -> None:
        session = ClientSession(ReplyTemplate("<%s>"))
        session.receive(b"Hi")
        self.assertEqual(session.state, RAW)
        self.assertEqual(
            session.greet(b"Ann"), [Send(b"Ann"), Wait("the reply to 'Ann'")]
        )
        self.assertEqual(session.greet(b"Bob"), [])
        self.assertEqual(session.receive(b"<An"), [])
        self.assertEqual(
            session.receive(b"n>"),
            [Send(b"Bob"), Wait("the reply to 'Bob'"), Reply(b"Ann", b"<Ann>")],
        )

    def test_lostWithPartialReply(self) -> None:
        session = ClientSession()
        session.receive(b"Welcome")
        session.greet(b"Ann")
        session.receive(b"Hello")
        self.assertEqual(
            session.lost(False), [Closed("the reply to 'Ann'", b"Hello", False)]
        )

    def test_lostWhileIdle(self) -> None:
        session = ClientSession()
        session.receive(b"Welcome")
        self.assertEqual(session.lost(True), [Closed(None, b"", True)])

    def test_lostBeforeBanner(self) -> None:
        self.assertEqual(ClientSession().lost(True), [Closed("the banner", b"", True)])


class NoBannerSessionTests(SynchronousTestCase):
    def test_lineDaemon(self) -> None:
        session = ClientSession()
        session.greet(b"Ann")
        session.greet(b"Bob")
        self.assertEqual(
            session.silence(),
            [Send(b"Ann\r\n"), Wait("a banner or the reply to 'Ann'"), Banner(b"")],
        )
        self.assertEqual(session.state, PROBING)
        self.assertEqual(
            session.receive(b"Hello, Ann!\r\n"),
            [
                Send(b"Bob\r\n"),
                Wait("the reply to 'Bob'"),
                Reply(b"Ann", b"Hello, Ann!"),
            ],
        )
        self.assertEqual(session.state, LINES)

    def test_rawDaemon(self) -> None:
        """
        A raw daemon's answer to the line: the name goes again, bare, with a
        wait of its own.
        """
        session = ClientSession()
        session.greet(b"Ann")
        session.silence()
        self.assertEqual(
            session.receive(b"Hello, Ann\r\n!"),
            [Send(b"Ann"), Wait("the reply to 'Ann'")],
        )
        self.assertEqual((session.state, session.lineMode), (RAW, False))

    def test_silenceIgnoredLater(self) -> None:
        session = ClientSession()
        session.receive(b"Welcome")
        self.assertEqual(session.silence(), [])


class HostileServerTests(SynchronousTestCase):
    """
    What a server sends is not believed: a reply must be the template
    applied to the name, and no line is kept beyond a bound.
    """

    def test_refusal(self) -> None:
        session = ClientSession()
        session.greet(b"Ann")
        self.assertEqual(
            session.receive(b"Error: too many connections\r\n"),
            [Refused(b"Error: too many connections")],
        )
        self.assertEqual(session.state, OVER)

    def test_wrongReply(self) -> None:
        for banner, answer, reply in [
            (b"Welcome\r\n", b"Hi Ann\r\n", b"Hi Ann"),
            (b"Welcome", b"Hi Ann", b"Hi Ann"),
            (b"Welcome", b"Hello, Ann!!", b"Hello, Ann!!"),
        ]:
            session = ClientSession()
            session.receive(banner)
            session.greet(b"Ann")
            self.assertEqual(
                session.receive(answer),
                [WrongReply(b"Ann", reply, b"Hello, Ann!")],
            )
            self.assertEqual(session.state, OVER)

    def test_rawErrorOnItsWay(self) -> None:
        """
        In C{raw}, an error line is not a wrong reply, and is whole only
        when the daemon closes: one cut by a read is not reported cut.
        """
        session = ClientSession()
        session.receive(b"Welcome")
        session.greet(b"x" * 10)
        self.assertEqual(session.receive(b"Err"), [])
        self.assertEqual(session.receive(b"or: message lo"), [])
        self.assertEqual(session.receive(b"nger than 8 bytes"), [])
        self.assertEqual(
            session.lost(True), [ErrorReply(b"Error: message longer than 8 bytes")]
        )

    def test_rawErrorBounded(self) -> None:
        """
        A raw daemon's error line is awaited until it closes, but no more
        than C{maxLength} bytes of it are kept.
        """
        session = ClientSession(maxLength=10)
        session.receive(b"Welcome")
        session.greet(b"Ann")
        self.assertEqual(session.receive(b"Error: 12345"), [])
        self.assertEqual(session.receive(b"5"), [TooLong("the reply to 'Ann'", 11)])

    def test_longBanner(self) -> None:
        session = ClientSession(maxLength=4)
        self.assertEqual(session.receive(b"Welcome"), [TooLong("the banner", 4)])

    def test_lateBannerTooLong(self) -> None:
        session = ClientSession(maxLength=4)
        session.silence()
        self.assertEqual(session.receive(b"12345"), [TooLong("a banner", 4)])

    def test_unsolicitedLines(self) -> None:
        """
        A whole line while no reply is owed fails the session at once: it
        answers no name, and is not kept to be taken for the next name's
        reply.  One not ended is kept up to C{maxLength}.
        """
        session = ClientSession(maxLength=4)
        session.receive(b"Hi\n")
        self.assertEqual(session.receive(b"1\n2\n3\n4"), [Stray(b"1")])
        self.assertEqual(session.state, OVER)
        session = ClientSession(maxLength=4)
        session.receive(b"Hi\n")
        self.assertEqual(session.receive(b"1234"), [])
        self.assertEqual(session.receive(b"56"), [TooLong("a line", 4)])

    def test_lineAfterTheReplies(self) -> None:
        """
        A line after the replies owed, in the same chunk as the last, is
        no reply to the next name: the session fails as soon as it comes,
        and the name greeted next waits for that failure.
        """
        session = ClientSession()
        session.receive(b"Welcome\r\n")
        session.greet(b"Ann")
        self.assertEqual(
            session.receive(b"Hello, Ann!\r\nHello, Mallory!\r\n"),
            [Wait(None), Reply(b"Ann", b"Hello, Ann!"), Stray(b"Hello, Mallory!")],
        )
        self.assertEqual(session.greet(b"Bob"), [])

    def test_errorLineWhileIdle(self) -> None:
        """
        An error line while no reply is owed (the daemon's C{idle timeout})
        is reported as the server's error.
        """
        session = ClientSession()
        session.receive(b"Welcome\r\n")
        self.assertEqual(
            session.receive(b"Error: idle timeout\r\n"),
            [ErrorReply(b"Error: idle timeout")],
        )

    @given(
        answered=st.integers(0, 3),
        line=st.binary(max_size=40).filter(lambda line: b"\n" not in line),
        data=st.data(),
    )
    def test_anyStrayLine(
        self, answered: int, line: bytes, data: st.DataObject
    ) -> None:
        """
        However the server's bytes are cut, a line after the replies owed
        fails the session in the chunk that ends it, and not before.
        """
        session = ClientSession()
        session.receive(b"Welcome\r\n")
        names = [b"n%d" % i for i in range(answered)]
        for name in names:
            session.greet(name)
        replies = b"".join(b"Hello, %s!\r\n" % name for name in names)
        stream = replies + line + b"\n"
        drawn = data.draw(st.sets(st.integers(0, len(stream))))
        cuts = sorted(cut for cut in drawn if 0 < cut < len(stream))
        events: list[Event] = []
        for start, end in zip([0, *cuts], [*cuts, len(stream)]):
            self.assertEqual(session.state, LINES)
            events = session.receive(stream[start:end])
        self.assertEqual(session.state, OVER)
        failure = line[:-1] if line.endswith(b"\r") else line
        self.assertIn(events[-1], [Stray(failure), ErrorReply(failure)])

    @given(
        framing=st.sampled_from(["line", "raw", "none"]),
        chunks=st.lists(st.binary(min_size=1, max_size=300), max_size=30),
    )
    def test_boundedBuffer(self, framing: str, chunks: list[bytes]) -> None:
        """
        Whatever a server sends, however cut, the session keeps no more
        than C{maxLength} bytes beyond the reply it awaits (and a CR).
        """
        session = ClientSession(maxLength=100)
        session.greet(b"Ann")
        if framing == "none":
            session.silence()
        else:
            session.receive(b"Hi\r\n" if framing == "line" else b"Hi")
        bound = 100 + len(b"Hello, Ann\r\n!") + 1
        for chunk in chunks:
            session.receive(chunk)
            self.assertLessEqual(session.buffered, bound)


def _answers(framer: MessageFramer, template: ReplyTemplate, sent: bytes) -> bytes:
    return b"".join(
        template.format(message.payload) + message.ending
        for message in framer.feed(sent)
    )


_name = st.binary(min_size=1, max_size=40).filter(
    lambda name: b"\r" not in name and b"\n" not in name and name != b"exit"
)


class SessionPropertyTests(SynchronousTestCase):
    @given(
        names=st.lists(_name, min_size=1, max_size=4),
        framing=st.sampled_from(FRAMINGS),
        welcome=st.sampled_from([b"", b"Welcome"]),
        data=st.data(),
    )
    def test_anyFramingAnyChunking(
        self, names: list[bytes], framing: str, welcome: bytes, data: st.DataObject
    ) -> None:
        """
        Driven against the daemon's own framer in every framing, with or
        without a banner, however the daemon's bytes are cut, every name
        gets its reply, in order.
        """
        session, template = ClientSession(), ReplyTemplate()
        framer = MessageFramer(framing, 1024)
        events: list[Event] = []
        for name in names:
            events += session.greet(name)
        # The daemon writes its banner alone, before it reads a name; a
        # line daemon's is a line.
        banner = welcome + b"\r\n" if welcome and framing == "line" else welcome
        events += session.receive(banner) if banner else session.silence()
        owed, replies = b"", []
        while True:
            sent = b"".join(event.data for event in events if isinstance(event, Send))
            replies += [event for event in events if isinstance(event, Reply)]
            owed += _answers(framer, template, sent) if sent else b""
            if not owed:
                break
            cut = data.draw(st.integers(1, len(owed)))
            chunk, owed = owed[:cut], owed[cut:]
            events = session.receive(chunk)
        self.assertEqual(
            replies, [Reply(name, template.format(name)) for name in names]
        )
