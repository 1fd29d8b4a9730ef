"""
Message framing for the greeting service, kept apart from any transport.

The seed's server treats every chunk C{recv} returns as one message, which is
what its client expects and what breaks C{nc}, telnet and pipelining clients.
L{MessageFramer} supports both worlds: C{raw} keeps the seed's rule, C{line}
splits on LF, and C{auto} behaves like C{raw} until the first LF arrives on
the connection and like C{line} from then on.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

#: The framing names accepted by L{MessageFramer} and C{--framing}.
FRAMINGS = ("auto", "line", "raw")

#: The message that ends a session, as in the seed.
EXIT = b"exit"

#: The longest message answered by default: the seed's read size, and so
#: the longest message it could answer whole.  C{greet} takes the same
#: bound on what it buffers of a server's line.
DEFAULT_MAX_LENGTH = 1024

#: The line ending used for a line-framed error before any line has ended.
DEFAULT_LINE_ENDING = b"\r\n"


class Message(NamedTuple):
    """
    One complete message.

    @ivar payload: The message bytes, without any line ending.
    @ivar ending: The line ending it arrived with (C{b"\\n"} or C{b"\\r\\n"}),
        which its reply repeats; C{b""} for a raw message.
    """

    payload: bytes
    ending: bytes


class MessageTooLong(Exception):
    """
    A message, finished or not, is longer than the framer's C{maxLength}.
    The error reply ends as the framer's C{errorEnding} says.

    @ivar messages: The complete messages of the same chunk before the one
        that is too long, which are still owed their replies.
    """

    def __init__(self, maxLength: int, messages: Sequence[Message] = ()) -> None:
        super().__init__(f"message longer than {maxLength} bytes")
        self.maxLength = maxLength
        self.messages = list(messages)


class MessageFramer:
    """
    Turn the chunks a stream transport delivers into L{Message}s.

    @ivar maxLength: The longest message accepted, line ending excluded.  The
        framer never keeps more than this many bytes of an unfinished line
        (plus a trailing CR that may yet turn out to start a CRLF).
    @ivar framing: One of L{FRAMINGS}.
    @ivar lineMode: Whether chunks are currently split on LF.
    """

    # One framer per connection: slots keep idle connections small.
    __slots__ = ("_buffer", "_lastEnding", "framing", "lineMode", "maxLength")

    def __init__(
        self, framing: str = "auto", maxLength: int = DEFAULT_MAX_LENGTH
    ) -> None:
        if framing not in FRAMINGS:
            raise ValueError(f"unknown framing {framing!r}")
        self.framing = framing
        self.maxLength = maxLength
        self.lineMode = framing == "line"
        self._buffer = b""
        self._lastEnding = DEFAULT_LINE_ENDING

    @property
    def errorEnding(self) -> bytes:
        """
        The line ending an error reply should end with right now.
        """
        return self._lastEnding if self.lineMode else b""

    def feed(self, data: bytes) -> list[Message]:
        """
        Consume one chunk and return every message it completes, in order.

        One call a chunk, and a list rather than a lazy iterator: answering
        a message is the hot path, and a generator costs more to start and
        resume than the list costs to build.  A caller that stops early
        (after C{exit}) simply ignores the rest, which is what closing
        wants.

        @raise MessageTooLong: When a message exceeds L{maxLength}, carrying
            the messages before it; the framer is then unusable.
        """
        if self.lineMode:
            end = data.find(b"\n")
            if end == len(data) - 1 and end >= 0 and not self._buffer:
                # One whole line, as a client waiting for each reply sends:
                # framed here, without a call to _feedLines or its loop
                # (which PyPy compiles apart, and enters and leaves for
                # every chunk; CPython pays the call).
                if data[end - 1 : end] == b"\r":
                    line, self._lastEnding = data[: end - 1], b"\r\n"
                else:
                    line, self._lastEnding = data[:end], b"\n"
                if len(line) > self.maxLength:
                    raise MessageTooLong(self.maxLength)
                return [Message(line, self._lastEnding)] if line else []
            return self._feedLines(data)
        # Raw framing, or auto framing before its first LF.
        if self.framing == "raw" or b"\n" not in data:
            if len(data) > self.maxLength:
                raise MessageTooLong(self.maxLength)
            return [Message(data, b"")]
        self.lineMode = True
        return self._feedLines(data)

    def _feedLines(self, data: bytes) -> list[Message]:
        buffer = self._buffer + data if self._buffer else data
        self._buffer = b""
        lines = buffer.split(b"\n")
        rest = lines.pop()
        maxLength = self.maxLength
        messages: list[Message] = []
        for line in lines:
            if line[-1:] == b"\r":
                line = line[:-1]
                self._lastEnding = ending = b"\r\n"
            else:
                self._lastEnding = ending = b"\n"
            if len(line) > maxLength:
                raise MessageTooLong(maxLength, messages)
            if line:
                messages.append(Message(line, ending))
        allowed = maxLength + 1 if rest[-1:] == b"\r" else maxLength
        if len(rest) > allowed:
            raise MessageTooLong(maxLength, messages)
        self._buffer = rest
        return messages
