"""
Tests for L{greetd.protocols.peer}.
"""

from __future__ import annotations

import socket

from twisted.internet import tcp
from twisted.internet.address import IPv6Address, UNIXAddress
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from greetd.core.escaping import formatAddress
from greetd.protocols.peer import peerForLog, peerHost
from tests.helpers import serverConnection


class PeerTests(SynchronousTestCase):
    def assertAsGetPeer(self, transport: object) -> None:
        """
        C{transport}'s peer, read either way, is what C{getPeer} says.
        """
        address = transport.getPeer()  # type: ignore[attr-defined]
        self.assertEqual(peerHost(transport), getattr(address, "host", None))
        self.assertEqual(
            peerForLog(transport),
            (formatAddress(address), getattr(address, "port", None), None),
        )

    def test_plainTCP(self) -> None:
        """
        A plain TCP server transport's peer is read from what C{accept}
        returned, without building an address: C{getPeer} is not called.
        """
        server, _ = serverConnection(self)
        self.assertAsGetPeer(server)
        server.getPeer = None  # type: ignore[assignment, method-assign]
        self.assertEqual(peerHost(server), "127.0.0.1")
        self.assertEqual(peerForLog(server), ("127.0.0.1:40000", 40000, None))

    def test_plainTCPv6(self) -> None:
        """
        An IPv6 peer's C{accept} address has four parts; it is logged in
        brackets, as C{getPeer}'s address is.
        """
        ours, theirs = socket.socketpair()
        self.addCleanup(ours.close)
        self.addCleanup(theirs.close)
        client = ("2001:db8::1", 5, 0, 0)
        server = tcp.Server(ours, None, client, None, 1, MemoryReactor())  # type: ignore[arg-type]
        server._addressType = IPv6Address
        self.assertAsGetPeer(server)
        self.assertEqual(peerForLog(server), ("[2001:db8::1]:5", 5, None))

    def test_others(self) -> None:
        """
        Other transports are asked with C{getPeer}: a UNIX peer has no host
        and no port.
        """
        self.assertAsGetPeer(StringTransport())
        unix = StringTransport(peerAddress=UNIXAddress(b"/run/g.sock"))
        self.assertAsGetPeer(unix)
        self.assertEqual(peerForLog(unix), ("unix:/run/g.sock", None, None))
        self.assertIsNone(peerHost(unix))
