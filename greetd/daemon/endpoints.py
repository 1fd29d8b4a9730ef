"""
Datagram server endpoints, described by strings in Twisted's endpoint syntax.

Twisted parses stream endpoints (C{tcp:9999:interface=127.0.0.1}) but has no
datagram counterpart, so C{--udp} descriptions are parsed here with the same
rules: colon-separated arguments, C{key=value} keywords, backslash escapes
(C{udp:9999:interface=\\:\\:1}).  C{systemd:domain=INET:name=NAME} (or
C{index=N}) adopts a datagram socket inherited through socket activation, as
Twisted's own C{systemd:} stream endpoint does for streams.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from inspect import signature
from typing import Any, Callable

from twisted.internet.defer import Deferred, execute, fail
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import AlreadyListened
from twisted.internet.interfaces import (
    IListeningPort,
    IReactorSocket,
    IReactorUDP,
    IStreamServerEndpoint,
)
from twisted.internet.protocol import DatagramProtocol
from twisted.python.systemd import ListenFDs
from zope.interface import Interface, implementer

#: The largest UDP payload, and so the largest useful receive buffer.
MAX_DATAGRAM = 65535

#: The prefix of a C{--tcp} or C{--udp} description whose connections or
#: datagrams start with a PROXY header (L{greetd.protocols.proxy}).
PREFIX = "haproxy:"


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


def parsePort(value: str) -> int:
    """
    A port number from an endpoint description, 0 to 65535.

    @raise ValueError: Naming the value, when it is not one.
    """
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
    return UDPServerEndpoint(reactor, parsePort(port), interface, maxPacketSize)


@implementer(IDatagramServerEndpoint)
class AdoptedDatagramServerEndpoint:
    """
    A datagram socket someone else bound, such as systemd for socket
    activation, adopted by file descriptor, the way Twisted's
    L{AdoptedStreamServerEndpoint
    <twisted.internet.endpoints.AdoptedStreamServerEndpoint>} adopts stream
    sockets: made non-blocking first (inherited sockets are blocking, and a
    blocking read would hang the reactor), then closed once the reactor
    holds its own duplicate.

    @ivar fileno: The inherited file descriptor.
    @ivar addressFamily: Its address family (C{socket.AF_INET} or C{AF_INET6}).
    @ivar maxPacketSize: As for L{UDPServerEndpoint}.
    """

    def __init__(
        self,
        reactor: IReactorSocket,
        fileno: int,
        addressFamily: socket.AddressFamily,
        maxPacketSize: int = MAX_DATAGRAM,
    ) -> None:
        self._reactor = reactor
        self.fileno = fileno
        self.addressFamily = addressFamily
        self.maxPacketSize = maxPacketSize
        self._used = False

    _close = staticmethod(os.close)

    def listen(self, protocol: DatagramProtocol) -> Deferred[IListeningPort]:
        if self._used:
            return fail(AlreadyListened())
        self._used = True
        return execute(self._adopt, protocol)

    def _adopt(self, protocol: DatagramProtocol) -> IListeningPort:
        os.set_blocking(self.fileno, False)
        port = self._reactor.adoptDatagramPort(
            self.fileno, self.addressFamily, protocol, self.maxPacketSize
        )
        self._close(self.fileno)
        return port


def inheritedSockets() -> ListenFDs:
    """
    The sockets this process inherited through socket activation.

    L{ListenFDs.fromEnvironment} removes C{LISTEN_FDS} and C{LISTEN_PID} from
    the environment when it reads them, and Twisted's C{systemd:} stream
    endpoint parser reads them when L{twisted.internet.endpoints} is
    imported, so there is one reading to share: that parser's.
    """
    from twisted.internet import endpoints

    parser: Any = getattr(endpoints, "_SystemdParser", None)
    shared = getattr(parser, "_sddaemon", None)
    if isinstance(shared, ListenFDs):
        return shared
    return ListenFDs.fromEnvironment()  # pragma: no cover (older Twisted)


def inheritedDescriptor(
    sockets: ListenFDs, index: str | None = None, name: str | None = None
) -> int:
    """
    The inherited file descriptor at C{index} or named C{name}.

    @raise ValueError: Unless exactly one of C{index} and C{name} is given
        and it names an inherited socket; the message says what was
        inherited, which is the first thing an operator needs to know.
    """
    if (index is None) == (name is None):
        raise ValueError("give exactly one of index= and name=")
    descriptors = sockets.inheritedDescriptors()
    if name is not None:
        named = sockets.inheritedNamedDescriptors()
        if name not in named:
            names = ", ".join(sorted(named)) or "none"
            raise ValueError(
                f"no inherited socket is named {name!r} (LISTEN_FDNAMES names: {names})"
            )
        return named[name]
    assert index is not None
    try:
        position = int(index)
    except ValueError:
        raise ValueError(f"index {index!r} is not a number") from None
    if not 0 <= position < len(descriptors):
        raise ValueError(
            f"no inherited socket at index {position} "
            f"({len(descriptors)} inherited, LISTEN_FDS)"
        )
    return descriptors[position]


def _adoptable(
    kind: socket.SocketKind,
    domain: str | None = None,
    index: str | None = None,
    name: str | None = None,
) -> tuple[int, socket.AddressFamily]:
    """
    The inherited descriptor a C{systemd:} description names, and its
    family, once checked to be a socket of the family and C{kind} asked for:
    adopting the wrong kind of socket fails late and obscurely.
    """
    if domain is None:
        raise ValueError("an address family is required: domain=INET or INET6")
    if domain not in ("INET", "INET6"):
        raise ValueError(f"domain {domain!r} is not INET or INET6")
    family = socket.AF_INET if domain == "INET" else socket.AF_INET6
    fileno = inheritedDescriptor(inheritedSockets(), index, name)
    probe = socket.socket(fileno=fileno)
    try:
        actual = (probe.family, probe.type)
    finally:
        probe.detach()
    if actual != (family, kind):
        raise ValueError(
            f"inherited socket {name or index} is {actual[0].name} "
            f"{actual[1].name}, not {family.name} {kind.name}"
            + (" (say domain=INET6)" if actual[0] == socket.AF_INET6 else "")
        )
    return fileno, family


def _systemd(
    reactor: IReactorSocket,
    maxPacketSize: int,
    domain: str | None = None,
    index: str | None = None,
    name: str | None = None,
) -> AdoptedDatagramServerEndpoint:
    fileno, family = _adoptable(socket.SOCK_DGRAM, domain, index, name)
    return AdoptedDatagramServerEndpoint(reactor, fileno, family, maxPacketSize)


def streamServerFromString(reactor: Any, description: str) -> IStreamServerEndpoint:
    """
    L{serverFromString}, except that a C{systemd:} description is checked
    here first, so that a socket that was not inherited gets an error
    naming what was (Twisted's own parser raises a bare C{KeyError}).
    """
    args, kwargs = splitDescription(description)
    if args[0] == "systemd":
        _bindArguments("systemd", _adoptable, socket.SOCK_STREAM, *args[1:], **kwargs)
        _adoptable(socket.SOCK_STREAM, *args[1:], **kwargs)
    endpoint: IStreamServerEndpoint = serverFromString(reactor, description)
    return endpoint


_PARSERS: dict[str, Callable[..., IDatagramServerEndpoint]] = {
    "udp": _udp,
    "systemd": _systemd,
}


def datagramServerFromString(
    reactor: Any, description: str, maxPacketSize: int = MAX_DATAGRAM
) -> IDatagramServerEndpoint:
    """
    Build a datagram endpoint from a description such as C{udp:9999},
    C{udp:port=9999:interface=\\:\\:1} or C{systemd:domain=INET:name=NAME}.
    A L{PREFIX} (C{haproxy:udp:9999}) changes nothing here: it tells the
    protocol that datagrams start with a PROXY header.

    @param reactor: An L{IReactorUDP} provider, and for C{systemd:} an
        L{IReactorSocket} one.

    @raise ValueError: If the description is not valid, with a message that
        says why.
    """
    args, kwargs = splitDescription(description.removeprefix(PREFIX))
    kind, args = args[0], args[1:]
    parser = _PARSERS.get(kind)
    if parser is None:
        raise ValueError(
            f"unknown datagram endpoint type {kind!r}; "
            f"expected one of: {', '.join(sorted(_PARSERS))}"
        )
    _bindArguments(kind, parser, reactor, maxPacketSize, *args, **kwargs)
    return parser(reactor, maxPacketSize, *args, **kwargs)


def _bindArguments(kind: str, parser: Any, *args: object, **kwargs: str) -> None:
    """
    Check that a description's arguments fit C{parser}, so a wrong one is a
    L{ValueError} naming it rather than a L{TypeError} from deep inside.
    """
    try:
        signature(parser).bind(*args, **kwargs)
    except TypeError as error:
        raise ValueError(f"bad arguments for {kind}: {error}") from None
