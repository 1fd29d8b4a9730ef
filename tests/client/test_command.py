"""
Tests for L{greetd.client.command}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from greetd.client.command import Session
from tests.helpers import parsed


class SessionTests(SynchronousTestCase):
    def test_address(self) -> None:
        """
        Error lines name the server as C{host:port}, or the endpoint string.
        """
        for argv, address in [
            ((), "127.0.0.1:9999"),
            (("-H", "::1"), "[::1]:9999"),
            (("--connect", "unix:path=/run/g"), "unix:path=/run/g"),
            (("--connect", "tcp6:host=\\:\\:1:port=1"), "tcp6:host=\\:\\:1:port=1"),
            (("--connect", "unix:path=/run/\u00e9"), "unix:path=/run/\\xc3\\xa9"),
        ]:
            self.assertEqual(Session(parsed(*argv), print, []).address, address)
