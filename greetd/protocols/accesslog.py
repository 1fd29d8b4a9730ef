"""
The access log: one line for every connection, written when it closes, as
nginx writes one for every request.  The line names the peer, how long the
connection lasted, its messages, its bytes each way, and how it ended.

L{LoggerAccessLog} writes through L{twisted.logger}, which is what an
embedding application gets; C{twistd greetd} writes the same lines more
cheaply (L{greetd.ops.accesslog}).
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from greetd.core.accessline import CLOSED_TEXT, NAMESPACE


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

    def healthCheckClosed(self, *args: Any) -> None:
        _healthCheckClosed(self.log, *args)


def _healthCheckClosed(
    log: Logger,
    peer: str,
    host: str | None,
    port: int | None,
    duration: float,
    messages: int,
    bytesReceived: int,
    bytesSent: int,
    ended: str,
) -> None:
    log.debug(
        "Health check from {peer} done ({ended}) after {duration:.3f}s",
        peer=peer,
        ended=ended,
        duration=duration,
        messages=messages,
        bytesReceived=bytesReceived,
        bytesSent=bytesSent,
        greetdEvent="healthcheck.close",
    )


class NoAccessLog:
    """
    No access log (C{--no-access-log}): for a deployment whose connections
    are counted by metrics alone.
    """

    def wantsOpened(self) -> bool:
        return False

    def opened(self, peer: str) -> None:
        pass

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
        pass

    def healthCheckClosed(self, *args: Any) -> None:
        pass
