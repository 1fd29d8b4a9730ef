"""
Flow control for one stream connection: when it reads.

A connection is its transport's streaming producer: when replies pile up
unread in the transport's buffer, the transport pauses it and it stops
reading, so a client that sends without reading cannot grow the daemon's
memory; once the peer has caught up, the transport resumes it.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer


@implementer(IPushProducer)
class FlowControl:
    """
    The producer half of a stream protocol, mixed into it: pausing stops
    reading from the peer, resuming reads again.

    @ivar transport: The protocol's transport.
    """

    transport: Any

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
