"""
A service that listens on one endpoint, stream or datagram.
"""

from __future__ import annotations

from typing import Callable

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python.failure import Failure

from greetd.core.escaping import formatAddress


def describeFailure(failure: Failure) -> str:
    """
    The reason a listen failed, in a few words (C{Address already in use}).
    """
    error = failure.value
    if isinstance(error, CannotListenError):
        socketError = error.socketError
        strerror = getattr(socketError, "strerror", None)
        return str(strerror or socketError)
    return str(error) or type(error).__name__


class ListeningService(Service):
    """
    Listen on one endpoint from L{privilegedStartService}, so that twistd can
    bind ports below 1024 before it drops privileges.

    A port that cannot be bound is fatal: the service logs one line naming
    the endpoint and the reason and exits the process with status 1, rather
    than leave a daemon running without the service it was asked for.

    @ivar description: The endpoint, as the operator wrote it.
    @ivar kind: What is served there (C{"TCP"}, C{"UDP"}), for logs.
    @ivar port: The listening port, once listening.
    """

    _log = Logger()
    port: IListeningPort | None = None
    _waiting: Deferred[None] | None = None
    _whenListening: list[Deferred[IListeningPort]] | None = None

    def __init__(
        self,
        kind: str,
        description: str,
        listen: Callable[[], Deferred[IListeningPort]],
    ) -> None:
        self.kind = kind
        self.description = description
        self._listen = listen

    def privilegedStartService(self) -> None:
        Service.privilegedStartService(self)
        failures: list[Failure] = []
        waiting = self._listen().addCallback(self._listening)
        waiting.addErrback(failures.append)
        self._waiting = waiting
        if failures:
            self._log.critical(
                "Cannot listen for {kind} on {description}: {reason}",
                kind=self.kind,
                description=self.description,
                reason=describeFailure(failures[0]),
                greetdEvent="listen.failed",
            )
            raise SystemExit(1)

    def startService(self) -> None:
        Service.startService(self)
        if self._waiting is None:
            self.privilegedStartService()

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        port, self.port = self.port, None
        stopped = port.stopListening() if port is not None else None
        return stopped if stopped is not None else succeed(None)

    def whenListening(self) -> Deferred[IListeningPort]:
        """
        A L{Deferred} that fires with the port once it is listening, so that
        readiness can be announced only then (most endpoints listen at once;
        not all do).
        """
        if self.port is not None:
            return succeed(self.port)
        if self._whenListening is None:
            self._whenListening = []
        waiting: Deferred[IListeningPort] = Deferred()
        self._whenListening.append(waiting)
        return waiting

    def _listening(self, port: IListeningPort) -> None:
        self.port = port
        self._log.info(
            "Serving {kind} on {address}",
            kind=self.kind,
            address=formatAddress(port.getHost()),
            greetdEvent="listen.ok",
        )
        waiting, self._whenListening = self._whenListening or [], None
        for listener in waiting:
            listener.callback(port)
