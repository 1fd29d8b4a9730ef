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

    @raise ValueError: With a message naming C{text}.
    """
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 or IPv6 network") from None


class AccessPolicy:
    """
    Which source addresses may use greetd.

    A source is refused when it is in any denied network, or when allowed
    networks are given and it is in none of them: deny wins, and an allow
    list turns the default from open to closed; under either, an address
    that does not parse is refused.  IPv4 peers seen through a
    dual-stack IPv6 socket (C{::ffff:192.0.2.1}) are matched as IPv4.

    @ivar allow: The allowed networks; empty allows everyone not denied.
    @ivar deny: The denied networks.
    """

    def __init__(
        self, allow: Sequence[Network] = (), deny: Sequence[Network] = ()
    ) -> None:
        self.allow = tuple(allow)
        self.deny = tuple(deny)

    def __bool__(self) -> bool:
        return bool(self.allow or self.deny)

    def permits(self, host: str) -> bool:
        """
        Whether the source address C{host} may be served.
        """
        if not self:
            return True
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            # Not provably outside the denied networks: refused.
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if any(address in network for network in self.deny):
            return False
        return not self.allow or any(address in network for network in self.allow)
