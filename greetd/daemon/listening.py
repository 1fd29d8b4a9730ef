"""
A service that listens on one endpoint, stream or datagram.
"""

from __future__ import annotations

import atexit
import os
import sys
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


def exitProcess(status: int) -> None:
    """
    End a running twistd with C{status}: stop the reactor, so that twistd
    shuts down as usual (services stopped, pid file removed), then exit
    with C{status} where twistd would exit with 0.

    twistd offers no exit status once its reactor runs, and the reactor
    logs and swallows a C{SystemExit} raised in a callback; the status is
    therefore set from an C{atexit} hook, which runs after twistd returns.
    """
    from twisted.internet import reactor

    atexit.register(_exitNow, status)
    reactor.callWhenRunning(reactor.stop)


def _exitNow(status: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


class ListeningService(Service):
    """
    Listen on one endpoint from L{privilegedStartService}, so that twistd can
    bind ports below 1024 before it drops privileges.

    A port that cannot be bound is fatal: the service logs one line naming
    the endpoint and the reason and exits the process with status 1, rather
    than leave a daemon running without the service it was asked for.  An
    endpoint that listens at once fails before twistd starts its reactor,
    and C{SystemExit} ends it there; one that fails later, the reactor
    running, ends the daemon through L{exitLater} after the same line.

    Stopping the service stops its port, or cancels a listen still under
    way; a stopped service listens again when started again.

    @ivar description: The endpoint, as the operator wrote it.
    @ivar kind: What is served there (C{"TCP"}, C{"UDP"}), for logs.
    @ivar port: The listening port, once listening.
    @ivar exitLater: Called with the exit status when listening fails with
        the reactor running: L{exitProcess} by default.
    """

    _log = Logger()
    port: IListeningPort | None = None
    _waiting: Deferred[None] | None = None
    _whenListening: list[Deferred[IListeningPort]] | None = None
    _starting = False
    _cancelling = False
    exitLater: Callable[[int], None] = staticmethod(exitProcess)

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
            raise SystemExit(1)

    def _failed(self, failure: Failure, early: list[Failure]) -> None:
        """
        Listening failed: unless because L{stopService} cancelled it, log
        why and end the process, with C{SystemExit} while still starting,
        through L{exitLater} afterwards.

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
        else:
            self.exitLater(1)

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
