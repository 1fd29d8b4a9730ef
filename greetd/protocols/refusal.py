"""
Refusing a connection so that its one line arrives: write it, shut the
sending side, and linger, reading and discarding what the peer sends,
rather than close with its bytes unread, which makes the kernel send a
reset that destroys the line in flight.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IDelayedCall

from greetd.protocols.admission import Admission


def sendRefusal(
    transport: Any, line: bytes | None, admission: Admission
) -> IDelayedCall | None:
    """
    Tell a refused peer why, in C{line} (C{None} to tell it nothing), and
    close so that the line arrives: shut the sending side once it is
    written, then keep the connection, its input to be discarded by the
    caller, for L{Admission.refusalLinger} seconds, while
    L{Admission.linger} has a place for it.

    @param transport: The connection's transport.
    @return: The call that closes a lingering connection, which the caller
        gives to L{stopLinger} when the connection is lost; C{None} when it
        was closed at once.
    """
    if line is None or not admission.linger():
        if line is not None:
            transport.write(line)
        transport.loseConnection()
        return None
    transport.write(line)
    linger = admission.clock.callLater(
        admission.refusalLinger, transport.loseConnection
    )
    halfClose = getattr(transport, "loseWriteConnection", None)
    if halfClose is not None:
        halfClose()
    return linger


def stopLinger(linger: IDelayedCall | None, admission: Admission) -> None:
    """
    A refused connection is lost: if it was lingering (C{linger}, from
    L{sendRefusal}), stop its timer and give back its place.
    """
    if linger is not None:
        if linger.active():
            linger.cancel()
        admission.lingered()
