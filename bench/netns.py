"""
Where the servers and the load generator meet: loopback, or two network
namespaces of their own joined by a veth pair.

On loopback the kernel runs each packet's receipt in the thread that sent
it: the generator pays for the server's handshakes and reads, and a fast
server's throughput is the generator's ceiling.  Across a veth pair, with
receive packet steering (RPS) sending each end's receipts to that side's
own cores, each side pays for what it receives, as on two machines with a
network card each.  The namespaces see none of the host's interfaces, and
the host none of theirs: the addresses are RFC 2544's benchmarking network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Iterable, Iterator, Sequence


@dataclass(frozen=True)
class Network:
    """
    Where to run the servers and the generator, and their addresses.

    @ivar name: C{loopback} or C{veth}, for the report.
    @ivar host: The address every server listens on.
    @ivar source: The first of the generator's source addresses.
    @ivar server: The words that run a command where the servers are.
    @ivar generator: The words that run a command where the generator is.
    """

    name: str
    host: str
    source: str
    server: tuple[str, ...] = ()
    generator: tuple[str, ...] = ()

    def serverCommand(self, command: Sequence[str]) -> list[str]:
        return [*self.server, *command]

    def generatorCommand(self, command: Sequence[str]) -> list[str]:
        return [
            *self.generator,
            *command,
            "--host",
            self.host,
            "--source",
            self.source,
            "--sources",
            str(SOURCES),
        ]


#: How many source addresses the generator spreads its connections over.
SOURCES = 32

LOOPBACK = Network("loopback", "127.0.0.1", "127.0.0.2")

#: The namespaces, the servers' and the generator's, named for the process
#: that makes them, so that two runs (a benchmark and the tests, or the
#: tests under two interpreters) each have their own.
NAMESPACE_KINDS = ("greetd-bench-server", "greetd-bench-load")
SERVER_NAMESPACE, GENERATOR_NAMESPACE = (
    f"{kind}-{os.getpid()}" for kind in NAMESPACE_KINDS
)

#: The veth pair's ends: in the servers' namespace, in the generator's.
#: Each is made in its namespace, never in the host's, where another run's
#: could have the same name.
SERVER_END = "bench-server"
GENERATOR_END = "bench-load"

#: RFC 2544's benchmarking network: the server's address, then the
#: generator's sources.
SERVER_ADDRESS = IPv4Address("198.18.0.1")
PREFIX = 24


def inNamespace(namespace: str, *command: str) -> list[str]:
    return ["ip", "netns", "exec", namespace, *command]


#: The two namespaces as a network, once L{veth} has made them.
PAIR = Network(
    "veth",
    str(SERVER_ADDRESS),
    str(SERVER_ADDRESS + 1),
    tuple(inNamespace(SERVER_NAMESPACE)),
    tuple(inNamespace(GENERATOR_NAMESPACE)),
)

#: Per-namespace settings a new namespace starts with defaults for: each
#: takes the host's value, so that the servers meet the limits they meet
#: on loopback.
SYSCTLS = (
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_max_tw_buckets",
)


def cpuMask(cores: Iterable[int]) -> str:
    """
    The hexadecimal CPU mask of C{cores}, as C{rps_cpus} takes it: groups
    of 32 CPUs, eight digits each but the first, joined by commas.
    """
    digits = format(sum(1 << core for core in cores), "x")
    head = len(digits) % 8 or 8
    return ",".join(
        [digits[:head]] + [digits[i : i + 8] for i in range(head, len(digits), 8)]
    )


def writeFile(namespace: str, path: str, value: str) -> list[str]:
    """
    The command that writes C{value} to C{path} (under C{/proc/sys} or
    C{/sys}) as the namespace sees it.  C{ip netns exec} mounts the
    namespace's own C{/sys}; writing there from the host's would change the
    host's interfaces.
    """
    return inNamespace(
        namespace, "sh", "-c", 'printf "%s\\n" "$1" > "$2"', "-", value, path
    )


def setUp(serverCores: Iterable[int], generatorCores: Iterable[int]) -> list[list[str]]:
    """
    The commands that make the two namespaces and join them.
    """
    sides = (
        (SERVER_NAMESPACE, SERVER_END, cpuMask(serverCores), [SERVER_ADDRESS]),
        (
            GENERATOR_NAMESPACE,
            GENERATOR_END,
            cpuMask(generatorCores),
            [SERVER_ADDRESS + 1 + index for index in range(SOURCES)],
        ),
    )
    commands = [["ip", "netns", "add", namespace] for namespace, *_ in sides]
    pair = ("type", "veth", "peer", "name", GENERATOR_END, "netns", GENERATOR_NAMESPACE)
    commands.append(
        ["ip", "link", "add", "name", SERVER_END, "netns", SERVER_NAMESPACE, *pair]
    )
    for namespace, end, mask, addresses in sides:
        for address in addresses:
            commands.append(
                inNamespace(
                    namespace, "ip", "addr", "add", f"{address}/{PREFIX}", "dev", end
                )
            )
        for device in ("lo", end):
            commands.append(inNamespace(namespace, "ip", "link", "set", device, "up"))
        commands.append(
            writeFile(namespace, f"/sys/class/net/{end}/queues/rx-0/rps_cpus", mask)
        )
        for name in SYSCTLS:
            path = "/proc/sys/" + name.replace(".", "/")
            commands.append(writeFile(namespace, path, hostSetting(path)))
    return commands


def hostSetting(path: str) -> str:
    return " ".join(Path(path).read_text().split())


def tearDown() -> None:
    """
    Delete the namespaces (and with them the veth pair), if they exist, and
    any another run left behind when it was killed (its process is gone).
    """
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    for line in listed.stdout.splitlines():
        namespace = (line.split() or [""])[0]
        name, _, pid = namespace.rpartition("-")
        if name not in NAMESPACE_KINDS:
            continue
        if namespace in (SERVER_NAMESPACE, GENERATOR_NAMESPACE) or not alive(pid):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)


def alive(pid: str) -> bool:
    return pid.isdigit() and os.path.exists(f"/proc/{pid}")


def unavailable() -> str | None:
    """
    Why the veth pair cannot be made here, or C{None} if it can.
    """
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    if not shutil.which("ip"):
        return "no ip command (Debian's iproute2)"
    return None


@contextmanager
def veth(
    serverCores: Iterable[int], generatorCores: Iterable[int]
) -> Iterator[Network]:
    """
    Make the two namespaces, joined, for as long as the context lasts:
    L{PAIR}.

    @raise RuntimeError: A command that makes them failed.
    """
    tearDown()
    try:
        for command in setUp(serverCores, generatorCores):
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")
        yield PAIR
    finally:
        tearDown()
