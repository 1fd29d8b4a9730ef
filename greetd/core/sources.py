"""
Which source a peer counts as, for per-source limits and log throttles.

One host holds a whole IPv6 prefix (a /64 at least, often a /56 or /48),
and may send from any address in it: keying IPv6 peers on their full
address would let it walk around every per-source limit.  So IPv6 peers
are keyed on their leading L{DEFAULT_IPV6_PREFIX} bits, and IPv4 peers
seen through a dual-stack socket (C{::ffff:192.0.2.1}) as the IPv4
address they are.  Keys are for tables only; logs show the full address.
"""

from __future__ import annotations

import socket

#: How many leading bits of an IPv6 address name its source: the /64 of
#: one LAN, the least a site is given.
DEFAULT_IPV6_PREFIX = 64

_INET6_LENGTH = 16

#: The first 12 bytes of an IPv4-mapped IPv6 address.
_MAPPED = b"\x00" * 10 + b"\xff\xff"


def sourceKey(host: str, ipv6Prefix: int = DEFAULT_IPV6_PREFIX) -> str:
    """
    The key of the source C{host} in per-source tables.

    The cost is small and bounded, with nothing cached: IPv4 addresses,
    as the kernel spells them, are their own key; an IPv6 address is
    parsed once, its host bits cleared, and written back.

    @param host: A peer's address as Twisted gives it: dotted IPv4, or
        IPv6 with perhaps a C{%scope}.  Anything else (which no socket
        gives) is its own key.
    @param ipv6Prefix: How many leading bits of an IPv6 address to keep,
        0 to 128; 128 keys each address apart.
    @return: C{host} for IPv4; the IPv4 address of an IPv4-mapped one;
        otherwise the prefix, as C{2001:db8:1:2::/64}.
    """
    if ":" not in host:
        return host
    try:
        packed = socket.inet_pton(socket.AF_INET6, host.split("%", 1)[0])
    except (OSError, ValueError):
        return host
    if packed[:12] == _MAPPED:
        return socket.inet_ntop(socket.AF_INET, packed[12:])
    if ipv6Prefix < 128:
        whole, bits = divmod(ipv6Prefix, 8)
        kept = packed[:whole]
        if bits:
            kept += bytes([packed[whole] & (0xFF00 >> bits) & 0xFF])
        packed = kept.ljust(_INET6_LENGTH, b"\x00")
    return f"{socket.inet_ntop(socket.AF_INET6, packed)}/{ipv6Prefix}"
