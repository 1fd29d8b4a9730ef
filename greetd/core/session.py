"""
The client side of a TCP greeting session, kept apart from any transport:
names, the server's bytes and the end of the banner wait go in, events
come out (bytes to send, the banner, each reply, what to time, why the
session failed), as h11 does for HTTP and L{MessageFramer} for the server.

The banner tells the client the daemon's framing.  A banner that ends in
LF comes from a C{line} daemon: names go as lines, pipelined, and each
reply is a line.  Otherwise (C{auto} or C{raw}), names go bare and one at
a time, as the seed's client sends them, and a reply is complete once the
bytes received equal the expected reply, however the network split them.
The banner is the first chunk received (up to its LF): the daemon writes
it in one small write.

A daemon with no banner (C{--welcome ''}) says nothing until asked: when
the caller says the banner wait is over (L{ClientSession.silence}), the
banner is empty and the first name goes as a line (C{Ann\\r\\n}), which
every framing answers: C{line} and C{auto} (switched to lines by the LF)
with the reply and the same line ending, so the session goes on in lines;
C{raw} by taking the line ending for part of the message (C{Hello,
Ann\\r\\n!}), which tells the session to send the name again bare and go
on as the seed does.  Bytes before that answer (a banner later than the
wait) are dropped.

The server is not trusted: a reply that is not the template applied to
the name fails the session (L{WrongReply}), and so does a line that comes
while no reply is owed (L{Stray}); no line it sends is kept beyond a
bound (L{TooLong}); a refusal is not taken for a banner (L{Refused}).

The states, and what each input does in each (L{_TRANSITIONS})::

    state      greet       exit        silence     data          lost
    BANNER     queued      -> *_EXIT   -> PROBING  -> LINES|RAW  -> OVER
    PROBING    sent, one   -> *_EXIT   ignored     -> LINES|RAW  -> OVER
    LINES      sent        -> *_EXIT   ignored     replies       -> OVER
    RAW        sent, one   -> *_EXIT   ignored     replies       -> OVER
    *_EXIT     ValueError  ignored     as *        as *          -> ENDED
    CLOSING    ValueError  ignored     ignored     ignored       -> ENDED
    OVER       ignored*    -> ENDED    ignored     ignored       ignored
    ENDED      ValueError  ignored     ignored     ignored       ignored

A name is sent at once in LINES (pipelined), and in PROBING and RAW once
the name before it is answered.  C{exit} moves each of those four states
to its twin with C{exit} asked (BANNER to BANNER_EXIT, and so on), where
the names already greeted are still sent and answered but no name more is
taken; a twin does with the server's bytes what its state does, moving to
the twin of where that one goes, and to CLOSING (C{exit} sent) once the
framing is known and every name is answered.  A failure moves a state
before C{exit} to OVER, and one after it to ENDED.  (*) A name greeted in
OVER waits for the failure that ended the session, which the caller is
about to hear of (it greeted the name from a callback of a reply that
came with the failure).
"""

from __future__ import annotations

from collections import deque
from typing import Callable

from greetd.core.escaping import quote
from greetd.core.framing import DEFAULT_MAX_LENGTH, EXIT
from greetd.core.sessionevents import (
    ACTIONS,
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

#: How the daemon's error lines begin (a refusal, a message too long).
ERROR_PREFIX = b"Error: "

#: The states of a L{ClientSession}.
BANNER = "banner"  # connected, waiting for the banner
PROBING = "probing"  # no banner: the first name went as a line
LINES = "lines"  # the daemon frames by lines: names pipelined as lines
RAW = "raw"  # the daemon frames by reads: names bare, one at a time
BANNER_EXIT = "banner, exit asked"  # as BANNER, then exit; no name more
PROBING_EXIT = "probing, exit asked"  # as PROBING, then exit; no name more
LINES_EXIT = "lines, exit asked"  # as LINES, then exit; no name more
RAW_EXIT = "raw, exit asked"  # as RAW, then exit; no name more
CLOSING = "closing"  # exit sent, waiting for the server to close
OVER = "over"  # failed, given up, or the connection is gone, before exit
ENDED = "ended"  # closed, failed or given up after exit was asked

#: The twin of each state before C{exit}, with C{exit} asked.
_EXIT_ASKED = {
    BANNER: BANNER_EXIT,
    PROBING: PROBING_EXIT,
    LINES: LINES_EXIT,
    RAW: RAW_EXIT,
}

#: The framing each state knows (or awaits), with or without C{exit}.
_FRAMING = {
    **{state: state for state in _EXIT_ASKED},
    **{twin: state for state, twin in _EXIT_ASKED.items()},
}

#: How names end in each framing: as lines when probing and in LINES.
_ENDINGS = {PROBING: b"\r\n", LINES: b"\r\n", RAW: b""}


class ClientSession:
    """
    One TCP greeting session from the client's side, without I/O.

    Each input returns the events it causes, in order: first what to do
    (L{Send}, L{Close}, L{Wait}), then what happened.

    @ivar template: The daemon's L{ReplyTemplate}, to recognise replies.
    @ivar maxLength: The most bytes kept of a line the server has not
        ended (a banner, an error) or of one beyond the reply awaited.
    @ivar state: One of L{BANNER}, L{PROBING}, L{LINES}, L{RAW}, their
        twins with C{exit} asked (L{BANNER_EXIT}...), L{CLOSING}, L{OVER}
        and L{ENDED}.
    """

    def __init__(
        self,
        template: ReplyTemplate | None = None,
        maxLength: int = DEFAULT_MAX_LENGTH,
    ) -> None:
        self.template = template if template is not None else ReplyTemplate()
        self.maxLength = maxLength
        self.state = BANNER
        self._buffer = b""
        # Names not yet answered, oldest first; the first _sent of them are
        # written.
        self._names: deque[bytes] = deque()
        self._sent = 0

    @property
    def lineMode(self) -> bool | None:
        """
        Whether the daemon frames by lines; C{None} until that is known,
        and once C{exit} is sent or the session is over.
        """
        ending = self._ending
        return None if ending is None else ending != b""

    @property
    def _framing(self) -> str | None:
        # BANNER, PROBING, LINES or RAW, C{exit} asked or not; None once
        # the names are done with (CLOSING, OVER, ENDED).
        return _FRAMING.get(self.state)

    @property
    def _ending(self) -> bytes | None:
        # How names end; None while the framing is not known.
        framing = self._framing
        return None if framing is None else _ENDINGS.get(framing)

    @property
    def buffered(self) -> int:
        """
        How many of the server's bytes are kept, waiting for their end.
        """
        return len(self._buffer)

    @property
    def awaiting(self) -> str:
        """
        What the session waits for now, in words for a message.
        """
        if self._framing == BANNER:
            return "the banner"
        if self.state == CLOSING or not self._names:
            return "the connection to close"
        reply = f"the reply to {quote(self._names[0])}"
        return f"a banner or {reply}" if self._framing == PROBING else reply

    def greet(self, name: bytes) -> list[Event]:
        """
        Greet C{name}: it is sent once the framing is known and the names
        before it allow.

        @raise ValueError: Once C{exit} has been asked for.
        """
        return _TRANSITIONS[self.state]["greet"](self, name)

    def exit(self) -> list[Event]:
        """
        End the session: C{exit} goes once every name is answered.
        """
        return _TRANSITIONS[self.state]["exit"](self)

    def silence(self) -> list[Event]:
        """
        The banner wait is over and nothing came.
        """
        return _TRANSITIONS[self.state]["silence"](self)

    def receive(self, data: bytes) -> list[Event]:
        """
        The server sent C{data}.
        """
        return _TRANSITIONS[self.state]["data"](self, data)

    def lost(self, clean: bool) -> list[Event]:
        """
        The connection is gone: closed (C{clean}) or reset.
        """
        return _TRANSITIONS[self.state]["lost"](self, clean)

    def abandon(self) -> None:
        """
        The caller gives up on the session (a wait timed out): whatever
        comes now is ignored.
        """
        self._end()

    # What each input does in each state.

    def _queue(self, name: bytes) -> list[Event]:
        self._names.append(name)
        return self._send()

    def _queueExit(self) -> list[Event]:
        self.state = _EXIT_ASKED[self.state]
        return self._send()

    def _exitOver(self) -> list[Event]:
        self.state = ENDED
        return []

    def _refuse(self, *args: object) -> list[Event]:
        raise ValueError("the session is ending")

    def _ignore(self, *args: object) -> list[Event]:
        return []

    def _become(self, framing: str) -> None:
        """
        The framing is now C{framing}: move to its state, or to its twin
        if C{exit} is asked.
        """
        self.state = _EXIT_ASKED[framing] if self._exitAsked() else framing

    def _exitAsked(self) -> bool:
        return self.state not in _EXIT_ASKED and self.state != OVER

    def _end(self) -> None:
        self.state = ENDED if self._exitAsked() else OVER

    def _noBanner(self) -> list[Event]:
        self._become(PROBING)
        return [*self._send(), Banner(b"")]

    def _banner(self, data: bytes) -> list[Event]:
        banner, newline, self._buffer = data.partition(b"\n")
        if newline and banner.endswith(b"\r"):
            banner = banner[:-1]
        if banner.startswith(ERROR_PREFIX):
            return self._over(Refused(banner))
        if len(banner) > self.maxLength:
            return self._over(TooLong("the banner", self.maxLength))
        self._become(LINES if newline else RAW)
        events = self._send()
        events.append(Banner(banner))
        return self._ordered(events + self._replies(b""))

    def _probeAnswer(self, data: bytes) -> list[Event]:
        self._buffer += data
        if not self._sent:
            # A banner later than the wait, or noise: nothing is owed yet.
            if len(self._buffer) > self.maxLength:
                return self._over(TooLong("a banner", self.maxLength))
            return []
        name = self._names[0]
        lineReply = self.template.format(name) + b"\r\n"
        rawReply = self.template.format(name + b"\r\n")
        if self._buffer.endswith(lineReply):
            self._buffer = lineReply
        elif self._buffer.startswith(ERROR_PREFIX) and b"\n" in self._buffer:
            pass
        elif self._buffer.endswith(rawReply):
            # A raw daemon answered the name with its line ending: again, bare.
            self._become(RAW)
            self._buffer = b""
            return [Send(name), Wait(self.awaiting)]
        elif len(self._buffer) > self.maxLength + len(rawReply):
            return self._over(TooLong(self.awaiting, self.maxLength))
        else:
            return []
        self._become(LINES)
        return self._ordered(self._send() + self._replies(b""))

    def _replies(self, data: bytes) -> list[Event]:
        """
        The replies C{data} completes, in LINES or RAW.
        """
        self._buffer += data
        read = self._readLine if self._framing == LINES else self._readRaw
        events: list[Event] = []
        while self._sent and self._framing is not None:
            reply = read()
            if reply is None:
                break
            events += self._answer(reply)
        if self._framing == LINES and not self._sent and b"\n" in self._buffer:
            # A whole line while no name is owed a reply: the server had
            # not been sent the name it could answer, so it answers none.
            # Failing now says so; kept, it would be matched against the
            # next name (a wrong reply, or a wait until the timeout).
            line = self._readLine() or b""
            stray = ErrorReply(line) if line.startswith(ERROR_PREFIX) else Stray(line)
            events += self._over(stray)
        elif self._framing == RAW and not self._sent:
            # Nothing is owed: what a raw daemon sends now answers no name.
            self._buffer = b""
        elif self._framing is not None and len(self._buffer) > self._limit() + 1:
            # A line not ended (a CR may yet start a CRLF), or a raw
            # daemon's error line not closed: either way, no more is kept.
            what = self.awaiting if self._sent else "a line"
            events += self._over(TooLong(what, self._limit()))
        return self._ordered(events)

    def _readLine(self) -> bytes | None:
        line, newline, rest = self._buffer.partition(b"\n")
        if not newline:
            return None
        self._buffer = rest
        return line[:-1] if line.endswith(b"\r") else line

    def _readRaw(self) -> bytes | None:
        expected = self.template.format(self._names[0])
        buffer = self._buffer
        if not buffer or (buffer != expected and expected.startswith(buffer)):
            return None
        error = ERROR_PREFIX.startswith(buffer) or buffer.startswith(ERROR_PREFIX)
        if error and buffer != expected and b"\n" not in buffer:
            # An error line, or its start: a raw daemon ends one by closing
            # (an auto one by a line ending), so more of it may be on its
            # way; the close (L{_lost}) reports it whole.
            return None
        self._buffer = b""
        return buffer

    def _limit(self) -> int:
        expected = self.template.format(self._names[0]) if self._names else b""
        return max(self.maxLength, len(expected))

    def _answer(self, reply: bytes) -> list[Event]:
        name = self._names[0]
        expected = self.template.format(name)
        if reply != expected:
            if reply.startswith(ERROR_PREFIX):
                return self._over(ErrorReply(reply.rstrip(b"\r\n")))
            return self._over(WrongReply(name, reply, expected))
        self._names.popleft()
        self._sent -= 1
        events = self._send(restart=True)
        events.append(Reply(name, reply))
        return events

    def _send(self, restart: bool = False) -> list[Event]:
        """
        Send what the framing and the names before allow; C{restart}: an
        answer just came, so any wait still open is a new one.
        """
        ending = self._ending
        if ending is None:
            return []
        events: list[Event] = []
        waiting = self._sent > 0 and not restart
        pipelined = self._framing == LINES
        while self._sent < len(self._names) and (pipelined or not self._sent):
            events.append(Send(self._names[self._sent] + ending))
            self._sent += 1
        if self._sent and not waiting:
            events.append(Wait(self.awaiting))
        elif restart and not self._sent:
            events.append(Wait(None))
        if self.state in _EXIT_ASKED.values() and not self._names:
            self.state = CLOSING
            events += [Send(EXIT + ending), Close(), Wait(self.awaiting)]
        return events

    def _lost(self, clean: bool) -> list[Event]:
        if self._framing == BANNER:
            return self._over(Closed(self.awaiting, self._buffer, clean))
        if not self._names:
            return self._over(Closed(None, b"", clean))
        partial = self._buffer
        if partial.startswith(ERROR_PREFIX):
            return self._over(ErrorReply(partial.rstrip(b"\r\n")))
        return self._over(Closed(self.awaiting, partial, clean))

    def _closed(self, clean: bool) -> list[Event]:
        self.state = ENDED
        return []

    def _over(self, failure: Event) -> list[Event]:
        self._end()
        self._buffer = b""
        return [failure]

    @staticmethod
    def _ordered(events: list[Event]) -> list[Event]:
        # Actions first: a caller that fires a Deferred for an event may be
        # called back with a new name, whose bytes must follow these.
        return sorted(events, key=lambda event: not isinstance(event, ACTIONS))


_Input = Callable[..., "list[Event]"]

#: What each input does in each state: the table in the module docstring.
_TRANSITIONS: dict[str, dict[str, _Input]] = {
    BANNER: {
        "greet": ClientSession._queue,
        "exit": ClientSession._queueExit,
        "silence": ClientSession._noBanner,
        "data": ClientSession._banner,
        "lost": ClientSession._lost,
    },
    PROBING: {
        "greet": ClientSession._queue,
        "exit": ClientSession._queueExit,
        "silence": ClientSession._ignore,
        "data": ClientSession._probeAnswer,
        "lost": ClientSession._lost,
    },
    CLOSING: {
        "greet": ClientSession._refuse,
        "exit": ClientSession._ignore,
        "silence": ClientSession._ignore,
        "data": ClientSession._ignore,
        "lost": ClientSession._closed,
    },
    OVER: {
        "greet": ClientSession._ignore,
        "exit": ClientSession._exitOver,
        "silence": ClientSession._ignore,
        "data": ClientSession._ignore,
        "lost": ClientSession._ignore,
    },
}
_TRANSITIONS[ENDED] = {
    **_TRANSITIONS[OVER],
    "greet": ClientSession._refuse,
    "exit": ClientSession._ignore,
}
_TRANSITIONS[LINES] = _TRANSITIONS[RAW] = {
    **_TRANSITIONS[PROBING],
    "data": ClientSession._replies,
}
for _state, _twin in _EXIT_ASKED.items():
    _TRANSITIONS[_twin] = {
        **_TRANSITIONS[_state],
        "greet": ClientSession._refuse,
        "exit": ClientSession._ignore,
    }
