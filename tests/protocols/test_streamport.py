"""
Tests for L{greetd.protocols.streamport}, on real socket pairs, with an
in-memory reactor that never runs: each test calls C{doRead} as the
reactor would.  They hold for Twisted's own C{doRead} as for the direct
one, which runs under PyPy.
"""

from __future__ import annotations

import os
import platform
import socket

from twisted.internet import main, tcp
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactor
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from greetd.protocols.clib import LIBC
from greetd.protocols.fastwrite import supportsWriteThrough
from greetd.protocols.peer import peerForLog, peerHost
from greetd.protocols.streamport import ListeningSocket, StreamPort, StreamServer
from greetd.twisted_private import adoptedPort
from tests.helpers import SOCKET_PEER


class Recorder(Protocol):
    def __init__(self) -> None:
        self.received: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)


def connected(case: SynchronousTestCase) -> tuple[StreamServer, socket.socket]:
    """
    A L{StreamServer} on one end of a socket pair, connected to a
    L{Recorder}, and the other end.
    """
    ours, peer = socket.socketpair()
    case.addCleanup(peer.close)
    ours.setblocking(False)
    peer.settimeout(5)
    server = StreamServer(ours, Recorder(), SOCKET_PEER, None, 1, MemoryReactor())  # type: ignore[arg-type]
    server.protocol.makeConnection(server)
    case.addCleanup(
        lambda: (
            server.connected and server.connectionLost(Failure(main.CONNECTION_DONE))
        )
    )
    return server, peer


class StreamServerTests(SynchronousTestCase):
    def test_directOnPyPy(self) -> None:
        """
        The C library is bound on PyPy only, and a L{StreamServer} reads
        through it there.
        """
        pypy = platform.python_implementation() == "PyPy"
        self.assertEqual(LIBC is not None, pypy)
        self.assertEqual(StreamServer.doRead is not tcp.Server.doRead, pypy)

    def test_readHandedOver(self) -> None:
        """
        What the peer sent reaches the protocol, each read as it came, up
        to C{bufferSize} bytes a read.
        """
        server, peer = connected(self)
        server.bufferSize = 4
        peer.sendall(b"Michael\n")
        self.assertIsNone(server.doRead())
        self.assertIsNone(server.doRead())
        self.assertEqual(server.protocol.received, [b"Mich", b"ael\n"])  # type: ignore[attr-defined]

    def test_nothingWaiting(self) -> None:
        """
        A read that finds nothing returns nothing and hands nothing over.
        """
        server, _ = connected(self)
        self.assertIsNone(server.doRead())
        self.assertEqual(server.protocol.received, [])  # type: ignore[attr-defined]

    def test_endOfFile(self) -> None:
        server, peer = connected(self)
        peer.close()
        self.assertIs(server.doRead(), main.CONNECTION_DONE)

    def test_error(self) -> None:
        """
        A read that fails (here: the peer reset the connection) has the
        connection lost.
        """
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.create_connection(listener.getsockname())
        ours, _ = listener.accept()
        ours.setblocking(False)
        server = StreamServer(ours, Recorder(), SOCKET_PEER, None, 1, MemoryReactor())  # type: ignore[arg-type]
        self.addCleanup(ours.close)
        client.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        client.close()
        self.assertIs(server.doRead(), main.CONNECTION_LOST)

    def test_notReadOnceLost(self) -> None:
        """
        Once the connection is lost, a read does not reach its old
        descriptor, which may be another connection's by then.
        """
        server, _ = connected(self)
        server.connectionLost(Failure(main.CONNECTION_DONE))
        other, otherPeer = socket.socketpair()
        self.addCleanup(other.close)
        self.addCleanup(otherPeer.close)
        otherPeer.send(b"someone else's")
        self.assertIs(server.doRead(), main.CONNECTION_LOST)

    if LIBC is None:
        test_notReadOnceLost.skip = (  # type: ignore[attr-defined]
            "Twisted's own doRead is never called once the connection is lost"
        )

    def test_plainTCP(self) -> None:
        """
        A L{StreamServer} is a plain TCP connection: replies write through,
        and its peer is the address C{accept} gave.
        """
        server, _ = connected(self)
        self.assertTrue(supportsWriteThrough(server))
        self.assertEqual(peerHost(server), SOCKET_PEER[0])
        self.assertEqual(peerForLog(server)[1:], (SOCKET_PEER[1], None))

    def test_portMakesThem(self) -> None:
        self.assertIs(StreamPort.transport, StreamServer)


def listener(case: SynchronousTestCase, kind: type[socket.socket]) -> socket.socket:
    """
    A non-blocking listening socket of C{kind} on loopback.
    """
    made = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listening = kind(made.family, made.type, made.proto, made.detach())
    case.addCleanup(listening.close)
    listening.bind(("127.0.0.1", 0))
    listening.listen(5)
    listening.setblocking(False)
    return listening


class ListeningSocketTests(SynchronousTestCase):
    def accepted(self, kind: type[socket.socket]) -> tuple[socket.socket, object]:
        listening = listener(self, kind)
        client = socket.create_connection(listening.getsockname())
        self.addCleanup(client.close)
        accepted, address = listening.accept()
        self.addCleanup(accepted.close)
        self.assertEqual(address, client.getsockname())
        return accepted, address

    def test_acceptsAsSocketDoes(self) -> None:
        """
        What it accepts is a C{socket.socket} as C{socket.socket.accept}
        makes it: the same family, type, protocol and blocking mode.
        """
        theirs, _ = self.accepted(socket.socket)
        mine, _ = self.accepted(ListeningSocket)
        self.assertIs(type(mine), socket.socket)
        for attribute in ("family", "type", "proto"):
            self.assertEqual(getattr(mine, attribute), getattr(theirs, attribute))
        self.assertEqual(mine.gettimeout(), theirs.gettimeout())

    def test_nothingWaiting(self) -> None:
        listening = listener(self, ListeningSocket)
        self.assertRaises(BlockingIOError, listening.accept)


class StreamPortListeningTests(SynchronousTestCase):
    def check(self, port: StreamPort, twisteds: tcp.Port) -> None:
        """
        C{port}, listening, accepts on a L{ListeningSocket} whose
        descriptor the reactor watches, in the mode in which C{twisteds},
        Twisted's own port made alike, listens.
        """
        self.addCleanup(port.connectionLost, None)
        self.addCleanup(twisteds.connectionLost, None)
        self.assertIsInstance(port.socket, ListeningSocket)
        self.assertEqual(port.fileno(), port.socket.fileno())
        self.assertEqual(port.socket.gettimeout(), twisteds.socket.gettimeout())
        # A blocking descriptor would hang the accept below once nothing
        # is waiting.
        self.assertFalse(os.get_blocking(port.fileno()))
        client = socket.create_connection(port.socket.getsockname())
        self.addCleanup(client.close)
        port.doRead()
        [server] = [
            reader
            for reader in port.reactor.readers
            if isinstance(reader, StreamServer)
        ]
        self.addCleanup(server.connectionLost, Failure(main.CONNECTION_DONE))
        self.assertEqual(server.client, client.getsockname())

    def test_listenTCP(self) -> None:
        made = []
        for kind in (StreamPort, tcp.Port):
            port = kind(
                0, Factory.forProtocol(Protocol), 5, "127.0.0.1", MemoryReactor()
            )
            port.startListening()
            made.append(port)
        self.check(*made)

    def test_adopted(self) -> None:
        """
        An inherited socket (a pool's, or systemd's) is accepted on as well.
        """
        inherited = listener(self, socket.socket)
        made = []
        for kind in (StreamPort, tcp.Port):
            port = adoptedPort(
                kind,
                MemoryReactor(),
                inherited.fileno(),
                socket.AF_INET,
                Factory.forProtocol(Protocol),
            )
            port.startListening()
            made.append(port)
        self.check(*made)
