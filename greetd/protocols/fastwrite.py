"""
Write-through for plain TCP connections.

Twisted's C{transport.write} only queues: the bytes go out when the reactor
next finds the socket writable, one reactor turn later.  A ping-pong client
waits for each reply, so that turn is most of the latency and much of the
cost per message.  When nothing is queued on a plain TCP connection, the
reply can be sent at once; whatever the kernel does not take goes to the
transport's own buffer, so ordering, producers and closing are unchanged.

Only plain TCP server connections qualify: TLS transports encrypt in
C{write}, PROXY-wrapped and other wrapping transports are not sockets,
UNIX connections are left alone, and test transports have no socket.

Closing is the same: C{loseConnection} waits a turn for the write loop
to find nothing owed (a re-registration with epoll, a wakeup, an empty
C{send}), where a connection owing nothing can be closed at once
(L{closeNow}).

UDP replies have no queue to respect, but Twisted's C{udp.Port.write}
parses the destination address on every call; a reply goes to an address
the kernel has just handed over, so L{datagramWriter} sends it directly
(on a L{DatagramPort}, to that address as the kernel gave it).
"""

from __future__ import annotations

from typing import Any, Callable, Tuple

from twisted.internet import udp
from twisted.internet.error import ConnectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from greetd.protocols.datagramport import DatagramPort
from greetd.protocols.streamport import PLAIN_TCP
from greetd.twisted_private import sendsNothingFirst


def supportsWriteThrough(transport: object) -> bool:
    """
    Whether L{writeThrough} may be used on C{transport}.
    """
    return type(transport) in PLAIN_TCP and not getattr(transport, "TLS", True)


def writeThrough(transport: Any, data: bytes) -> bytes:
    """
    Send C{data} on C{transport} now if nothing is queued before it;
    C{transport} must pass L{supportsWriteThrough}.

    @return: What was not sent (all of C{data} when something is queued
        before it), which the caller must queue with C{transport.write}:
        empty, the common case, when the kernel took it all.
    """
    if not sendsNothingFirst(transport):
        return data
    try:
        sent = transport.socket.send(data)
    except OSError:
        # EAGAIN, or an error the transport will meet and report itself.
        return data
    return data[sent:] if sent < len(data) else b""


_log = Logger()


class _CleanClose(Failure):
    """
    The failure of a connection closed at once, whose C{check} of a class
    is a class test.  Twisted's C{tcp.Connection.connectionLost} checks
    every closing connection's reason against C{ConnectionAborted}, and
    L{Failure.check} compares the class's qualified name, formatted each
    time, with the names of the value's classes: on CPython it costs more
    than all the rest of the connection's bookkeeping in Python.
    """

    def check(self, *errorTypes: str | type[BaseException]) -> Any:
        for error in errorTypes:
            if isinstance(error, type) and issubclass(error, Exception):
                if isinstance(self.value, error):
                    return error
            elif super().check(error) is not None:  # type: ignore[no-untyped-call]
                # A name, or a class Failure.check never matches.
                return error
        return None


#: Why a connection closed at once went: as Twisted's reactor does, one
#: failure for every such connection, not one made each time.
_DONE = _CleanClose(ConnectionDone())  # type: ignore[no-untyped-call]


def closeNow(transport: Any) -> bool:
    """
    Close C{transport} now, as its write loop would on the next reactor
    turn, if it owes its peer nothing: the reactor forgets it, the socket
    is shut down and closed, and the protocol's C{connectionLost} runs
    before this returns (as Twisted's own C{abortConnection} ends in
    C{connectionLost}, a turn later).  C{transport} must pass
    L{supportsWriteThrough}.

    @return: Whether it was closed; if not, bytes are owed and the caller
        must close it the usual way, C{loseConnection}.
    """
    if not sendsNothingFirst(transport):
        return False
    try:
        transport.connectionLost(_DONE)
    except Exception:
        # What the reactor would do had it closed the connection: log it,
        # so that whoever closed (the idle sweep, with more connections to
        # close) goes on.
        _log.failure("Unhandled error closing {transport!r}", transport=transport)
    return True


#: Sends one datagram to a C{(host, port)}; raises C{OSError} on failure.
DatagramWriter = Callable[[bytes, Tuple[str, int]], Any]


def datagramWriter(transport: Any) -> DatagramWriter:
    """
    How to send replies on C{transport}: its socket's C{sendto} for a plain
    UDP port, whose failures (a full buffer, an unreachable network) raise
    C{OSError} like the port's own C{write} does; the C{replyTo} of a
    L{DatagramPort} that answers through the C library, which does the
    same; C{write} otherwise.
    """
    if isinstance(transport, DatagramPort) and transport.direct:
        replyTo: DatagramWriter = transport.replyTo
        return replyTo
    if type(transport) in (udp.Port, DatagramPort):
        sendto: DatagramWriter = transport.socket.sendto
        return sendto
    write: DatagramWriter = transport.write
    return write
