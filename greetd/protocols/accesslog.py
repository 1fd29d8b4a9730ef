"""
The access log: one line for every connection, written when it closes, as
nginx writes one for every request.  The line names the peer, how long the
connection lasted, its messages, its bytes each way, and how it ended.

L{LoggerAccessLog} writes through L{twisted.logger}, which is what an
embedding application gets; C{twistd greetd} writes the same lines more
cheaply (L{greetd.ops.accesslog}).
"""

from __future__ import annotations

from typing import Protocol

from twisted.logger import Logger

#: How a connection may end: the client said C{exit}; the client closed
#: or reset it; it was idle too long; it sent a message too long or met an
#: internal error; it was refused; the daemon was shutting down.
ENDINGS = ("exit", "closed", "reset", "idle-timeout", "error", "refused", "shutdown")

#: The namespace of access log lines.
NAMESPACE = "greetd.access"

#: The text of a closed connection's line, for C{%} formatting with the
#: peer, how it ended, seconds, messages, bytes received and bytes sent.
CLOSED_TEXT = (
    "Connection from %s closed (%s) after %.3fs: "
    "%d messages, %d bytes received, %d bytes sent"
)


class AccessLog(Protocol):
    """
    What the greeting protocol tells the access log.
    """

    def wantsOpened(self) -> bool:
        """
        Whether L{opened} writes anything (it is at debug level), so the
        peer need not be formatted for nothing.
        """

    def opened(self, peer: str) -> None:
        """
        A connection from C{peer} was admitted.
        """

    def closed(
        self,
        peer: str,
        host: str | None,
        port: int | None,
        duration: float,
        messages: int,
        bytesReceived: int,
        bytesSent: int,
        ended: str,
    ) -> None:
        """
        A connection from C{peer} (C{host} and C{port}, for IP peers) is
        gone after C{duration} seconds; C{ended} is one of L{ENDINGS}.
        """


class LoggerAccessLog:
    """
    The access log as L{twisted.logger} events: C{connection.open} at debug
    level, C{connection.close} at info, with every figure a field.

    @ivar log: The logger, in the L{NAMESPACE} namespace by default.
    """

    def __init__(self, log: Logger | None = None) -> None:
        self.log = log if log is not None else Logger(namespace=NAMESPACE)

    def wantsOpened(self) -> bool:
        return True

    def opened(self, peer: str) -> None:
        self.log.debug(
            "Connection from {peer} opened", peer=peer, greetdEvent="connection.open"
        )

    def closed(
        self,
        peer: str,
        host: str | None,
        port: int | None,
        duration: float,
        messages: int,
        bytesReceived: int,
        bytesSent: int,
        ended: str,
    ) -> None:
        self.log.info(
            "{log_text}",
            log_text=CLOSED_TEXT
            % (peer, ended, duration, messages, bytesReceived, bytesSent),
            peer=peer,
            duration=duration,
            messages=messages,
            bytesReceived=bytesReceived,
            bytesSent=bytesSent,
            ended=ended,
            greetdEvent="connection.close",
        )
