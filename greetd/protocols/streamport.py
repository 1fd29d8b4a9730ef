"""
TCP connections that read through the C library directly, on PyPy.

Each read of a Twisted TCP connection is a C{socket.recv} of up to 64 KiB;
on PyPy the method costs about 0.4 us more than the system call does, a
large share of what greetd spends on a ping-pong message.  A
L{StreamServer} there calls C{recv} through cffi (L{greetd.protocols.clib})
into one buffer that every connection shares (a read is copied out before
the protocol sees it), and is otherwise Twisted's C{tcp.Server}: what a
read returns to the reactor is what Twisted's C{doRead} returns (the
connection done at end of file, lost on an error, nothing on C{EAGAIN}).
On CPython it reads as Twisted's C{tcp.Server} does.

L{StreamPort}, the TCP port that greetd's reactor listens on, makes its
connections L{StreamServer}s, and accepts them on a L{ListeningSocket}.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

from twisted.internet import main, tcp
from twisted.python.failure import Failure

from greetd.protocols.clib import LIBC
from greetd.twisted_private import (
    AddressSparingPort,
    NamedOnDemandServer,
    readReceived,
)

#: The errors after which a read is tried again on the next event.
_READ_AGAIN = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR})


class StreamServer(NamedOnDemandServer):
    """
    A TCP server connection that, on PyPy, reads through the C library,
    and names itself for logs only when asked (L{NamedOnDemandServer}).
    """

    if LIBC is not None:
        _ffi, _lib = LIBC
        _buffer = _ffi.new("char[]", tcp.Server.bufferSize)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._fd: int = self.socket.fileno()

        def doRead(self) -> Any:
            """
            Read what the peer sent, up to C{bufferSize} bytes, and hand it
            to the protocol, as Twisted's C{doRead}.
            """
            ffi, buffer = self._ffi, self._buffer
            size = min(self.bufferSize, len(buffer))
            length = self._lib.recv(self._fd, buffer, size, 0)
            if length > 0:
                return readReceived(self, ffi.unpack(buffer, length))
            if length == 0:
                return main.CONNECTION_DONE
            if ffi.errno in _READ_AGAIN:
                return None
            return main.CONNECTION_LOST

        def connectionLost(self, reason: Failure) -> None:
            # The descriptor may be another connection's soon.
            self._fd = -1
            super().connectionLost(reason)


class ListeningSocket(socket.socket):
    """
    A listening socket whose C{accept} is C{socket.socket}'s without its
    conversions: that one names the new socket's family and type by
    looking up the listening socket's as enum members, twice an accept,
    which costs CPython about 1 us; this one gives the numbers it keeps.
    """

    __slots__ = ("_kind",)

    def __init__(self, family: int, type: int, proto: int, fileno: int) -> None:
        super().__init__(family, type, proto, fileno)
        self._kind = (int(family), int(type), int(proto))

    def accept(self) -> tuple[socket.socket, Any]:
        fd, address = self._accept()  # type: ignore[attr-defined]
        accepted = socket.socket(*self._kind, fd)
        if socket.getdefaulttimeout() is None and self.gettimeout():
            accepted.setblocking(True)
        return accepted, address


class StreamPort(AddressSparingPort):
    """
    A TCP port whose connections are L{StreamServer}s, accepted on a
    L{ListeningSocket}, and which builds no address object for a factory
    that would ignore it.
    """

    transport = StreamServer

    def startListening(self) -> None:
        """
        Listen, on a new socket or an inherited one, as Twisted's port
        does, and then accept on a L{ListeningSocket} of the same
        descriptor.
        """
        super().startListening()
        listening: socket.socket = self.socket
        timeout = listening.gettimeout()
        fd = listening.fileno()
        blocking = os.get_blocking(fd)
        self.socket = ListeningSocket(
            listening.family, listening.type, listening.proto, listening.detach()
        )
        if timeout is not None:
            self.socket.settimeout(timeout)
        if os.get_blocking(fd) != blocking:
            # PyPy puts a socket made from a descriptor in the default
            # timeout's mode, blocking unless one is set; a blocking
            # descriptor (an inherited one is shared with its giver) would
            # hang the accept that finds nothing waiting.
            os.set_blocking(fd, blocking)
        self.fileno = self.socket.fileno  # type: ignore[method-assign]


#: The transports that are plain TCP server connections: a socket each,
#: with the peer's address as C{accept} returned it.
PLAIN_TCP = (tcp.Server, StreamServer)
