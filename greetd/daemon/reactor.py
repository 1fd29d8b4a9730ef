"""
greetd's reactor: Twisted's epoll reactor without the log context it
pushes around every event.

Twisted's reactors run every C{doRead} and C{doWrite} through
L{twisted.python.log.callWithLogger}, which asks the selectable for its log
prefix, copies the legacy log context and pushes it on a thread-local stack,
so that a legacy C{log.msg} made during the event names its C{system}
(twisted/twisted#2534, open since 2007).  On a ping-pong connection that
costs more than greetd's own work on the message, about a microsecond an
event on CPython.  greetd logs through L{twisted.logger}, whose events name
their namespace, so it has no use for that context.

L{GreetdReactor} runs each event directly, and its TCP and UDP ports are
greetd's (L{greetd.protocols.streamport.StreamPort},
L{greetd.protocols.datagramport.DatagramPort}), which on PyPy read
through the C library directly.  An event that is input alone, nearly
every event, goes straight to C{doRead}, without the tests of
C{EPollReactor}'s per-event code for a hang-up and for writing, which runs
every other event.  What Twisted's own dispatch guarantees is kept: an
event for a descriptor removed earlier in the same poll is skipped, a
selectable whose descriptor is -1 is disconnected, an exception in
C{doRead} or C{doWrite} is logged and disconnects that selectable only,
and an exception escaping that code is logged and the loop goes on.  A legacy
C{log.msg} made during an event is logged with C{system} C{-} rather than
the selectable's prefix.

C{twistd greetd} installs it unless a reactor was chosen
(C{twistd --reactor=epoll greetd} runs Twisted's own), and it is a reactor
plugin, C{twistd --reactor=greetd}, for other applications.  Only Linux
has epoll; elsewhere this module does not import, and Twisted's default
reactor stays (L{greetd.daemon.tap.installGreetdReactor}).
"""

from __future__ import annotations

import socket
import sys
from select import EPOLLIN
from typing import Any

from twisted.internet import error
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.main import installReactor
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from greetd.protocols.datagramport import DatagramPort
from greetd.protocols.streamport import StreamPort
from greetd.twisted_private import adoptedPort, epollDispatch

#: The module twisted.internet.main.installReactor puts the reactor in.
_REACTOR_MODULE = "twisted.internet.reactor"

#: Why a selectable whose descriptor is -1 is disconnected, as Twisted's
#: dispatch says it.
_DESCRIPTOR_GONE = error.ConnectionFdescWentAway("File descriptor lost")

#: The reactor plugin's name, for C{twistd --reactor} and a pool's workers.
REACTOR_NAME = "greetd"


class GreetdReactor(EPollReactor):
    """
    C{EPollReactor}, dispatching each ready descriptor without
    L{twisted.python.log.callWithLogger}.
    """

    _log = Logger()

    def doPoll(self, timeout: float | None) -> None:
        """
        Wait up to C{timeout} seconds (C{None}: until something happens) for
        descriptors to be ready, and handle each.
        """
        poller, selectables, dispatch, disconnect = epollDispatch(self)
        # Python retries a poll that a signal interrupts (PEP 475), and
        # Twisted's signal handling wakes it through the waker's descriptor.
        events = poller.poll(-1 if timeout is None else timeout, len(selectables))
        for fd, event in events:
            selectable = selectables.get(fd)
            if selectable is None:
                # Removed by an earlier event of this poll.
                continue
            try:
                if event == EPOLLIN:
                    # Input alone, nearly every event: read, and disconnect
                    # with what the read returned or raised, as Twisted's
                    # dispatch does, without its tests for a hang-up or for
                    # writing.
                    try:
                        if selectable.fileno() == -1:
                            why: Any = _DESCRIPTOR_GONE
                        else:
                            why = selectable.doRead()
                    except KeyboardInterrupt:
                        raise
                    except BaseException as failed:
                        self._log.failure(
                            "Unhandled error reading from {selectable!r}",
                            selectable=selectable,
                        )
                        why = failed
                    if why:
                        disconnect(selectable, why, True)
                else:
                    dispatch(selectable, fd, event)
            except KeyboardInterrupt:
                raise
            except BaseException:
                self._log.failure(
                    "Unhandled error handling an event of {selectable!r}",
                    selectable=selectable,
                )

    doIteration = doPoll

    def listenTCP(
        self,
        port: int,
        factory: Any,
        backlog: int = 50,
        interface: str = "",
    ) -> StreamPort:
        """
        Listen on a L{StreamPort}, as Twisted's C{listenTCP} on its own.
        """
        listening = StreamPort(port, factory, backlog, interface, self)
        listening.startListening()
        return listening

    def adoptStreamPort(
        self, fileDescriptor: int, addressFamily: Any, factory: Any
    ) -> Any:
        """
        Listen on an inherited stream socket: a L{StreamPort} for TCP, as
        Twisted's C{adoptStreamPort} otherwise.
        """
        if addressFamily not in (socket.AF_INET, socket.AF_INET6):
            return super().adoptStreamPort(fileDescriptor, addressFamily, factory)  # type: ignore[no-untyped-call]
        listening: StreamPort = adoptedPort(
            StreamPort, self, fileDescriptor, addressFamily, factory
        )
        listening.startListening()
        return listening

    def listenUDP(
        self,
        port: int,
        protocol: DatagramProtocol,
        interface: str = "",
        maxPacketSize: int = 8192,
    ) -> DatagramPort:
        """
        Listen on a L{DatagramPort}, as Twisted's C{listenUDP} on its own.
        """
        listening = DatagramPort(  # type: ignore[no-untyped-call]
            port, protocol, interface, maxPacketSize, self
        )
        listening.startListening()
        return listening

    def adoptDatagramPort(
        self,
        fileDescriptor: int,
        addressFamily: Any,
        protocol: DatagramProtocol,
        maxPacketSize: int = 8192,
    ) -> DatagramPort:
        """
        Listen on an inherited datagram socket with a L{DatagramPort}, as
        Twisted's C{adoptDatagramPort} on its own.
        """
        if addressFamily not in (socket.AF_INET, socket.AF_INET6):
            raise error.UnsupportedAddressFamily(addressFamily)
        listening: DatagramPort = adoptedPort(
            DatagramPort, self, fileDescriptor, addressFamily, protocol, maxPacketSize
        )
        listening.startListening()
        return listening


def install() -> None:
    """
    Install L{GreetdReactor} as the reactor; the C{greetd} reactor plugin.
    """
    installReactor(GreetdReactor())  # type: ignore[no-untyped-call]


def installUnlessChosen() -> bool:
    """
    Install L{GreetdReactor} unless a reactor is installed already (chosen
    with C{twistd --reactor}, or imported by the application).

    @return: Whether it was installed.
    """
    if _REACTOR_MODULE in sys.modules:
        return False
    install()
    return True
