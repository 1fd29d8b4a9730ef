"""
The listener plan: each C{--tcp}, C{--udp} and C{--metrics} description
parsed once, when the options are checked, into an immutable L{Listener}.

This module owns the endpoint grammar: the C{haproxy:} prefix, the
arguments of C{tcp:}/C{tcp6:} and their defaults, the listening part of
C{ssl:}, C{unix:}, C{udp:} and C{systemd:}.  Everything after it
(L{greetd.daemon.single}, the worker pool's parent in
L{greetd.daemon.pool} and the worker process in L{greetd.daemon.worker})
takes records, never strings.  TLS options and other stream endpoints (any
Twisted plugin's) are Twisted's to parse; they are checked here by parsing
them once.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass, replace
from functools import partial
from inspect import signature
from typing import Any, Callable, Sequence

from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IStreamServerEndpoint

from greetd.core.description import parsePort, splitDescription
from greetd.core.tls import TLS_KINDS, requireTLS
from greetd.daemon.endpoints import (
    MAX_DATAGRAM,
    AdoptedDatagramServerEndpoint,
    IDatagramServerEndpoint,
    ProxiedServerEndpoint,
    UDPServerEndpoint,
    inheritedSocket,
    plainServerEndpoint,
    tlsServerFactory,
    tlsServerFromString,
)

#: What a listener serves, as logs and messages name it.
TCP, UDP, METRICS = "TCP", "UDP", "metrics"

#: The prefix of a C{--tcp} description that expects a PROXY header.
PROXY_PREFIX = "haproxy:"

#: The accept queue of a TCP socket the parent of a worker pool binds, unless
#: its description names a C{backlog}: while a worker is being replaced the
#: others must hold the connections that arrive (the kernel caps it at
#: C{net.core.somaxconn}).
SHARED_BACKLOG = 4096

#: Why a listener cannot be bound by the parent of a worker pool.
NOT_SHAREABLE_STREAM = (
    "not supported with --workers (only tcp:, tcp6:, ssl: and haproxy: before them)"
)
NOT_SHAREABLE_DATAGRAM = "not supported with --workers (only udp:)"


@dataclass(frozen=True)
class Address:
    """
    Where to bind a socket: an interface, a port and, for TCP, a backlog.
    """

    interface: str
    port: int
    backlog: int = 0


@dataclass(frozen=True)
class Inherited:
    """
    A socket inherited through socket activation.
    """

    fileno: int
    family: socket.AddressFamily


@dataclass(frozen=True)
class Listener:
    """
    One listener, as the options describe it.

    @ivar kind: L{TCP}, L{UDP} or L{METRICS}.
    @ivar description: What the user typed, for messages and logs.
    @ivar position: Its place among the options of its kind, from 0: a
        worker's inherited descriptors come in that order.
    @ivar proxied: Whether connections start with a PROXY header (before
        the TLS handshake, for C{haproxy:ssl:}).
    @ivar tls: Whether connections speak TLS (C{ssl:}, C{tls:}).
    @ivar address: Where to bind it, for C{tcp:}, C{tcp6:} and C{udp:}:
        the parent of a worker pool binds that.
    @ivar inherited: The inherited socket, for a C{systemd:} datagram one.
    @ivar twistedDescription: For stream listeners, the description
        Twisted's C{serverFromString} is given (without C{haproxy:}).
    """

    kind: str
    description: str
    position: int = 0
    proxied: bool = False
    tls: bool = False
    address: Address | None = None
    inherited: Inherited | None = None
    twistedDescription: str = ""

    @property
    def shareable(self) -> bool:
        """
        Whether the parent of a worker pool can bind it for its workers.
        """
        return self.address is not None

    @property
    def notShareable(self) -> str:
        """
        Why it cannot be shared by workers, or C{""}.
        """
        if self.shareable:
            return ""
        return NOT_SHAREABLE_DATAGRAM if self.kind == UDP else NOT_SHAREABLE_STREAM

    def streamEndpoint(self, reactor: Any) -> IStreamServerEndpoint:
        """
        The endpoint a single process listens on for a L{TCP} or L{METRICS}
        listener.
        """
        description = self.twistedDescription
        if self.tls and self.proxied:
            return ProxiedServerEndpoint(
                plainServerEndpoint(reactor, description),
                reactor,
                inner=partial(tlsServerFactory, reactor, description),
            )
        if self.tls:
            return tlsServerFromString(reactor, description)
        endpoint: IStreamServerEndpoint = serverFromString(reactor, description)
        if self.proxied:
            return ProxiedServerEndpoint(endpoint, reactor)
        return endpoint

    def datagramEndpoint(
        self, reactor: Any, maxPacketSize: int = MAX_DATAGRAM
    ) -> IDatagramServerEndpoint:
        """
        The endpoint a single process listens on for a L{UDP} listener.
        """
        if self.inherited is not None:
            return AdoptedDatagramServerEndpoint(
                reactor, self.inherited.fileno, self.inherited.family, maxPacketSize
            )
        assert self.address is not None
        return UDPServerEndpoint(
            reactor, self.address.port, self.address.interface, maxPacketSize
        )


@dataclass(frozen=True)
class Plan:
    """
    Every listener the options ask for.

    @ivar tcp: The TCP greeting listeners, in option order.
    @ivar udp: The UDP reply listeners, in option order.
    @ivar metrics: The metrics listener, if any.
    """

    tcp: tuple[Listener, ...] = ()
    udp: tuple[Listener, ...] = ()
    metrics: Listener | None = None

    def notShareable(self) -> Listener | None:
        """
        The first greeting listener a worker pool cannot share, if any.
        """
        for listener in self.tcp + self.udp:
            if not listener.shareable:
                return listener
        return None


def _checkArguments(
    kind: str, parser: Callable[..., Any], *args: object, **kw: str
) -> None:
    """
    Check that a description's arguments fit C{parser}, so a wrong one is a
    C{ValueError} naming it rather than a C{TypeError} from deep inside.
    """
    try:
        signature(parser).bind(*args, **kw)
    except TypeError as error:
        raise ValueError(f"bad arguments for {kind}: {error}") from None


def _interface(interface: str) -> str:
    if interface:
        try:
            ipaddress.ip_address(interface.split("%", 1)[0])
        except ValueError:
            raise ValueError(
                f"interface {interface!r} is not an IPv4 or IPv6 address"
            ) from None
    return interface


def _tcpAddress(
    kind: str, port: str | None = None, interface: str = "", backlog: str | None = None
) -> Address:
    # The arguments of Twisted's tcp: and tcp6: endpoints, with its defaults.
    if port is None:
        raise ValueError(f"a port number is required: {kind}:PORT")
    if kind == "tcp6" and not interface:
        interface = "::"
    if backlog is None:
        queue = SHARED_BACKLOG
    else:
        try:
            queue = int(backlog)
        except ValueError:
            raise ValueError(f"backlog {backlog!r} is not a number") from None
    # Twisted binds a host name here too: the interface is its to check.
    return Address(interface, parsePort(port), queue)


def _unixPath(address: str | None = None, *rest: str, **keywords: str) -> None:
    if not address:
        raise ValueError("a socket path is required: unix:PATH")
    directory = os.path.dirname(address) or "."
    if not os.path.isdir(directory):
        raise ValueError(f"directory {directory!r} does not exist")


def _systemd(
    kind: socket.SocketKind,
    domain: str | None = None,
    index: str | None = None,
    name: str | None = None,
) -> Inherited:
    fileno, family = inheritedSocket(kind, domain, index, name)
    return Inherited(fileno, family)


def streamListener(description: str, reactor: Any, position: int = 0) -> Listener:
    """
    The L{Listener} for a C{--tcp} description.

    @raise ValueError: If the description is not valid, saying why.
    """
    proxied = description.startswith(PROXY_PREFIX)
    inner = description[len(PROXY_PREFIX) :] if proxied else description
    args, kwargs = splitDescription(inner)
    kind, rest = args[0], args[1:]
    address = None
    tls = kind in TLS_KINDS
    if kind in ("tcp", "tcp6"):
        _checkArguments(kind, _tcpAddress, kind, *rest, **kwargs)
        address = _tcpAddress(kind, *rest, **kwargs)
    elif kind == "ssl":
        # The parent of a worker pool binds an ssl: socket as a tcp: one,
        # from its port, interface and backlog; the workers serve its TLS.
        where = {key: kwargs[key] for key in ("interface", "backlog") if key in kwargs}
        port = kwargs.get("port", rest[0] if rest else None)
        address = _tcpAddress(kind, port, **where)
        requireTLS()
    elif kind == "tls":
        if proxied:
            raise ValueError("haproxy: in front of tls: is not supported (use ssl:)")
        requireTLS()
    elif kind == "unix":
        _unixPath(*rest, **kwargs)
    elif kind == "systemd":
        _checkArguments(kind, _systemd, socket.SOCK_STREAM, *rest, **kwargs)
        _systemd(socket.SOCK_STREAM, *rest, **kwargs)
    # Twisted's own parser has the last word on every kind.
    serverFromString(reactor, inner)
    return Listener(TCP, description, position, proxied, tls, address, None, inner)


def datagramListener(description: str, position: int = 0) -> Listener:
    """
    The L{Listener} for a C{--udp} description: C{udp:PORT[:interface=ADDRESS]}
    or C{systemd:domain=INET|INET6:name=NAME} (or C{index=N}), with
    C{haproxy:} in front when each datagram starts with a PROXY header.

    @raise ValueError: If the description is not valid, saying why.
    """
    proxied = description.startswith(PROXY_PREFIX)
    inner = description[len(PROXY_PREFIX) :] if proxied else description
    args, kwargs = splitDescription(inner)
    kind, rest = args[0], args[1:]
    if kind == "udp":
        _checkArguments(kind, _udpAddress, *rest, **kwargs)
        address = _udpAddress(*rest, **kwargs)
        return Listener(UDP, description, position, proxied, address=address)
    if kind == "systemd":
        _checkArguments(kind, _systemd, socket.SOCK_DGRAM, *rest, **kwargs)
        inherited = _systemd(socket.SOCK_DGRAM, *rest, **kwargs)
        return Listener(UDP, description, position, proxied, inherited=inherited)
    raise ValueError(
        f"unknown datagram endpoint type {kind!r}; expected one of: systemd, udp"
    )


def _udpAddress(port: str | None = None, interface: str = "") -> Address:
    if port is None:
        raise ValueError("a UDP port number is required: udp:PORT")
    return Address(_interface(interface), parsePort(port))


def metricsListener(description: str, reactor: Any) -> Listener:
    """
    The L{Listener} for C{--metrics}: any Twisted stream server endpoint,
    checked as C{--tcp} ones are.

    @raise ValueError: If it is not valid, saying why.
    """
    if description.startswith(PROXY_PREFIX):
        raise ValueError("the metrics endpoint takes no PROXY header")
    return replace(streamListener(description, reactor), kind=METRICS)


def makePlan(
    reactor: Any,
    tcp: Sequence[str] = (),
    udp: Sequence[str] = (),
    metrics: str | None = None,
) -> Plan:
    """
    The L{Plan} for the given descriptions.

    @raise PlanError: Naming the option and the description at fault.
    """
    return Plan(
        tuple(
            _planned("--tcp", description, streamListener, description, reactor, i)
            for i, description in enumerate(tcp)
        ),
        tuple(
            _planned("--udp", description, datagramListener, description, i)
            for i, description in enumerate(udp)
        ),
        None
        if metrics is None
        else _planned("--metrics", metrics, metricsListener, metrics, reactor),
    )


class PlanError(ValueError):
    """
    A description that is not valid, with the option that gave it.
    """


def _planned(
    option: str, description: str, parse: Callable[..., Listener], *args: Any
) -> Listener:
    try:
        return parse(*args)
    except Exception as error:
        # Twisted's parsers raise ValueError, TypeError, KeyError, OSError
        # (a missing certificate) and more; each is the operator's error.
        raise PlanError(
            f"{option} {description!r}: {error or type(error).__name__}"
        ) from None


def streamServerFromString(reactor: Any, description: str) -> IStreamServerEndpoint:
    """
    Like Twisted's C{serverFromString}, with greetd's checks, and with
    C{haproxy:} endpoints connecting their protocols only once the PROXY
    header is read.
    """
    return streamListener(description, reactor).streamEndpoint(reactor)


def datagramServerFromString(
    reactor: Any, description: str, maxPacketSize: int = MAX_DATAGRAM
) -> IDatagramServerEndpoint:
    """
    The datagram endpoint for a description such as C{udp:9999},
    C{udp:port=9999:interface=\\:\\:1} or C{systemd:domain=INET:name=NAME}.

    @raise ValueError: If the description is not valid, saying why.
    """
    return datagramListener(description).datagramEndpoint(reactor, maxPacketSize)
