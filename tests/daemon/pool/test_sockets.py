"""
Tests for L{greetd.daemon.pool.sockets}.
"""

from __future__ import annotations

import socket

from twisted.internet.error import (
    CannotListenError,
)
from twisted.trial.unittest import SynchronousTestCase

from greetd.daemon.plan import (
    Address,
)
from greetd.daemon.pool import (
    bindShared,
)


class BindTests(SynchronousTestCase):
    def test_bind(self) -> None:
        """
        L{bindShared} listens without accepting; a port in use is a
        L{CannotListenError}, as with Twisted's own ports.
        """
        shared = bindShared("TCP", Address("127.0.0.1", 0, 5))
        self.addCleanup(shared.stopListening)
        self.assertFalse(shared.socket.getblocking())
        address = shared.getHost()
        self.assertEqual((address.type, address.host), ("TCP", "127.0.0.1"))
        client = socket.create_connection(("127.0.0.1", address.port), timeout=5)
        client.close()
        self.assertRaises(
            CannotListenError, bindShared, "TCP", Address("127.0.0.1", address.port, 5)
        )
        udp = bindShared("UDP", Address("::1", 0))
        self.addCleanup(udp.stopListening)
        self.assertEqual(udp.getHost().type, "UDP")
        self.assertEqual(udp.socket.family, socket.AF_INET6)
