"""
Tests for L{greetd.core.framing}.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from greetd.core.framing import Message, MessageFramer, MessageTooLong


def feedAll(framer: MessageFramer, *chunks: bytes) -> list[Message]:
    """
    Feed each chunk in turn and collect every message.
    """
    messages: list[Message] = []
    for chunk in chunks:
        messages.extend(framer.feed(chunk))
    return messages


class RawFramingTests(SynchronousTestCase):
    """
    C{raw}: every chunk is one message, as the seed's C{recv(1024)} loop.
    """

    def test_chunkIsMessage(self) -> None:
        framer = MessageFramer("raw")
        self.assertEqual(
            feedAll(framer, b"Michael", b"Tra\ncy\r\n"),
            [Message(b"Michael", b""), Message(b"Tra\ncy\r\n", b"")],
        )

    def test_tooLong(self) -> None:
        framer = MessageFramer("raw", maxLength=4)
        self.assertEqual(feedAll(framer, b"1234"), [Message(b"1234", b"")])
        error = self.assertRaises(MessageTooLong, feedAll, framer, b"12345")
        self.assertEqual((error.maxLength, framer.errorEnding), (4, b""))
        self.assertEqual(str(error), "message longer than 4 bytes")


class LineFramingTests(SynchronousTestCase):
    """
    C{line}: messages end at LF, and keep the ending they came with.
    """

    def test_endings(self) -> None:
        framer = MessageFramer("line")
        self.assertEqual(
            feedAll(framer, b"Michael\r\nTracy\r\n", b"Sar", b"ah\n"),
            [
                Message(b"Michael", b"\r\n"),
                Message(b"Tracy", b"\r\n"),
                Message(b"Sarah", b"\n"),
            ],
        )

    def test_partialWaits(self) -> None:
        framer = MessageFramer("line")
        self.assertEqual(feedAll(framer, b"Mich", b"ael", b"\r"), [])
        self.assertEqual(feedAll(framer, b"\n"), [Message(b"Michael", b"\r\n")])

    def test_blankLinesIgnored(self) -> None:
        framer = MessageFramer("line")
        self.assertEqual(
            feedAll(framer, b"\n\r\nA\n\n"),
            [Message(b"A", b"\n")],
        )

    def test_crInsideLineKept(self) -> None:
        """
        Only a CR right before the LF is part of the line ending.
        """
        framer = MessageFramer("line")
        self.assertEqual(feedAll(framer, b"a\rb\r\r\n"), [Message(b"a\rb\r", b"\r\n")])

    def test_completeLineTooLong(self) -> None:
        """
        The error carries the messages of the chunk before the long one,
        which are still owed replies, and none after it.
        """
        framer = MessageFramer("line", maxLength=3)
        error = self.assertRaises(
            MessageTooLong, framer.feed, b"abc\r\nabcd\r\nnever\n"
        )
        self.assertEqual(error.messages, [Message(b"abc", b"\r\n")])
        self.assertEqual(framer.errorEnding, b"\r\n")

    def test_unfinishedTooLongKeepsMessagesBefore(self) -> None:
        framer = MessageFramer("line", maxLength=3)
        error = self.assertRaises(MessageTooLong, framer.feed, b"ab\nabcd")
        self.assertEqual(error.messages, [Message(b"ab", b"\n")])

    def test_unfinishedLineTooLong(self) -> None:
        """
        An unfinished line is refused as soon as it is longer than the limit,
        without waiting for its end, with the last line ending seen.
        """
        framer = MessageFramer("line", maxLength=3)
        self.assertEqual(feedAll(framer, b"ab\n", b"abc"), [Message(b"ab", b"\n")])
        self.assertRaises(MessageTooLong, feedAll, framer, b"d")
        self.assertEqual(framer.errorEnding, b"\n")

    def test_errorEndingDefaultsToCRLF(self) -> None:
        framer = MessageFramer("line", maxLength=3)
        self.assertRaises(MessageTooLong, feedAll, framer, b"abcd")
        self.assertEqual(framer.errorEnding, b"\r\n")

    def test_limitAllowsPendingCR(self) -> None:
        """
        A line of exactly C{maxLength} bytes may wait for the LF of its CRLF.
        """
        framer = MessageFramer("line", maxLength=3)
        self.assertEqual(feedAll(framer, b"abc\r"), [])
        self.assertEqual(feedAll(framer, b"\n"), [Message(b"abc", b"\r\n")])

    def test_bufferBounded(self) -> None:
        """
        However the input is cut, no more than C{maxLength} bytes (and a CR)
        of an unfinished line are kept.
        """
        framer = MessageFramer("line", maxLength=8)
        for _ in range(8):
            feedAll(framer, b"x")
            self.assertLessEqual(len(framer._buffer), 8)
        self.assertRaises(MessageTooLong, feedAll, framer, b"x")


class AutoFramingTests(SynchronousTestCase):
    """
    C{auto}: raw until the first LF on the connection, lines from then on.
    """

    def test_rawUntilNewline(self) -> None:
        framer = MessageFramer("auto")
        self.assertEqual(feedAll(framer, b"Michael"), [Message(b"Michael", b"")])
        self.assertFalse(framer.lineMode)
        self.assertEqual(framer.errorEnding, b"")
        self.assertEqual(
            feedAll(framer, b"Tracy\nSar", b"ah"),
            [Message(b"Tracy", b"\n")],
        )
        self.assertTrue(framer.lineMode)
        self.assertEqual(feedAll(framer, b"\r\n"), [Message(b"Sarah", b"\r\n")])

    def test_rawTooLong(self) -> None:
        framer = MessageFramer("auto", maxLength=3)
        self.assertRaises(MessageTooLong, feedAll, framer, b"abcd")
        self.assertEqual(framer.errorEnding, b"")


class FramerArgumentTests(SynchronousTestCase):
    def test_unknownFraming(self) -> None:
        self.assertRaises(ValueError, MessageFramer, "words")


_line = st.binary(max_size=40).map(lambda data: data.replace(b"\n", b""))
_lines = st.lists(st.tuples(_line, st.sampled_from([b"\n", b"\r\n"])), max_size=20)


class LineChunkingPropertyTests(SynchronousTestCase):
    """
    In C{line} framing the replies depend on the bytes, not on how the
    transport happened to cut them.
    """

    @given(lines=_lines, data=st.data())
    def test_anyChunkingSameMessages(
        self, lines: list[tuple[bytes, bytes]], data: st.DataObject
    ) -> None:
        stream = b"".join(line + ending for line, ending in lines)
        cuts = sorted(
            data.draw(st.lists(st.integers(0, len(stream)), max_size=len(stream)))
        )
        chunks = [
            stream[start:end]
            for start, end in zip([0, *cuts], [*cuts, len(stream)])
            if end > start
        ]
        expected = []
        for line, ending in lines:
            if line.endswith(b"\r") and ending == b"\n":
                line, ending = line[:-1], b"\r\n"
            if line:
                expected.append(Message(line, ending))
        self.assertEqual(feedAll(MessageFramer("line", 64), *chunks), expected)
