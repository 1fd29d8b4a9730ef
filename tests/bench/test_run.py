"""
Tests for L{bench.run}: which servers are measured where.
"""

from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from bench.netns import LOOPBACK, Network
from bench.run import FULL, Bench, Server, peerServers

PAIR = Network("veth", "198.18.0.1", "198.18.0.2", ("in", "servers"), ("in", "load"))


class PeerServersTests(SynchronousTestCase):
    def test_cAcrossThePair(self) -> None:
        """
        With a veth pair, the C server is measured once more across it,
        listening on the pair's address, every peer else on the run's.
        """
        servers = {
            server.key: server for server in peerServers(Path("c"), LOOPBACK, PAIR)
        }
        twice = servers.pop("c-veth")
        self.assertTrue(twice.acrossPair)
        self.assertEqual(twice.command[:3], ["c", "--host", PAIR.host])
        for server in servers.values():
            self.assertFalse(server.acrossPair)
            host = server.command[server.command.index("--host") + 1]
            self.assertEqual(host, LOOPBACK.host)

    def test_withoutPair(self) -> None:
        """
        Without a pair (no root, or every server across it already), the C
        server has one row.
        """
        keys = [server.key for server in peerServers(Path("c"), PAIR, None)]
        self.assertEqual(keys.count("c"), 1)
        self.assertNotIn("c-veth", keys)


class BenchNetworkTests(SynchronousTestCase):
    def test_networkFor(self) -> None:
        """
        A server measured across the pair meets the generator there, every
        other one on the run's network; the generator runs on the server's
        side's network, told the server's address.
        """
        bench = Bench(Path("loadgen"), FULL, ["churn"], network=LOOPBACK, pair=PAIR)
        across = Server("c-veth", "C", [], acrossPair=True)
        self.assertIs(bench.networkFor(across), PAIR)
        self.assertIs(bench.networkFor(Server("c", "C", [])), LOOPBACK)
        bench.network = bench.networkFor(across)
        command = bench.generator("churn", 1)
        self.assertEqual(command[:2], ["in", "load"])
        self.assertEqual(command[command.index("--host") + 1], PAIR.host)

    def test_noPair(self) -> None:
        """
        Without a pair, a server meant for it is measured on the run's
        network.
        """
        bench = Bench(Path("loadgen"), FULL, ["churn"], network=LOOPBACK)
        self.assertIs(
            bench.networkFor(Server("c-veth", "C", [], acrossPair=True)), LOOPBACK
        )
