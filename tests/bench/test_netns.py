"""
Tests for L{bench.netns}: the veth pair the benchmark runs across.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from bench.netns import (
    GENERATOR_NAMESPACE,
    LOOPBACK,
    SERVER_NAMESPACE,
    SOURCES,
    cpuMask,
    setUp,
    unavailable,
    veth,
)

#: A server in the servers' namespace: it prints its port, answers one
#: connection with its peer's address, and exits (bounded by its timeout).
SERVER = """
import socket, sys
s = socket.create_server((sys.argv[1], 0)); s.settimeout(20)
print(s.getsockname()[1], flush=True)
c, peer = s.accept(); c.sendall(peer[0].encode()); c.close()
"""

#: A client in the generator's namespace: it connects from a source
#: address to the server and prints what the server said.
CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), 20, (sys.argv[3], 0))
print(c.recv(100).decode())
"""


class SetUpTests(SynchronousTestCase):
    def test_cpuMask(self) -> None:
        """
        The mask has one bit for each core.
        """
        self.assertEqual(
            (cpuMask([0]), cpuMask([1]), cpuMask([0, 2]), cpuMask(range(8))),
            ("1", "2", "5", "ff"),
        )

    def test_writesInsideNamespaces(self) -> None:
        """
        Every setting is written from inside a namespace, where C{ip netns
        exec} mounts the namespace's own C{/sys}: written from the host's,
        it would change the host's interfaces.
        """
        writes = [
            command
            for command in setUp([1], [0])
            if any(word.startswith(("/sys/", "/proc/")) for word in command)
        ]
        self.assertTrue(writes)
        for command in writes:
            self.assertEqual(command[:3], ["ip", "netns", "exec"])
            self.assertIn(command[3], (SERVER_NAMESPACE, GENERATOR_NAMESPACE))

    def test_steering(self) -> None:
        """
        Each end's receipts are steered to its own side's cores.
        """
        steered = {
            command[3]: command[-2]
            for command in setUp([1, 2], [0])
            if command[-1].endswith("rps_cpus")
        }
        self.assertEqual(steered, {SERVER_NAMESPACE: "6", GENERATOR_NAMESPACE: "1"})

    def test_sources(self) -> None:
        """
        The generator's namespace has an address for each of its sources.
        """
        added = [
            command[-3]
            for command in setUp([1], [0])
            if command[3] == GENERATOR_NAMESPACE and command[4:6] == ["ip", "addr"]
        ]
        self.assertEqual(len(added), SOURCES)
        self.assertEqual((added[0], added[-1]), ("198.18.0.2/24", "198.18.0.33/24"))

    def test_loopback(self) -> None:
        """
        On loopback, commands run as given, the generator's told where the
        server and its sources are.
        """
        self.assertEqual(LOOPBACK.serverCommand(["server"]), ["server"])
        self.assertEqual(
            LOOPBACK.generatorCommand(["loadgen"]),
            [
                "loadgen",
                "--host",
                "127.0.0.1",
                "--source",
                "127.0.0.2",
                "--sources",
                str(SOURCES),
            ],
        )


class VethTests(SynchronousTestCase):
    """
    The namespaces, really made (as root).
    """

    def setUp(self) -> None:
        why = unavailable()
        if why:
            self.skipTest(why)

    def test_connects(self) -> None:
        """
        A client in the generator's namespace reaches a server in the
        servers' namespace from one of its sources; the namespaces are gone
        afterwards, and the host's loopback keeps its steering.
        """
        loopback = Path("/sys/class/net/lo/queues/rx-0/rps_cpus")
        before = loopback.read_text()
        with veth([0], [0]) as network:
            server = subprocess.Popen(
                network.serverCommand([sys.executable, "-c", SERVER, network.host]),
                stdout=subprocess.PIPE,
                text=True,
            )
            self.addCleanup(server.wait, 20)
            self.addCleanup(server.kill)
            assert server.stdout is not None
            port = server.stdout.readline().strip()
            client = subprocess.run(
                [
                    *network.generator,
                    sys.executable,
                    "-c",
                    CLIENT,
                    network.host,
                    port,
                    network.source,
                ],
                capture_output=True,
                text=True,
                timeout=30,
            )
            self.assertEqual(client.stdout.strip(), network.source, client.stderr)
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
        self.assertNotIn(SERVER_NAMESPACE, listed.stdout)
        self.assertNotIn(GENERATOR_NAMESPACE, listed.stdout)
        self.assertEqual(loopback.read_text(), before)
