"""
Tests for L{greetd.daemon.build}.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from greetd.daemon.build import buildServers
from tests.helpers import daemonOptions


class BuildTests(SynchronousTestCase):
    def test_noTCPNoFactory(self) -> None:
        servers = buildServers(daemonOptions("--no-tcp", "--udp", "udp:1"), Clock())
        self.assertIsNone(servers.factory)
        self.assertEqual(len(servers.replies), 1)
