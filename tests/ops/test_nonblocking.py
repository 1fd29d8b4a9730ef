"""
Tests for L{greetd.ops.nonblocking}: log lines to a reader that may stop.
"""

from __future__ import annotations

import errno
import os
import socket

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from greetd.ops.nonblocking import (
    PIPE_BUF,
    NonBlockingWriter,
    PipeStream,
    nonBlockingSender,
    pieceEnd,
    pipeSafe,
)


class FakeReader:
    """
    A reader that takes up to L{room} bytes, each write whole or, as a
    pipe does with a write of at most C{PIPE_BUF} bytes, not at all.
    """

    def __init__(self, room: int) -> None:
        self.room = room
        self.writes: list[bytes] = []

    def send(self, data: bytes) -> int:
        if len(data) > self.room:
            raise BlockingIOError(errno.EAGAIN, "full")
        self.room -= len(data)
        self.writes.append(data)
        return len(data)

    @property
    def received(self) -> bytes:
        return b"".join(self.writes)


def lines(count: int, width: int = 99) -> str:
    return "".join(f"{n:05d} " + "x" * (width - 7) + "\n" for n in range(count))


class NonBlockingWriterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.dropped: list[int] = []

    def writer(self, reader: FakeReader) -> NonBlockingWriter:
        return NonBlockingWriter(reader.send, self.clock, self.dropped.append)

    def test_wholeLinesAtMostPipeBuf(self) -> None:
        """
        A batch goes in writes of whole lines, none over C{PIPE_BUF} bytes,
        which a pipe takes whole: lines of several processes never mix.
        """
        reader = FakeReader(10**6)
        writer = self.writer(reader)
        text = lines(100)
        writer.write(text)
        writer.flush()
        self.assertEqual(reader.received, text.encode())
        self.assertGreater(len(reader.writes), 1)
        for data in reader.writes:
            self.assertLessEqual(len(data), PIPE_BUF)
            self.assertTrue(data.endswith(b"\n"))

    def test_longLineInPieces(self) -> None:
        """
        A line longer than C{PIPE_BUF} is cut into pieces of C{PIPE_BUF}
        bytes, each of which a pipe takes whole; the lines around it are
        written whole.
        """
        reader = FakeReader(10**6)
        writer = self.writer(reader)
        writer.write("short\n" + "y" * (PIPE_BUF * 2) + "\nafter\n")
        writer.flush()
        self.assertEqual(
            reader.writes,
            [b"short\n", b"y" * PIPE_BUF, b"y" * PIPE_BUF, b"\nafter\n"],
        )

    def test_fullReaderNeverWaits(self) -> None:
        """
        A reader that takes nothing costs no wait: the lines wait, and are
        tried again later, and reach it once it reads, none lost.
        """
        reader = FakeReader(0)
        writer = self.writer(reader)
        writer.write(lines(10))
        writer.flush()
        self.assertEqual(reader.writes, [])
        reader.room = 10**6
        self.clock.advance(writer.retryDelay)
        self.assertEqual(reader.received, lines(10).encode())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(writer.dropped, 0)

    def test_dropsOldestBeyondMaxPending(self) -> None:
        """
        Beyond L{NonBlockingWriter.maxPending} bytes waiting, the oldest
        whole lines are dropped and counted, and said once lines are taken
        again.
        """
        reader = FakeReader(0)
        writer = self.writer(reader)
        writer.maxPending = 1000
        writer.write(lines(25))
        writer.flush()
        self.assertEqual(writer.dropped, 15)
        reader.room = 10**6
        self.clock.advance(writer.retryDelay)
        self.assertEqual(reader.received, lines(25).encode()[15 * 99 :])
        self.assertEqual(self.dropped, [15])

    def test_readerGone(self) -> None:
        """
        A reader that is gone (EPIPE) costs the lines waiting, counted.
        """

        def send(data: bytes) -> int:
            raise BrokenPipeError(errno.EPIPE, "gone")

        writer = NonBlockingWriter(send, self.clock)
        writer.write(lines(3))
        writer.flush()
        self.assertEqual(writer.dropped, 3)
        self.clock.advance(0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    @given(st.lists(st.integers(0, 2 * PIPE_BUF), max_size=30))
    def test_anyRoom(self, rooms: list[int]) -> None:
        """
        However little the reader takes at each try, what it receives is
        the lines in order, whole, with none repeated.
        """
        clock = Clock()
        reader = FakeReader(0)
        writer = NonBlockingWriter(reader.send, clock)
        text = lines(40, 150)
        writer.write(text)
        for room in rooms:
            reader.room = room
            writer.flush()
        reader.room = 10**6
        writer.flush()
        self.assertEqual(reader.received, text.encode())
        clock.advance(writer.retryDelay)
        self.assertEqual(reader.received, text.encode())


class SenderTests(SynchronousTestCase):
    """
    L{nonBlockingSender} writes without waiting, and without making the
    descriptor non-blocking for anyone else who shares it.
    """

    def test_pipe(self) -> None:
        read, write = os.pipe()
        self.addCleanup(os.close, read)
        self.addCleanup(os.close, write)
        send = nonBlockingSender(write)
        chunk = b"x" * PIPE_BUF
        with self.assertRaises(BlockingIOError):
            for _ in range(10**4):
                send(chunk)
        self.assertTrue(os.get_blocking(write))
        self.assertEqual(os.read(read, PIPE_BUF), chunk)

    def test_socket(self) -> None:
        ours, theirs = socket.socketpair()
        self.addCleanup(ours.close)
        self.addCleanup(theirs.close)
        send = nonBlockingSender(ours.fileno())
        with self.assertRaises(BlockingIOError):
            for _ in range(10**5):
                send(b"x" * PIPE_BUF)
        self.assertTrue(os.get_blocking(ours.fileno()))
        self.assertEqual(theirs.recv(3), b"xxx")

    def test_noProc(self) -> None:
        """
        Where there is no C{/proc}, the descriptor is written as it is.
        """
        read, write = os.pipe()
        self.addCleanup(os.close, read)
        self.addCleanup(os.close, write)
        realOpen = os.open

        def noProc(path: str, flags: int, mode: int = 0o777) -> int:
            if path.startswith("/proc/"):
                raise FileNotFoundError(errno.ENOENT, "no /proc", path)
            return realOpen(path, flags, mode)

        self.patch(os, "open", noProc)
        nonBlockingSender(write)(b"line\n")
        self.assertEqual(os.read(read, 100), b"line\n")

    def test_regularFile(self) -> None:
        """
        A regular file is written through the descriptor itself, whose
        offset the sharers share: writes follow each other.
        """
        path = self.mktemp()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT)
        self.addCleanup(os.close, fd)
        os.write(fd, b"parent\n")
        nonBlockingSender(fd)(b"worker\n")
        os.write(fd, b"parent again\n")
        with open(path, "rb") as written:
            self.assertEqual(written.read(), b"parent\nworker\nparent again\n")


def pieces(data: bytes) -> list[bytes]:
    """
    C{data} in the writes L{pieceEnd} cuts it into.
    """
    cut = []
    while data:
        end = pieceEnd(data)
        cut.append(data[:end])
        data = data[end:]
    return cut


class PieceEndTests(SynchronousTestCase):
    @given(st.lists(st.integers(0, 2 * PIPE_BUF), max_size=20), st.booleans())
    def test_wholeLinesAtMostPipeBuf(self, lengths: list[int], ended: bool) -> None:
        """
        Whatever the lines, the pieces make them all, none is over
        C{PIPE_BUF} bytes, and each ends a line unless it is the last or
        a piece of a line longer than C{PIPE_BUF}.
        """
        data = b"".join(b"x" * length + b"\n" for length in lengths)
        data += b"" if ended else b"tail"
        cut = pieces(data)
        self.assertEqual(b"".join(cut), data)
        for piece in cut[:-1]:
            self.assertLessEqual(len(piece), PIPE_BUF)
            self.assertTrue(piece.endswith(b"\n") or len(piece) == PIPE_BUF)
        if cut:
            self.assertLessEqual(len(cut[-1]), PIPE_BUF)


class FakeText:
    """
    A text stream whose buffer records each flush's bytes.
    """

    encoding = "utf-8"

    def __init__(self) -> None:
        self.buffer = self
        self.writes: list[bytes] = []
        self._pending = b""
        self.flushes = 0

    def write(self, data: bytes) -> None:
        self._pending += data

    def flush(self) -> None:
        self.flushes += 1
        if self._pending:
            self.writes.append(self._pending)
            self._pending = b""


class PipeStreamTests(SynchronousTestCase):
    def test_batchInPieces(self) -> None:
        """
        A batch of 64 KiB (the parent's log batches) is written in pieces
        of whole lines of at most C{PIPE_BUF} bytes, each flushed alone,
        non-ASCII text counted in bytes.
        """
        text = FakeText()
        stream = PipeStream(text)
        batch = "".join(f"line {n} \u00e9\u00e9\n" for n in range(5000))
        stream.write(batch)
        self.assertEqual(b"".join(text.writes), batch.encode("utf-8"))
        self.assertGreater(len(text.writes), 1)
        for data in text.writes:
            self.assertLessEqual(len(data), PIPE_BUF)
            self.assertTrue(data.endswith(b"\n"))

    def test_pipeSafe(self) -> None:
        """
        A pipe gets a L{PipeStream} in front; a file, or a stream without
        a descriptor, is written as it is.
        """
        read, write = os.pipe()
        self.addCleanup(os.close, read)
        with open(write, "w") as pipe:
            self.assertIsInstance(pipeSafe(pipe), PipeStream)
        with open(self.mktemp(), "w") as regular:
            self.assertIs(pipeSafe(regular), regular)
        text = FakeText()
        self.assertIs(pipeSafe(text), text)
