"""
The access log's vocabulary, shared by whoever writes it: how a connection
may end, the namespace and text of its line, and what the greeting
protocol tells an access log.  The writers are
L{greetd.protocols.accesslog} (through L{twisted.logger}) and
L{greetd.ops.accesslog} (straight to the log's stream).
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

#: How a connection may end: the client said C{exit}; the client closed
#: or reset it; it was idle too long; it did not read what it was sent
#: (L{greetd.protocols.idle}); it sent a message too long or met an
#: internal error; it was refused; the daemon was shutting down.
ENDINGS = (
    "exit",
    "closed",
    "reset",
    "idle-timeout",
    "write-timeout",
    "error",
    "refused",
    "shutdown",
)

#: The namespace of access log lines.
NAMESPACE = "greetd.access"


class Closed(NamedTuple):
    """
    A connection that is gone, as its access log line tells it.

    @ivar peer: The peer, escaped for logs.
    @ivar host: Its IP address, or C{None} (a UNIX socket).
    @ivar port: Its port, or C{None}.
    @ivar duration: Seconds it lasted.
    @ivar messages: Messages answered.
    @ivar bytesReceived: Bytes the peer sent.
    @ivar bytesSent: Bytes sent to the peer.
    @ivar ended: How it ended, one of L{ENDINGS}.
    @ivar via: The load balancer whose PROXY header named the peer, escaped
        for logs, or C{None}; the line's text shows the peer followed by
        C{via} and it.
    """

    peer: str
    host: str | None
    port: int | None
    duration: float
    messages: int
    bytesReceived: int
    bytesSent: int
    ended: str
    via: str | None = None

    @property
    def text(self) -> str:
        """
        The line's text: the peer, how it ended, seconds, and messages,
        bytes received and bytes sent, each in the singular for a count of
        one.  One f-string, since it is written for every connection: a
        C{%} format with the plural endings looked up costs twice as much.
        """
        via = self.via
        messages, received, sent = self.messages, self.bytesReceived, self.bytesSent
        return (
            f"Connection from {self.peer if via is None else f'{self.peer} via {via}'}"
            f" closed ({self.ended}) after {self.duration:.3f}s:"
            f" {messages} message{'' if messages == 1 else 's'},"
            f" {received} byte{'' if received == 1 else 's'} received,"
            f" {sent} byte{'' if sent == 1 else 's'} sent"
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

    def closed(self, connection: Closed) -> None:
        """
        A connection is gone.
        """

    def healthCheckClosed(self, connection: Closed) -> None:
        """
        A load balancer's health check is done: the same line as L{closed},
        at debug level, so that checks every 200 ms do not fill the log.
        """
