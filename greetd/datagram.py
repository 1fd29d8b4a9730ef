"""
The UDP reply service: every datagram gets the reply template back.
"""

from __future__ import annotations

from collections import Counter
from typing import Tuple, Union

from twisted.internet.error import MessageLengthError
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from greetd.greeting import DEFAULT_MAX_LENGTH
from greetd.log import formatAddress
from greetd.template import ReplyTemplate

#: A datagram source, as Twisted delivers it: C{(host, port)}, or for IPv6
#: C{(host, port, flowinfo, scopeid)}.
DatagramAddress = Union[Tuple[str, int], Tuple[str, int, int, int]]


class ReplyProtocol(DatagramProtocol):
    """
    Answer each datagram C{D} with the template applied to C{D}, sent to the
    datagram's source.

    A datagram longer than L{maxLength} is dropped unanswered, so the reply
    service never answers more than the TCP service would.

    @ivar template: The L{ReplyTemplate} for replies.
    @ivar maxLength: The longest datagram answered.
    @ivar replies: How many replies have been sent.
    @ivar bytesReceived: Bytes received in all datagrams.
    @ivar bytesSent: Bytes sent in all replies.
    @ivar dropped: Datagrams left unanswered, by reason.
    """

    noisy = False
    _log = Logger()

    def __init__(
        self,
        template: ReplyTemplate | None = None,
        maxLength: int = DEFAULT_MAX_LENGTH,
    ) -> None:
        if maxLength < 1:
            raise ValueError("the maximum message length must be at least 1")
        self.template = template if template is not None else ReplyTemplate()
        self.maxLength = maxLength
        self.replies = 0
        self.bytesReceived = 0
        self.bytesSent = 0
        self.dropped: Counter[str] = Counter()

    def datagramReceived(self, datagram: bytes, addr: DatagramAddress) -> None:
        self.bytesReceived += len(datagram)
        if len(datagram) > self.maxLength:
            self.drop("length", addr)
            return
        reply = self.template.format(datagram)
        transport = self.transport
        assert transport is not None, "not listening"
        try:
            transport.write(reply, addr[:2])
        except (OSError, MessageLengthError) as error:
            self.drop("send-failed", addr, error=str(error))
            return
        self.replies += 1
        self.bytesSent += len(reply)

    def drop(self, reason: str, addr: DatagramAddress, **fields: object) -> None:
        """
        Count a datagram left unanswered, and say so at debug level.
        """
        self.dropped[reason] += 1
        self._log.debug(
            "Dropped a datagram from {peer}: {reason}",
            peer=formatAddress(addr[:2]),
            reason=reason,
            greetdEvent="datagram.drop",
            **fields,
        )
