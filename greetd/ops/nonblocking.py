"""
Log lines to a descriptor that may be full, written without ever waiting:
how a pool's worker writes to standard output (a pipe, the journal's
socket, a terminal) that its parent and the other workers share, or to its
pipe to the parent, so that a reader that stops (a stalled journal, a
SIGSTOPped parent) costs lines, counted, and never a worker's clients.
Every write to a pipe, the parent's too (L{PipeStream}), is bounded to
L{PIPE_BUF} bytes (L{pieceEnd}), which a pipe takes whole, so that lines
from several processes sharing it never land inside each other.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import stat
from typing import Any, Callable

#: Bytes a pipe takes whole or not at all (POSIX guarantees 512; Linux 4096).
PIPE_BUF = getattr(select, "PIPE_BUF", 512)


def pieceEnd(data: bytes | bytearray, limit: int = PIPE_BUF) -> int:
    """
    Where the first write of C{data} ends, so that a pipe takes it whole:
    all of it, if at most C{limit} bytes; otherwise after the last whole
    line within C{limit} bytes.  Only a line longer than C{limit} (a very
    long traceback line, say) is cut, as a last resort, into pieces of
    C{limit} bytes: each is written whole, but another process's line may
    land between two of them.
    """
    if len(data) <= limit:
        return len(data)
    return data.rfind(b"\n", 0, limit) + 1 or limit


class PipeStream:
    """
    A text stream (L{greetd.ops.logfile.Stream}) in front of a pipe that
    other processes write to as well (a pool's parent's standard output,
    which its workers share): each batch is written in pieces of whole
    lines that the pipe takes whole (L{pieceEnd}), one flush each, rather
    than in one write that the pipe may take in parts with another
    process's line between them.

    @ivar stream: The text stream, whose C{buffer} is written.
    """

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        self.stream.flush()
        data = text.encode(self.stream.encoding or "utf-8", "backslashreplace")
        buffer = self.stream.buffer
        while data:
            end = pieceEnd(data)
            buffer.write(data[:end])
            buffer.flush()
            data = data[end:]

    def flush(self) -> None:
        self.stream.flush()


def pipeSafe(stream: Any) -> Any:
    """
    C{stream}, or a L{PipeStream} in front of it where it is a pipe.
    """
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (AttributeError, OSError, ValueError):
        return stream
    return PipeStream(stream) if stat.S_ISFIFO(mode) else stream


#: Sends bytes without waiting, returning how many were taken, raising
#: L{BlockingIOError} when none can be.
Send = Callable[[bytes], int]


def nonBlockingSender(fd: int) -> Send:
    """
    A way to write to C{fd} that never waits, without changing how any
    other process that shares C{fd} writes to it: the flag that makes a
    descriptor non-blocking belongs to the open file, which a child shares
    with its parent.  A regular file never makes a writer wait for a
    reader, and is written as it is (its offset is shared, so that writes
    from several processes follow each other); a socket (the journal's,
    under systemd) is sent to with C{MSG_DONTWAIT}, a flag of each call;
    anything else (a pipe, a terminal) is opened anew through
    C{/proc/self/fd}, which makes an open file of this process's own, and
    that one is made non-blocking (where there is no C{/proc}, C{fd} is
    written as it is, and may wait).
    """
    mode = os.fstat(fd).st_mode
    if stat.S_ISREG(mode):
        return lambda data: os.write(fd, data)
    if stat.S_ISSOCK(mode):
        sock = socket.socket(fileno=os.dup(fd))
        return lambda data: sock.send(data, socket.MSG_DONTWAIT)
    flags = os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        own = os.open(f"/proc/self/fd/{fd}", flags)
    except OSError:
        # No /proc: the descriptor as it is, which may wait for its reader.
        own = fd
    return lambda data: os.write(own, data)


class NonBlockingWriter:
    """
    A stream (L{greetd.ops.logfile.Stream}) of log lines written with
    L{Send}, never waiting: whole lines, in writes of at most L{PIPE_BUF}
    bytes (L{pieceEnd}), which a pipe takes whole or not at all, so that
    lines from several processes never interleave.  What is not taken waits, and is
    tried again every L{retryDelay} seconds; beyond L{maxPending} bytes
    waiting, the oldest lines are dropped, and counted: C{onDropped} is
    called with the count once lines are taken again.

    @ivar dropped: Lines dropped, in all.
    """

    #: Bytes that may wait for the reader.
    maxPending = 256 * 1024

    #: Seconds between two tries while lines wait.
    retryDelay = 0.1

    def __init__(
        self,
        send: Send,
        clock: Any,
        onDropped: Callable[[int], object] = lambda count: None,
    ) -> None:
        self._send = send
        self._clock = clock
        self._onDropped = onDropped
        self._pending = bytearray()
        self._retry: Any = None
        self._unreported = 0
        self.dropped = 0

    def write(self, text: str) -> None:
        """
        Queue C{text}, whole lines, for the next L{flush}.
        """
        self._pending += text.encode("utf-8", "backslashreplace")
        excess = len(self._pending) - self.maxPending
        if excess > 0:
            cut = self._pending.find(b"\n", excess - 1) + 1 or len(self._pending)
            self._drop(self._pending[:cut].count(b"\n") or 1)
            del self._pending[:cut]

    def flush(self) -> None:
        """
        Write what waits, as much as the reader takes now.
        """
        pending = self._pending
        while pending:
            end = pieceEnd(pending)
            try:
                written = self._send(bytes(pending[:end]))
            except BlockingIOError:
                break
            except OSError as error:
                # The reader is gone (EPIPE) or the descriptor unusable:
                # what waits can never be written.
                if error.errno == errno.EINTR:
                    continue
                self._drop(pending.count(b"\n") or 1)
                pending.clear()
                break
            del pending[:written]
        if pending:
            if self._retry is None:
                self._retry = self._clock.callLater(self.retryDelay, self._retried)
        elif self._unreported:
            count, self._unreported = self._unreported, 0
            self._clock.callLater(0, self._onDropped, count)

    def _retried(self) -> None:
        self._retry = None
        self.flush()

    def _drop(self, lines: int) -> None:
        self.dropped += lines
        self._unreported += lines
