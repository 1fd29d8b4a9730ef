"""
Tests for L{bench.run}: which servers are measured where.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from twisted.trial.unittest import SynchronousTestCase

from bench import netns, run
from bench.netns import LOOPBACK, Network
from bench.run import (
    FULL,
    GENERATOR_CORE,
    Bench,
    Server,
    coresBusy,
    measured,
    onlyWorkloads,
    pairWanted,
    peerServers,
    serverCores,
)

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


class Started(Exception):
    """
    What L{FakeDaemon} raises once started, to end L{Bench.measure} there.
    """


class FakeDaemon:
    """
    A daemon that records the command it would run, and starts nothing.
    """

    commands: ClassVar[list[list[str]]] = []

    def __init__(self, command: list[str], cwd: Path, logFile: Path | None = None):
        self.commands.append(command)

    def waitForListeners(self, count: int) -> None:
        raise Started()

    def stop(self) -> None:
        pass


class BenchNetworkTests(SynchronousTestCase):
    def measured(self, bench: Bench, server: Server) -> list[str]:
        """
        The command L{Bench.measure} starts C{server} with.
        """
        self.patch(run, "Daemon", FakeDaemon)
        self.patch(FakeDaemon, "commands", [])
        self.assertRaises(Started, bench.measure, server)
        (command,) = FakeDaemon.commands
        return command

    def test_acrossPair(self) -> None:
        """
        A server measured across the pair starts in the servers' namespace,
        and the generator then runs in its own, told the server's address.
        """
        bench = Bench(Path("loadgen"), FULL, ["churn"], network=LOOPBACK, pair=PAIR)
        command = self.measured(bench, Server("c-veth", "C", ["c"], acrossPair=True))
        self.assertEqual(command[:2], ["in", "servers"])
        generator = bench.generator("churn", 1)
        self.assertEqual(generator[:2], ["in", "load"])
        self.assertEqual(generator[generator.index("--host") + 1], PAIR.host)

    def test_runNetwork(self) -> None:
        """
        Every other server, and one meant for the pair in a run without one,
        starts on the run's network.
        """
        withPair = Bench(Path("loadgen"), FULL, ["churn"], network=LOOPBACK, pair=PAIR)
        self.assertNotIn("in", self.measured(withPair, Server("c", "C", ["c"])))
        alone = Bench(Path("loadgen"), FULL, ["churn"], network=LOOPBACK)
        across = Server("c-veth", "C", ["c"], acrossPair=True)
        self.assertNotIn("in", self.measured(alone, across))
        generator = alone.generator("churn", 1)
        self.assertEqual(generator[generator.index("--host") + 1], LOOPBACK.host)


class CoresBusyTests(SynchronousTestCase):
    def test_sides(self) -> None:
        """
        The generator's core's share, and the busiest server core's.
        """
        shares = {str(GENERATOR_CORE): 0.7}
        for number, core in enumerate(serverCores()):
            shares[str(core)] = 0.5 + number / 100
        generator, server = coresBusy(shares)
        self.assertEqual(
            generator, 0.7 if GENERATOR_CORE not in serverCores() else server
        )
        self.assertEqual(server, max(shares[str(core)] for core in serverCores()))

    def test_missing(self) -> None:
        """
        A core whose share the generator could not read fails the window
        rather than passing for idle.
        """
        shares: dict[str, float | None] = {str(core): 0.5 for core in serverCores()}
        shares[str(GENERATOR_CORE)] = None
        self.assertRaises(RuntimeError, coresBusy, shares)
        del shares[str(GENERATOR_CORE)]
        self.assertRaises(RuntimeError, coresBusy, shares)


class PairWantedTests(SynchronousTestCase):
    def test_pairWanted(self) -> None:
        """
        The pair is made only when a server is measured across it.
        """
        peers = peerServers(Path("c"), LOOPBACK, netns.PAIR)
        greetd = [Server("greetd-cpython", "greetd", ["twistd"], True)]
        only = {server.key: [server] for server in peers}

        def wanted(network: Network, servers: list[Server], *workloads: str) -> bool:
            return pairWanted(network, measured(servers, workloads))

        self.assertTrue(wanted(LOOPBACK, greetd + peers, "churn"))
        self.assertTrue(wanted(LOOPBACK, only["c"] + only["c-veth"], "tcp50", "idle"))
        self.assertTrue(wanted(netns.PAIR, greetd, "idle"))
        self.assertFalse(wanted(LOOPBACK, greetd, "churn"))
        self.assertFalse(wanted(LOOPBACK, greetd + peers, "idle"))


class MeasuredTests(SynchronousTestCase):
    def test_measured(self) -> None:
        """
        A server that skips every workload of the run is not started.
        """
        quiet = Server("greetd-cpython-quiet", "quiet", [], skip=onlyWorkloads("churn"))
        c = Server("c", "C", [])
        self.assertEqual(measured([quiet, c], ["idle"]), [c])
        self.assertEqual(measured([quiet, c], ["idle", "churn"]), [quiet, c])
