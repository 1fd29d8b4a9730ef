"""
Every use greetd makes of a private Twisted name, in one place.

Each is here because no public API serves (the reason is beside it), and
each has a test in C{tests/test_twisted_private.py} that fails loudly,
naming the Twisted version, when Twisted changes under it.  Nothing else
in greetd may reach into Twisted's private names.
"""

from __future__ import annotations

import select
from typing import Any

from twisted.internet import address, tcp
from twisted.internet.protocol import Factory, Protocol
from twisted.python.systemd import ListenFDs


def sendsNothingFirst(transport: Any) -> bool:
    """
    Whether a C{tcp.Server} could send bytes straight to its socket now:
    nothing is queued that would have to go first, and its sending side is
    neither shut down nor going away.

    Write-through (L{greetd.protocols.fastwrite}) may send only then, or
    replies would be reordered or sent after a close; Twisted exposes no
    way to ask.  Reads C{FileDescriptor._tempDataBuffer}, C{dataBuffer},
    C{offset} and C{_writeDisconnected}, in one call because it is made for
    every reply.
    """
    return not (
        transport._tempDataBuffer
        or len(transport.dataBuffer) > transport.offset
        or transport.disconnecting
        or not transport.connected
        or transport._writeDisconnected
    )


def epollDispatch(reactor: Any) -> tuple[Any, dict[int, Any], Any, Any]:
    """
    What one turn of an C{EPollReactor} works with: its epoll object, its
    selectables by descriptor, the method that runs one event, and the one
    that disconnects a selectable a read or write said is gone
    (C{_poller}, C{_selectables}, C{_doReadOrWrite},
    C{_disconnectSelectable}).

    L{greetd.daemon.reactor.GreetdReactor} polls and dispatches as
    C{EPollReactor.doPoll} does, without the log context around each event,
    and runs the commonest event, input alone, without C{_doReadOrWrite}'s
    checks; C{doPoll} is the reactor's one hook for that, and it works on
    these.
    """
    return (
        reactor._poller,
        reactor._selectables,
        reactor._doReadOrWrite,
        reactor._disconnectSelectable,
    )


#: epoll's flag for a registration that wakes one of the processes waiting
#: on the file, not all of them: Linux's value (C{linux/eventpoll.h}), since
#: PyPy 3.9's C{select} does not name it.
EPOLLEXCLUSIVE: int = getattr(select, "EPOLLEXCLUSIVE", 1 << 28)


def readExclusively(reactor: Any, reader: Any) -> bool:
    """
    Make C{reader}'s registration on an epoll reactor exclusive
    (C{EPOLLEXCLUSIVE}): when several processes wait on the same socket
    (a worker pool's shared listening sockets), the kernel wakes one of
    those waiting for an event on it, not all of them.

    Twisted's C{EPollReactor.addReader} registers every reader with
    C{EPOLLIN} alone and offers no way to ask for more, so this registers
    C{reader} again on its epoll object, C{_poller}, once Twisted has
    added it, if C{_reads} holds it and C{_writes} does not: Twisted then
    only ever unregisters it (C{removeReader}), which an exclusive
    registration allows; it would modify it (refused for an exclusive one)
    only to add a writer, and neither a listening port nor a UDP port asks
    the reactor to write.

    @param reader: A reader the reactor reads now.
    @return: Whether the registration is exclusive now; C{False}, with
        the reader still read, on any other reactor or where the kernel
        refuses the flag.  (A kernel older than Linux
        4.5 ignores the flag: every waiting process is woken, as before.)
    """
    epoll: Any = getattr(select, "epoll", None)  # Linux only
    poller = getattr(reactor, "_poller", None)
    if epoll is None or not isinstance(poller, epoll):
        return False
    fd = reader.fileno()
    if fd not in reactor._reads or fd in reactor._writes:
        return False
    poller.unregister(fd)
    try:
        poller.register(fd, select.EPOLLIN | EPOLLEXCLUSIVE)
    except OSError:
        # A kernel (or a sandbox's filter) that refuses the flag: read it
        # as Twisted did, every waiting process woken.
        poller.register(fd, select.EPOLLIN)
        return False
    return True


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


def unsentBytes(transport: Any) -> int:
    """
    How many bytes of a connection wait in its socket transport's own
    buffer, not yet handed to the kernel: what the peer is owed and has not
    made room for.  C{transport} is a connection's transport, or any
    transport wrapping one (TLS, PROXY, greetd's handshake gate), each of
    which names what it wraps C{transport}; 0 for one that wraps no socket.

    The write timeout (L{greetd.protocols.idle}) watches this number for
    progress; Twisted's C{FileDescriptor} exposes no count of what it holds.
    Reads C{FileDescriptor.dataBuffer}, C{offset} and C{_tempDataLen}.
    """
    while not hasattr(transport, "dataBuffer"):
        transport = getattr(transport, "transport", None)
        if transport is None:
            return 0
    return int(len(transport.dataBuffer) - transport.offset + transport._tempDataLen)


def adoptedPort(
    portType: Any, reactor: Any, fileDescriptor: int, addressFamily: int, *args: Any
) -> Any:
    """
    A port of C{portType}, a subclass of Twisted's C{tcp.Port} or
    C{udp.Port}, on an inherited socket, not yet listening
    (C{_fromListeningDescriptor}, the constructor Twisted's
    C{adoptStreamPort} and C{adoptDatagramPort} build their own ports
    with): greetd's reactor adopts sockets with its own port types
    (L{greetd.daemon.reactor.GreetdReactor}), and no public API builds a
    port of a given type on a descriptor.

    @param args: What C{portType} takes after the address family: the
        factory (TCP), or the protocol and the largest datagram (UDP).
    """
    return portType._fromListeningDescriptor(
        reactor, fileDescriptor, addressFamily, *args
    )


def readReceived(transport: Any, data: bytes) -> Any:
    """
    Hand C{data}, just read by C{transport} (a C{tcp.Connection}), to its
    protocol, and return what the connection's C{doRead} is to return, as
    Twisted's own C{doRead} does once it has read (C{_dataReceived}: end of
    file for nothing read, the protocol's C{dataReceived} otherwise, with
    Twisted's warning if that returns a value).  For
    L{greetd.protocols.streamport.StreamServer}, which reads on PyPy
    without Python's socket methods.
    """
    return transport._dataReceived(data)


class AddressSparingPort(tcp.Port):
    """
    A TCP port that builds no address object for a connection whose
    factory would ignore it.

    C{tcp.Port.doRead} hands each accepted connection's factory an
    C{IPv4Address} (an C{attrs} class whose validators run on every
    construction: about 0.3 us on CPython) built by C{_buildAddr}, which
    C{Factory.buildProtocol} ignores.  Twisted offers no other hook, so
    this overrides C{_buildAddr} to give C{None} to a factory whose
    C{buildProtocol} is C{Factory}'s own, and the address to any other
    (a wrapping factory, a factory of an embedder's that reads it, one
    whose C{buildProtocol} was replaced on the instance).
    """

    def _buildAddr(self, address: tuple[Any, ...]) -> Any:
        factory: Any = self.factory
        if type(factory).buildProtocol is Factory.buildProtocol and (
            "buildProtocol" not in getattr(factory, "__dict__", ())
        ):
            return None
        return super()._buildAddr(address)  # type: ignore[no-untyped-call]


class NamedOnDemandServer(tcp.Server):
    """
    A C{tcp.Server} whose log prefix (C{logstr}) and C{repr} text
    (C{repstr}) are formatted when first asked for.

    C{tcp.Server.__init__} formats both for every connection (about 0.5 us
    on CPython, the protocol's C{logPrefix} called for one), and most
    connections are never named by either: greetd's reactor gives an event
    of input alone to C{doRead} without a log context.  What they are
    made of is taken when the connection is made, as Twisted takes it:
    the protocol's class (whose name is all C{Protocol.logPrefix} gives;
    a protocol with a C{logPrefix} of its own, such as a wrapper's, is
    asked at once) and the port's number, so that they read the same
    once the port has stopped or the connection has let its protocol go,
    and keep no reference to the protocol.  This C{__init__} is
    C{tcp.Server}'s without the formatting;
    C{tests/test_twisted_private.py} checks that it leaves the same
    attributes as Twisted's does.
    """

    _logstr: str | None = None
    _repstr: str | None = None

    def __init__(
        self,
        sock: Any,
        protocol: Any,
        client: tuple[Any, ...],
        server: Any,
        sessionno: int,
        reactor: Any,
    ) -> None:
        tcp.Connection.__init__(self, sock, protocol, reactor)
        if len(client) != 2:
            self._addressType = address.IPv6Address
        self.server = server
        self.client = client
        self.sessionno = sessionno
        self.hostname = client[0]
        kind = type(protocol)
        self._protocolName = kind.__name__
        # Protocol.logPrefix gives the class's name; a logPrefix of the
        # protocol's own may read its state, so it is asked now.
        self._prefix = (
            kind.__name__
            if getattr(kind, "logPrefix", None) is Protocol.logPrefix
            else self._getLogPrefix(protocol)
        )
        self._portNumber = None if server is None else server._realPortNumber
        self.startReading()  # type: ignore[no-untyped-call]
        self.connected = 1

    @property
    def logstr(self) -> str:
        logstr = self._logstr
        if logstr is None:
            logstr = self._logstr = f"{self._prefix},{self.sessionno},{self.hostname}"
        return logstr

    @logstr.setter
    def logstr(self, logstr: str) -> None:
        self._logstr = logstr

    @property
    def repstr(self) -> str:
        repstr = self._repstr
        if repstr is None:
            repstr = self._repstr = (
                f"<{self._protocolName} #{self.sessionno} on {self._portNumber}>"
            )
        return repstr

    @repstr.setter
    def repstr(self, repstr: str) -> None:
        self._repstr = repstr
