"""
The access log: one line for every connection, written when it closes, as
nginx writes one for every request.  The line names the peer, how long the
connection lasted, its messages, its bytes each way, and how it ended.

L{LoggerAccessLog} writes through L{twisted.logger}, which is what an
embedding application gets; C{twistd greetd} writes the same lines more
cheaply (L{greetd.ops.accesslog}).
"""

from __future__ import annotations

from twisted.logger import Logger

from greetd.core.accessline import NAMESPACE, Closed


class LoggerAccessLog:
    """
    The access log as L{twisted.logger} events: C{connection.open} at debug
    level, C{connection.close} at info, with every figure a field; a
    health check's close at debug level.

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

    def closed(self, connection: Closed) -> None:
        self.log.info(
            "{log_text}",
            log_text=connection.text,
            **_fields(connection),
            greetdEvent="connection.close",
        )

    def healthCheckClosed(self, connection: Closed) -> None:
        self.log.debug(
            "Health check from {peer} done ({ended}) after {duration:.3f}s",
            **_fields(connection),
            greetdEvent="healthcheck.close",
        )


def _fields(connection: Closed) -> dict[str, object]:
    # The event's fields: every figure but the address parts, which the
    # JSON log derives from the peer, and the balancer only for a client a
    # PROXY header named.
    fields = connection._asdict()
    del fields["host"], fields["port"]
    if connection.via is None:
        del fields["via"]
    return fields


class NoAccessLog:
    """
    No access log (C{--no-access-log}): for a deployment whose connections
    are counted by metrics alone.
    """

    def wantsOpened(self) -> bool:
        return False

    def opened(self, peer: str) -> None:
        pass

    def closed(self, connection: Closed) -> None:
        pass

    def healthCheckClosed(self, connection: Closed) -> None:
        pass
