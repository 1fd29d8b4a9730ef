"""
A service that listens on one endpoint, stream or datagram.
"""

from __future__ import annotations

from typing import Callable

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python.failure import Failure

from greetd.core.escaping import formatAddress


def describeListenFailure(failure: Failure) -> str:
    """
    The reason a listen failed, in a few words (C{Address already in use}).
    """
    error = failure.value
    if isinstance(error, CannotListenError):
        socketError = error.socketError
        strerror = getattr(socketError, "strerror", None)
        return str(strerror or socketError)
    return str(error) or type(error).__name__


class ListenFailed(Exception):
    """
    A L{ListeningService} could not listen as it started; the line saying
    why is logged.

    @ivar service: The service.
    """

    def __init__(self, service: ListeningService) -> None:
        super().__init__(f"cannot listen for {service.kind} on {service.description}")
        self.service = service


class ListeningService(Service):
    """
    Listen on one endpoint from L{privilegedStartService}, so that twistd can
    bind ports below 1024 before it drops privileges.

    A port that cannot be bound is logged, one line naming the endpoint
    and the reason, and left to the application to act on, as Twisted's
    services do: an endpoint that listens at once fails as the service
    starts, which raises L{ListenFailed}; one that fails later, the
    reactor running, fails the L{whenListening} L{Deferred}s.  The daemon
    exits with status 1 in both cases (L{greetd.daemon.tap.GreetdServices},
    L{greetd.daemon.worker.main}), rather than run without a service it
    was asked for.

    Stopping the service stops its port, or cancels a listen still under
    way; a stopped service listens again when started again.

    @ivar description: The endpoint, as the operator wrote it.
    @ivar kind: What is served there (C{"TCP"}, C{"UDP"}), for logs.
    @ivar port: The listening port, once listening.
    """

    _log = Logger()
    port: IListeningPort | None = None
    _waiting: Deferred[None] | None = None
    _whenListening: list[Deferred[IListeningPort]] | None = None
    _starting = False
    _cancelling = False

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
        self._starting = True
        try:
            waiting = self._listen().addCallback(self._listening)
            waiting.addErrback(self._failed, failures)
        finally:
            self._starting = False
        self._waiting = waiting
        if failures:
            raise ListenFailed(self)

    def _failed(self, failure: Failure, early: list[Failure]) -> None:
        """
        Listening failed: unless because L{stopService} cancelled it, log
        why, and record the failure in C{early} while still starting (to
        raise L{ListenFailed}) or fail the L{whenListening} L{Deferred}s
        afterwards.

        @param early: Where to record a failure that happened while
            starting.
        """
        if self._cancelling and failure.check(CancelledError):
            return
        self._waiting = None
        self._log.critical(
            "Cannot listen for {kind} on {description}: {reason}",
            kind=self.kind,
            description=self.description,
            reason=describeListenFailure(failure),
            greetdEvent="listen.failed",
        )
        if self._starting:
            early.append(failure)
            return
        waiting, self._whenListening = self._whenListening or [], None
        for listener in waiting:
            listener.errback(failure)

    def startService(self) -> None:
        Service.startService(self)
        if self._waiting is None:
            self.privilegedStartService()

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            self._cancelling = True
            try:
                waiting.cancel()
            finally:
                self._cancelling = False
        port, self.port = self.port, None
        stopped = port.stopListening() if port is not None else None
        return stopped if stopped is not None else succeed(None)

    def whenListening(self) -> Deferred[IListeningPort]:
        """
        A L{Deferred} that fires with the port once it is listening, so that
        readiness can be announced only then (most endpoints listen at once;
        not all do), or fails with the reason if listening fails once the
        service has started.
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
