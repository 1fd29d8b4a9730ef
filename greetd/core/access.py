"""
Access control by source network, for both services.
"""

from __future__ import annotations

import ipaddress
from typing import Sequence, Union

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

#: The loopback networks: the peers a C{haproxy:} listener believes by
#: default (C{--proxy-from}), since a balancer usually runs beside greetd,
#: and no other host can send from them.
LOOPBACK: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)


def parseNetwork(text: str) -> Network:
    """
    Parse a CIDR (C{10.0.0.0/8}, C{2001:db8::/32}) or a single address.
    An IPv4-mapped IPv6 network (C{::ffff:192.0.2.0/120}) is the IPv4
    network it maps, as which peers seen through a dual-stack socket are
    matched.

    @raise ValueError: With a message naming C{text}.
    """
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 or IPv6 network") from None
    mapped = network.network_address
    if isinstance(mapped, ipaddress.IPv6Address) and network.prefixlen >= 96:
        ipv4 = mapped.ipv4_mapped
        if ipv4 is not None:
            return ipaddress.IPv4Network((ipv4, network.prefixlen - 96))
    return network


def hostAddress(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """
    The address C{host} names, an IPv4 peer seen through a dual-stack
    socket (C{::ffff:192.0.2.1}) as IPv4; C{None} if it does not parse.
    """
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


class AccessPolicy:
    """
    Which source addresses may use greetd.

    A source is refused when it is in any denied network, or when allowed
    networks are given and it is in none of them: deny wins, and an allow
    list turns the default from open to closed; under either, an address
    that does not parse is refused.  IPv4 peers seen through a
    dual-stack IPv6 socket (C{::ffff:192.0.2.1}) are matched as IPv4.

    @ivar allow: The allowed networks; empty allows everyone not denied.
        Read only, as is C{deny}.
    @ivar deny: The denied networks.
    """

    def __init__(
        self, allow: Sequence[Network] = (), deny: Sequence[Network] = ()
    ) -> None:
        self._allow = tuple(allow)
        self._deny = tuple(deny)
        # Asked for every connection and datagram: kept, not worked out,
        # which is why the lists cannot be changed (a new policy can be
        # made instead).
        self._everyone = not (self._allow or self._deny)

    allow = property(lambda self: self._allow)
    deny = property(lambda self: self._deny)

    def __bool__(self) -> bool:
        return not self._everyone

    def permits(self, host: str) -> bool:
        """
        Whether the source address C{host} may be served.
        """
        if self._everyone:
            return True
        address = hostAddress(host)
        if address is None:
            # Not provably outside the denied networks: refused.
            return False
        if any(address in network for network in self._deny):
            return False
        allow = self._allow
        return not allow or any(address in network for network in allow)


class TrustedPeers:
    """
    The peers trusted with a role, such as naming a client in a PROXY header
    (C{--proxy-from}) or being a health check (C{--health-check-from}):
    those in L{networks}, and no one when there are none, unlike
    L{AccessPolicy}'s allow list, which allows everyone when empty.

    @ivar networks: The trusted networks.
    """

    def __init__(self, networks: Sequence[Network] = ()) -> None:
        self.networks = tuple(networks)

    def trusts(self, host: str) -> bool:
        """
        Whether the peer C{host} is in one of L{networks}.
        """
        if not self.networks:
            # No one, and nothing to parse: asked for every connection.
            return False
        address = hostAddress(host)
        return address is not None and any(
            address in network for network in self.networks
        )
