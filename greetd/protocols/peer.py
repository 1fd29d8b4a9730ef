"""
A connection's peer, as the greeting protocol keeps it and logs it.

C{transport.getPeer()} builds a new address object on every call (an
C{attrs} class whose validators run each time): on CPython about a
microsecond, twice for every connection, once to key its limits and once
for its access line.  A plain TCP server transport already holds the
C{(host, port)} that C{accept} returned, which its C{getPeer} is built
from, so that is read instead.  Only plain TCP server connections
qualify (C{tcp.Server} exactly, or greetd's own L{StreamServer
<greetd.protocols.streamport.StreamServer>}):
PROXY-wrapped transports name the client their header gives, and UNIX
and in-memory transports have no such pair.
"""

from __future__ import annotations

from typing import Any, cast

from greetd.core.escaping import formatAddress
from greetd.protocols.streamport import PLAIN_TCP


def peerHost(transport: Any) -> str | None:
    """
    The IP address of C{transport}'s peer, or C{None} for a peer without
    one (a UNIX socket).
    """
    if type(transport) in PLAIN_TCP:
        return cast(str, transport.client[0])
    return getattr(transport.getPeer(), "host", None)


def peerForLog(transport: Any) -> tuple[str, int | None, str | None]:
    """
    C{transport}'s peer as logs show it (L{formatAddress}), its port, or
    C{None} for a peer without one, and the load balancer that named it in
    a PROXY header (L{balancerForLog}).
    """
    if type(transport) in PLAIN_TCP:
        host, port = cast("tuple[str, int]", transport.client[:2])
        if ":" not in host:
            # The kernel's dotted quad: nothing in it to escape.
            return f"{host}:{port}", port, None
        return formatAddress((host, port)), port, None
    address = transport.getPeer()
    return (
        formatAddress(address),
        getattr(address, "port", None),
        balancerForLog(transport),
    )


def balancerForLog(transport: Any) -> str | None:
    """
    The load balancer whose PROXY header named C{transport}'s peer, as logs
    show it, or C{None}: the C{balancer} of a
    L{ProxyHeaderProtocol <greetd.protocols.proxy.ProxyHeaderProtocol>},
    which a TLS transport above it passes on as Twisted's protocol
    wrappers pass on attributes.
    """
    balancer = getattr(transport, "balancer", None)
    return None if balancer is None else formatAddress(balancer)


def describePeer(transport: Any) -> str:
    """
    C{transport}'s peer as log lines name it: its address, followed by
    C{via} and the load balancer's for a client a PROXY header named.
    """
    peer, _, via = peerForLog(transport)
    return peer if via is None else f"{peer} via {via}"
