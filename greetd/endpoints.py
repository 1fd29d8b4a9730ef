"""
Datagram server endpoints, described by strings in Twisted's endpoint syntax.

Twisted parses stream endpoints (C{tcp:9999:interface=127.0.0.1}) but has no
datagram counterpart, so C{--udp} descriptions are parsed here with the same
rules: colon-separated arguments, C{key=value} keywords, backslash escapes
(C{udp:9999:interface=\\:\\:1}).
"""

from __future__ import annotations

import ipaddress
from inspect import signature

from twisted.internet.defer import Deferred, execute
from twisted.internet.interfaces import IListeningPort, IReactorUDP
from twisted.internet.protocol import DatagramProtocol
from zope.interface import Interface, implementer

#: The largest UDP payload, and so the largest useful receive buffer.
MAX_DATAGRAM = 65535


class IDatagramServerEndpoint(Interface):
    """
    Something a L{DatagramProtocol} can listen on, like
    L{IStreamServerEndpoint <twisted.internet.interfaces.IStreamServerEndpoint>}
    for streams.
    """

    def listen(protocol: DatagramProtocol) -> Deferred[IListeningPort]:
        """
        Start receiving datagrams for C{protocol}.
        """


@implementer(IDatagramServerEndpoint)
class UDPServerEndpoint:
    """
    A UDP port on an IPv4 or IPv6 address.

    @ivar maxPacketSize: The receive buffer size; a longer datagram arrives
        truncated to it, so make it one more than the longest datagram you
        answer to tell such datagrams apart.
    """

    def __init__(
        self,
        reactor: IReactorUDP,
        port: int,
        interface: str = "",
        maxPacketSize: int = MAX_DATAGRAM,
    ) -> None:
        self._reactor = reactor
        self.port = port
        self.interface = interface
        self.maxPacketSize = maxPacketSize

    def listen(self, protocol: DatagramProtocol) -> Deferred[IListeningPort]:
        return execute(
            self._reactor.listenUDP,
            self.port,
            protocol,
            self.interface,
            self.maxPacketSize,
        )


def splitDescription(description: str) -> tuple[list[str], dict[str, str]]:
    """
    Split an endpoint description into positional and keyword arguments, the
    way Twisted's C{serverFromString} does: C{:} separates, C{=} names, and a
    backslash takes the next character literally.
    """
    fields: list[list[str]] = [[]]
    keys: list[str | None] = [None]
    characters = iter(description)
    for character in characters:
        if character == "\\":
            fields[-1].append(next(characters, ""))
        elif character == ":":
            fields.append([])
            keys.append(None)
        elif character == "=" and keys[-1] is None:
            keys[-1] = "".join(fields[-1])
            fields[-1] = []
        else:
            fields[-1].append(character)
    args: list[str] = []
    kwargs: dict[str, str] = {}
    for key, field in zip(keys, fields):
        value = "".join(field)
        if key is None:
            if kwargs:
                raise ValueError(
                    f"positional argument {value!r} after a keyword argument"
                )
            args.append(value)
        elif key in kwargs:
            raise ValueError(f"{key} given twice")
        else:
            kwargs[key] = value
    return args, kwargs


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise ValueError(f"port {value!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 0-65535")
    return port


def _udp(
    reactor: IReactorUDP,
    maxPacketSize: int,
    port: str | None = None,
    interface: str = "",
) -> UDPServerEndpoint:
    if port is None:
        raise ValueError("a UDP port number is required: udp:PORT")
    if interface:
        try:
            ipaddress.ip_address(interface)
        except ValueError:
            raise ValueError(
                f"interface {interface!r} is not an IPv4 or IPv6 address"
            ) from None
    return UDPServerEndpoint(reactor, _port(port), interface, maxPacketSize)


_PARSERS = {"udp": _udp}


def datagramServerFromString(
    reactor: IReactorUDP, description: str, maxPacketSize: int = MAX_DATAGRAM
) -> IDatagramServerEndpoint:
    """
    Build a datagram endpoint from a description such as C{udp:9999} or
    C{udp:port=9999:interface=\\:\\:1}.

    @raise ValueError: If the description is not valid, with a message that
        says why.
    """
    args, kwargs = splitDescription(description)
    kind, args = args[0], args[1:]
    parser = _PARSERS.get(kind)
    if parser is None:
        raise ValueError(
            f"unknown datagram endpoint type {kind!r}; "
            f"expected one of: {', '.join(sorted(_PARSERS))}"
        )
    try:
        signature(parser).bind(reactor, maxPacketSize, *args, **kwargs)
    except TypeError as error:
        raise ValueError(f"bad arguments for {kind}: {error}") from None
    return parser(reactor, maxPacketSize, *args, **kwargs)
