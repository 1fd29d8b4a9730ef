"""
Flow control for one stream connection: when it reads, and whether its
peer takes what it is sent.

A connection is its transport's streaming producer: when replies pile up
unread in the transport's buffer, the transport pauses it and it stops
reading, so a client that sends without reading cannot grow the daemon's
memory; once the peer has caught up, the transport resumes it.

What the peer has not made room for is L{FlowControl.unsent}, which the
write timeout watches (L{greetd.protocols.idle}).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from greetd.twisted_private import unsentBytes


@implementer(IPushProducer)
class FlowControl:
    """
    The producer half of a stream protocol, mixed into it: pausing stops
    reading from the peer, resuming reads again.

    @ivar transport: The protocol's transport.
    @ivar writeMark: What L{unsent} said when the deadline sweep last asked.
    @ivar writeProgressAt: When the sweep last saw L{unsent} shrink or run
        out (the protocol sets it when the connection opens).
    """

    transport: Any
    writeMark = 0
    writeProgressAt = 0.0

    def pauseProducing(self) -> None:
        """
        The peer is not reading its replies: stop reading its messages.
        """
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        """
        The peer caught up: read again.
        """
        self.transport.resumeProducing()

    def stopProducing(self) -> None:
        """
        The transport is going away; the protocol's C{connectionLost} cleans
        up.
        """

    def unsent(self) -> int:
        """
        How many bytes of replies wait in the transport, the peer not having
        made room for them.
        """
        return unsentBytes(self.transport)
