"""
The listening sockets of a worker pool: bound by the parent, which never
accepts on them, and inherited by every worker.
"""

from __future__ import annotations

import socket

from twisted.internet.abstract import isIPv6Address
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, execute
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from zope.interface import implementer

from greetd.daemon.plan import Address


@implementer(IListeningPort)
class SharedSocket:
    """
    A listening socket the parent holds for its workers and never reads:
    the C{IListeningPort} a L{ListeningService} logs and closes.

    @ivar socket: The bound socket, non-blocking, listening if TCP.
    @ivar kind: C{"TCP"} or C{"UDP"}, for its address.
    """

    def __init__(self, sock: socket.socket, kind: str) -> None:
        self.socket = sock
        self.kind = kind

    def fileno(self) -> int:
        return self.socket.fileno()

    def startListening(self) -> None:
        pass

    def stopListening(self) -> None:
        self.socket.close()

    def getHost(self) -> IPv4Address | IPv6Address:
        host, port = self.socket.getsockname()[:2]
        if self.socket.family == socket.AF_INET6:
            return IPv6Address(self.kind, host, port)  # type: ignore[arg-type]
        return IPv4Address(self.kind, host, port)  # type: ignore[arg-type]


def bindShared(kind: str, address: Address) -> SharedSocket:
    """
    Bind a socket for workers to share, as Twisted's own ports would
    (C{SO_REUSEADDR} for TCP, IPv6 when the interface is an IPv6 address).

    @param kind: C{"TCP"} or C{"UDP"}.
    @param address: Where to bind it.
    @raise CannotListenError: If it cannot be bound.
    """
    interface, port = address.interface, address.port
    family = socket.AF_INET6 if isIPv6Address(interface) else socket.AF_INET
    tcp = kind == "TCP"
    sock = socket.socket(family, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
    try:
        if tcp:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((interface, port))
        if tcp:
            sock.listen(address.backlog)
    except OSError as error:
        sock.close()
        raise CannotListenError(interface, port, error) from None
    sock.setblocking(False)
    return SharedSocket(sock, kind)


def listenShared(kind: str, address: Address | None) -> Deferred[IListeningPort]:
    """
    L{bindShared}, as a L{ListeningService} listens.
    """
    assert address is not None, "the options admit shareable listeners only"
    return execute(bindShared, kind, address)
