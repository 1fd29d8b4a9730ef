"""
A connection's peer, as the greeting protocol keeps it and logs it.

C{transport.getPeer()} builds a new address object on every call (an
C{attrs} class whose validators run each time): on CPython about a
microsecond, twice for every connection, once to key its limits and once
for its access line.  A plain TCP server transport already holds the
C{(host, port)} that C{accept} returned, which its C{getPeer} is built
from, so that is read instead.  Only C{tcp.Server} exactly qualifies:
PROXY-wrapped transports name the client their header gives, and UNIX
and in-memory transports have no such pair.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet import tcp

from greetd.core.escaping import formatAddress


def peerHost(transport: Any) -> str | None:
    """
    The IP address of C{transport}'s peer, or C{None} for a peer without
    one (a UNIX socket).
    """
    if type(transport) is tcp.Server:
        return cast(str, transport.client[0])
    return getattr(transport.getPeer(), "host", None)


def peerForLog(transport: Any) -> tuple[str, int | None]:
    """
    C{transport}'s peer as logs show it (L{formatAddress}), and its port, or
    C{None} for a peer without one.
    """
    if type(transport) is tcp.Server:
        host, port = cast("tuple[str, int]", transport.client[:2])
        return formatAddress((host, port)), port
    address = transport.getPeer()
    return formatAddress(address), getattr(address, "port", None)
