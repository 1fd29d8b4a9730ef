"""
Every use greetd makes of a private Twisted name, in one place.

Each is here because no public API serves (the reason is beside it), and
each has a test in C{tests/test_twisted_private.py} that fails loudly,
naming the Twisted version, when Twisted changes under it.  Nothing else
in greetd may reach into Twisted's private names.
"""

from __future__ import annotations

from typing import Any

from twisted.python.systemd import ListenFDs


def queuedWrites(transport: Any) -> bool:
    """
    Whether a C{tcp.Server} has bytes queued that it has not sent.

    Write-through (L{greetd.protocols.fastwrite}) may send only when
    nothing is queued, or replies would be reordered; Twisted exposes no
    way to ask.  Reads C{FileDescriptor._tempDataBuffer}, C{dataBuffer} and
    C{offset}.
    """
    return bool(
        transport._tempDataBuffer or len(transport.dataBuffer) > transport.offset
    )


def writeClosed(transport: Any) -> bool:
    """
    Whether a C{tcp.Server}'s sending side is shut down or going away, so a
    reply must take the transport's own path.  Reads
    C{FileDescriptor._writeDisconnected}.
    """
    return bool(
        transport.disconnecting
        or not transport.connected
        or transport._writeDisconnected
    )


def inheritedSockets() -> ListenFDs:
    """
    The sockets this process inherited through socket activation.

    L{ListenFDs.fromEnvironment} removes C{LISTEN_FDS} and C{LISTEN_PID}
    from the environment when it reads them, and Twisted's C{systemd:}
    stream endpoint parser reads them when L{twisted.internet.endpoints} is
    imported (C{_SystemdParser._sddaemon}), so there is one reading to
    share: that parser's.
    """
    from twisted.internet import endpoints

    parser: Any = getattr(endpoints, "_SystemdParser", None)
    shared = getattr(parser, "_sddaemon", None)
    if isinstance(shared, ListenFDs):
        return shared
    return ListenFDs.fromEnvironment()  # pragma: no cover (older Twisted)


def sslContextFactory(endpoint: Any) -> Any:
    """
    The TLS context factory Twisted's C{ssl:} endpoint parsed from its
    description (C{SSL4ServerEndpoint._sslContextFactory}): a worker serves
    TLS on a socket its parent bound, and C{haproxy:ssl:} reads the PROXY
    header before the handshake, and no public API parses C{ssl:}'s TLS
    options alone.
    """
    return endpoint._sslContextFactory


def sslListeningArguments(endpoint: Any) -> tuple[int, int, str]:
    """
    The port, backlog and interface of Twisted's C{ssl:} endpoint
    (C{SSL4ServerEndpoint._port}, C{_backlog}, C{_interface}), for the
    plain TCP listener under C{haproxy:ssl:}.
    """
    return endpoint._port, endpoint._backlog, endpoint._interface
