"""
Tests for L{greetd.client.endpoint}.
"""

from __future__ import annotations

import io
import sys
from unittest import mock

from twisted.internet.endpoints import TCP6ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactor, MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from greetd.client.endpoint import clientEndpoint
from greetd.client.options import parse
from greetd.client.status import USAGE
from tests.certificates import temporaryCredentials


class ClientEndpointTests(SynchronousTestCase):
    def test_tcp6(self) -> None:
        """
        C{tcp6:} connects over IPv6, with Twisted's endpoint syntax.
        """
        reactor = MemoryReactor()
        for description in (
            "tcp6:host=\\:\\:1:port=7:timeout=2",
            "tcp6:\\:\\:1:7:timeout=2",
        ):
            endpoint = clientEndpoint(reactor, description)
            self.assertIsInstance(endpoint, TCP6ClientEndpoint)
            endpoint.connect(Factory.forProtocol(Protocol))
        self.assertEqual(
            [(host, port, timeout) for host, port, _, timeout, _ in reactor.tcpClients],
            [("::1", 7, 2.0)] * 2,
        )

    def test_others(self) -> None:
        """
        Other descriptions are Twisted's.
        """
        reactor = MemoryReactor()
        clientEndpoint(reactor, "unix:path=/run/g").connect(
            Factory.forProtocol(Protocol)
        )
        self.assertEqual(reactor.unixClients[0][0], "/run/g")

    def test_tls(self) -> None:
        """
        C{tls:} is Twisted's, trusting the authorities in C{trustRoots=}.
        """
        authority, _, _ = temporaryCredentials(self)
        reactor = MemoryReactorClock()
        clientEndpoint(
            reactor, f"tls:host=127.0.0.1:port=7:trustRoots={authority.parent}"
        ).connect(Factory.forProtocol(Protocol))
        reactor.advance(0)
        self.assertEqual(reactor.tcpClients[0][:2], ("127.0.0.1", 7))

    def test_tlsNotInstalled(self) -> None:
        """
        Without pyOpenSSL, C{tls:} and C{ssl:} say what to install.
        """
        for description in ("tls:host=h:port=1", "ssl:host=h:port=1"):
            stderr = io.StringIO()
            with mock.patch.dict(sys.modules, {"OpenSSL": None}):
                status = parse(["--connect", description], io.StringIO(), stderr)
            self.assertEqual(status, USAGE)
            self.assertIn("pip install 'greetd[tls]'", stderr.getvalue())
