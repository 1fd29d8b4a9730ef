"""
Tell the service manager how greetd is doing: the C{sd_notify} protocol.

A service of C{Type=notify} is started by systemd with C{NOTIFY_SOCKET}
naming a UNIX datagram socket, and says C{READY=1} there once it serves,
C{STOPPING=1} when it begins to shut down and, when the unit sets
C{WatchdogSec=}, C{WATCHDOG=1} at least every C{WATCHDOG_USEC}
microseconds, or it is killed and restarted as hung.  Each message is one
datagram of C{KEY=VALUE} lines.  Without C{NOTIFY_SOCKET}, nothing is sent.
"""

from __future__ import annotations

import os
import socket
from typing import Callable, Mapping, Protocol, Sequence

from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IListeningPort, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from greetd.core.escaping import escape, formatAddress


class Listening(Protocol):
    """
    A listener as readiness needs it: what it serves, and a L{Deferred}
    that fires with its port once it listens (a
    L{ListeningService <greetd.daemon.listening.ListeningService>}).
    """

    kind: str

    def whenListening(self) -> Deferred[IListeningPort]: ...


#: Something that delivers one notification datagram.
Sender = Callable[[bytes], None]


def notifyAddress(value: str) -> str | bytes:
    """
    The address of the socket C{NOTIFY_SOCKET} names: a filesystem path, or
    for C{@name} the abstract-namespace socket C{\\0name}.

    @raise ValueError: For anything else (systemd also allows C{vsock:},
        which greetd does not speak).
    """
    if value.startswith("@"):
        return b"\0" + value[1:].encode("utf-8", "surrogateescape")
    if value.startswith("/"):
        return value
    raise ValueError(f"NOTIFY_SOCKET {value!r} is not a path or @abstract name")


class DatagramSender:
    """
    Send notifications to the UNIX datagram socket at C{address}.

    Sending never blocks: a service manager that is not reading gets no
    notification rather than a hung daemon, which its watchdog would then
    kill for the wrong reason.
    """

    def __init__(self, address: str | bytes) -> None:
        self.address = address
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)

    def __call__(self, message: bytes) -> None:
        self._socket.sendto(message, self.address)


def watchdogInterval(environ: Mapping[str, str], pid: int) -> float | None:
    """
    How often to ping the watchdog, in seconds: half of C{WATCHDOG_USEC}, as
    C{sd_watchdog_enabled(3)} advises, or C{None} when there is no watchdog
    or it is meant for another process (C{WATCHDOG_PID}).
    """
    usec = environ.get("WATCHDOG_USEC", "")
    watchdogPid = environ.get("WATCHDOG_PID", "")
    if watchdogPid and watchdogPid != str(pid):
        return None
    try:
        microseconds = int(usec)
    except ValueError:
        return None
    if microseconds <= 0:
        return None
    return microseconds / 2e6


class NotifyService(Service):
    """
    Send C{READY=1} with a C{STATUS=} line once every listener listens,
    C{WATCHDOG=1} every half watchdog period while the reactor runs, and
    C{STOPPING=1} when stopping.

    Add it to the C{MultiService} after the listening services: a
    C{MultiService} starts its children in order and stops them in reverse,
    so C{READY=1} follows the listeners' start and C{STOPPING=1} precedes
    their stop.

    @ivar listeners: The services whose ports must listen before C{READY=1}.
    @ivar interval: Seconds between watchdog pings, or C{None} for none.
    @ivar ready: Whether C{READY=1} has been sent.
    """

    _log = Logger()
    ready = False

    def __init__(
        self,
        listeners: Sequence[Listening],
        clock: IReactorTime,
        sender: Sender,
        interval: float | None = None,
    ) -> None:
        self.listeners = list(listeners)
        self.interval = interval
        self._clock = clock
        self._sender = sender
        self._watchdog: LoopingCall | None = None

    def startService(self) -> None:
        Service.startService(self)
        if self.interval is not None:
            self._watchdog = LoopingCall(self.notify, b"WATCHDOG=1")
            self._watchdog.clock = self._clock
            self._watchdog.start(self.interval, now=True)
        ports = gatherResults([service.whenListening() for service in self.listeners])
        ports.addCallback(self._announce)

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        if self._watchdog is not None and self._watchdog.running:
            self._watchdog.stop()
        self._watchdog = None
        self.notify(b"STOPPING=1")
        return succeed(None)

    def _announce(self, ports: list[IListeningPort]) -> None:
        if not self.running:
            return
        status = "Serving " + ", ".join(
            f"{service.kind} on {formatAddress(port.getHost())}"
            for service, port in zip(self.listeners, ports)
        )
        self.ready = True
        self.notify(b"READY=1\nSTATUS=" + status.encode("utf-8"))

    def notify(self, message: bytes) -> None:
        """
        Send one notification.  A failure is logged, not raised: the service
        manager's trouble must not take greetd down with it.
        """
        try:
            self._sender(message)
        except OSError as error:
            self._log.warn(
                "Cannot notify the service manager ({message}): {error}",
                message=escape(message.split(b"\n", 1)[0]),
                error=str(error),
                greetdEvent="notify.failed",
            )


def notifyServiceFromEnvironment(
    listeners: Sequence[Listening],
    clock: IReactorTime,
    environ: Mapping[str, str] | None = None,
    pid: int | None = None,
) -> NotifyService | None:
    """
    The L{NotifyService} C{NOTIFY_SOCKET} and C{WATCHDOG_USEC} ask for, or
    C{None} when greetd was not started by a service manager that listens
    (or C{NOTIFY_SOCKET} is unusable, which is logged: greetd still serves,
    and the manager's start-up timeout says the rest).
    """
    if environ is None:
        environ = os.environ
    if pid is None:
        pid = os.getpid()
    value = environ.get("NOTIFY_SOCKET", "")
    if not value:
        return None
    try:
        address = notifyAddress(value)
    except ValueError as error:
        NotifyService._log.error(
            "Not notifying the service manager: {error}",
            error=str(error),
            greetdEvent="notify.failed",
        )
        return None
    sender = DatagramSender(address)
    return NotifyService(listeners, clock, sender, watchdogInterval(environ, pid))
