"""
Tests for L{bench.netns}: the veth pair the benchmark runs across.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from bench import netns
from bench.netns import (
    GENERATOR_END,
    GENERATOR_NAMESPACE,
    LOOPBACK,
    SERVER_END,
    SERVER_NAMESPACE,
    SOURCES,
    cpuMask,
    inNamespace,
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

    def test_cpuMaskGroups(self) -> None:
        """
        Past 32 CPUs, the mask is in groups of eight digits, as the kernel
        reads it.
        """
        self.assertEqual(cpuMask(range(33)), "1,ffffffff")
        self.assertEqual(cpuMask([40]), "100,00000000")

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


def namespaces() -> set[str]:
    """
    The names of the network namespaces that exist.
    """
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    return {line.split()[0] for line in listed.stdout.splitlines() if line.split()}


def inside(namespace: str, *command: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", namespace, *command],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


class VethTests(SynchronousTestCase):
    """
    The namespaces, really made (as root).
    """

    def setUp(self) -> None:
        why = unavailable()
        if why:
            self.skipTest(why)
        # Root without the right to make namespaces (a container) skips.
        probe = subprocess.run(
            ["ip", "netns", "add", SERVER_NAMESPACE], capture_output=True
        )
        if probe.returncode:
            self.skipTest(f"cannot make a network namespace: {probe.stderr!r}")
        subprocess.run(["ip", "netns", "del", SERVER_NAMESPACE], check=True)

    def test_connects(self) -> None:
        """
        A client in the generator's namespace reaches a server in the
        servers' namespace from one of its sources, each end's receipts
        steered to its side's core; the host never has either end, and the
        namespaces are gone afterwards.
        """
        with veth([0], [0]) as network:
            for namespace, end in (
                (SERVER_NAMESPACE, SERVER_END),
                (GENERATOR_NAMESPACE, GENERATOR_END),
            ):
                steering = f"/sys/class/net/{end}/queues/rx-0/rps_cpus"
                self.assertEqual(int(inside(namespace, "cat", steering), 16), 1)
            self.assertFalse(Path("/sys/class/net", SERVER_END).exists())
            self.assertFalse(Path("/sys/class/net", GENERATOR_END).exists())
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
        self.assertFalse({SERVER_NAMESPACE, GENERATOR_NAMESPACE} & namespaces())

    def test_failedSetUp(self) -> None:
        """
        When a command that makes them fails, the namespaces made so far are
        deleted and the error names the command.
        """
        failing = inNamespace(
            GENERATOR_NAMESPACE, "ip", "link", "set", "no-such-link", "up"
        )
        self.patch(netns, "setUp", lambda *cores: [*setUp(*cores), failing])
        with self.assertRaises(RuntimeError) as raised, veth([0], [0]):
            self.fail("made")
        self.assertIn("no-such-link", str(raised.exception))
        self.assertFalse({SERVER_NAMESPACE, GENERATOR_NAMESPACE} & namespaces())

    def test_leftBehind(self) -> None:
        """
        Namespaces a killed run left behind go when the next run makes its
        own; a live run's stay.
        """
        dead = subprocess.Popen(["true"])
        dead.wait()
        left, live = (
            f"greetd-bench-load-{dead.pid}",
            f"greetd-bench-load-{os.getppid()}",
        )
        for namespace in (left, live):
            subprocess.run(["ip", "netns", "add", namespace], check=True)
        self.addCleanup(subprocess.run, ["ip", "netns", "del", live])
        self.addCleanup(
            subprocess.run, ["ip", "netns", "del", left], capture_output=True
        )
        with veth([0], [0]):
            pass
        self.assertEqual({left, live} & namespaces(), {live})
