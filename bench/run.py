"""
Measure greetd against its peers: the seed tutorial's threaded server, an
asyncio Protocol server, the same on uvloop, a minimal plain Twisted server
and a C epoll server, one at a time, driven by the same C load generator in
the same run.

    python -m bench.run [--quick] [--only WORKLOAD] [--repeats N]
        [--network loopback|veth]

The servers and the generator meet on loopback, where the kernel runs each
packet's receipt in the thread that sent it: the generator runs the
server's receipts, and the C server's are enough to take all of its core.
So the C server is measured again (C{c-veth}) across a veth pair between
two network namespaces, each end's receipts steered to its own side's
cores (L{bench.netns}), as on two hosts; that needs root, and is skipped
with a note without it.  C{--network veth} measures every server that way.

Workloads: TCP ping-pong of C{Michael\\n} / C{Hello, Michael!\\n} over 1 and
50 connections (replies/s, p50/p99 latency), connection churn (connect, read
the banner, send C{exit}, wait for the close: connections/s), UDP ping-pong
over 20 flows (replies/s), and 10,000 idle connections held (server RSS
growth per connection).

The load generator runs pinned to core 0 and each server to the other cores,
so that neither takes the other's core.  Each server is started fresh and
warmed up, then measured; the whole sequence of servers is repeated
C{--repeats} times and each figure is the median over the passes, so a burst
of other work on the machine lands on every server alike rather than on one.

Beside each throughput: the server's CPU time per operation (user + system
of the server and every process under it, from C{/proc}, over the measured
window), which other work on a shared machine disturbs far less than
throughput, and the generator's own share of its core.  A throughput whose
generator used L{FLOOR} or more of its core, or whose generator's core was
that busy (with its receipts, or other work), is the generator's ceiling
as much as the server's: the tables mark it as a floor, and a target it
decides is judged on CPU per operation instead.
greetd runs as C{twistd greetd} under every interpreter given (CPython's
venv and, when it exists, C{.venv-pypy3}).

greetd runs as users run it: the default logging on and every limit in
force, set high enough not to refuse the load; a second greetd per
interpreter, with its logging off, measures churn only, to price the
logging, and a third, on Twisted's epoll reactor rather than greetd's
(C{twistd --reactor=epoll}), measures every figure a target names, to
price the reactor.  A worker pool (C{--workers 2}, CPython) is judged
against one process on the same reactor at one offered rate, a share
(L{POOL_PACE}) of the one process's most in the same pass: each is measured
at that rate right after its window at its most, since CPU per operation
falls as the rate rises.

Writes C{bench/results/latest.json} (every pass's figures), C{latest.rst}
(the tables the documentation includes) and C{latest.png}, and keeps each
run's JSON in C{bench/results/runs/}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

from bench.netns import LOOPBACK, PAIR, Network, unavailable, veth
from bench.report import (
    POOL_PACE,
    POOL_WORKLOADS,
    aboutRun,
    chart,
    checkLine,
    describe,
    isFloor,
    networkName,
    paced,
    ratios,
    tables,
    targets,
)
from bench.soak import rss
from greetd.testing import Daemon, twistdCommand

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "bench"
RESULTS = HERE / "results"

#: Every workload, in the order each server runs them.  Idle comes last: the
#: seed's server takes a minute or more (GIL contention among 10,000
#: threads) to get over 10,000 connections closing at once, and would serve
#: nothing in any workload after it.
WORKLOADS = ("tcp1", "tcp50", "udp20", "churn", "idle")

#: greetd as users run it: the default logging on, every limit in force,
#: set high enough that the generator is not refused (never off).
GREETD_LIMITS = (
    "--framing",
    "line",
    "--rate-per-ip",
    "1000000",
    "--max-per-ip",
    "100000",
    "--max-connections",
    "100000",
    "--udp-rate",
    "10000000",
    "--udp-global-rate",
    "10000000",
)


def greetdArgs(host: str) -> tuple[str, ...]:
    """
    greetd's options: listening on C{host}, with L{GREETD_LIMITS}.
    """
    return (
        "--tcp",
        f"tcp:0:interface={host}:backlog=4096",
        "--udp",
        f"udp:0:interface={host}",
        *GREETD_LIMITS,
    )


#: What turns greetd's per-connection logging (the access log) off, for the
#: "logging off" churn figure that prices the logging.
QUIET_ARGS = ("--no-access-log",)

#: What runs greetd on Twisted's epoll reactor instead of its own.
EPOLL_ARGS = ("--reactor=epoll",)

#: The Python peers: key, label, module under bench.peers.
PYTHON_PEERS = (
    ("uvloop", "uvloop", "uvloop_server"),
    ("asyncio", "asyncio Protocol", "asyncio_server"),
    ("twisted", "plain Twisted", "twisted_plain"),
    ("seed", "seed threads", "seed_threads"),
)

#: Worker processes for greetd's --workers figure.
WORKERS = 2

#: The loadgen's core; the servers may use every core.
GENERATOR_CORE = 0


@dataclass
class Timing:
    """
    How long each phase runs, in seconds.
    """

    serverWarmup: float
    warmup: float
    duration: float
    idle: int

    def loadgenTimeout(self) -> float:
        return self.warmup + self.duration + 60


FULL = Timing(serverWarmup=5.0, warmup=1.0, duration=4.0, idle=10000)
QUICK = Timing(serverWarmup=2.0, warmup=0.5, duration=1.0, idle=10000)


@dataclass
class Server:
    """
    A server to measure: a key for the results, a label for people, and
    the command that starts it listening on ephemeral ports.
    """

    key: str
    label: str
    command: list[str]
    greetd: bool = False
    version: dict[str, str] = field(default_factory=dict)
    skip: tuple[str, ...] = ()
    #: Whether it meets the generator across the veth pair whatever the
    #: run's network (C{--network}).
    acrossPair: bool = False
    #: The key of the server whose most, in the same pass, sets the rate
    #: of this one's windows at a pool's one rate (L{POOL_PACE}): its own
    #: for the one process a pool is judged against, that one's for the
    #: pool; empty for neither.
    pace: str = ""


def compileC(source: Path, where: Path) -> Path:
    """
    Compile C{source} with the machine's C compiler into C{where}.
    """
    compiler = os.environ.get("CC") or shutil.which("cc") or "gcc"
    binary = where / source.stem
    subprocess.run(
        [compiler, "-O2", "-Wall", "-o", str(binary), str(source)], check=True
    )
    return binary


def raiseOwnFileLimit() -> None:
    """
    Raise the soft open-file limit to the hard one; the servers and the
    load generator inherit it (10,000 idle connections need it).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def interpreterVersion(python: str) -> dict[str, str]:
    """
    The implementation and versions of C{python} and its Twisted.
    """
    script = (
        "import json, platform, sys, twisted; print(json.dumps({"
        "'implementation': platform.python_implementation(), "
        "'python': platform.python_version(), "
        "'pypy': '.'.join(map(str, getattr(sys, 'pypy_version_info', ())[:3])), "
        "'twisted': twisted.__version__}))"
    )
    output = subprocess.run(
        [python, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    version: dict[str, str] = json.loads(output)
    return version


def onlyWorkloads(*kept: str) -> tuple[str, ...]:
    """
    The workloads a server skips to run only C{kept}.
    """
    return tuple(workload for workload in WORKLOADS if workload not in kept)


def greetdServers(specs: Sequence[str], host: str) -> tuple[list[Server], list[str]]:
    """
    The greetd servers to measure, listening on C{host}, from C{NAME=TWISTD}
    specs or the default venvs, and notes on those skipped.
    """
    notes = []
    if not specs:
        specs = [f"cpython={Path(sys.executable).with_name('twistd')}"]
        pypy = ROOT / ".venv-pypy3" / "bin" / "twistd"
        if pypy.exists():
            specs.append(f"pypy={pypy}")
        else:
            notes.append(
                "greetd on PyPy skipped: no .venv-pypy3 "
                "(make install PYTHON=pypy3 creates it)"
            )
    servers = []
    for spec in specs:
        name, _, twistd = spec.partition("=")
        if not Path(twistd).exists():
            notes.append(f"greetd {name} skipped: {twistd} does not exist")
            continue
        args = greetdArgs(host)
        command = [twistd, *twistdCommand(*args)[1:]]
        version = interpreterVersion(str(Path(twistd).with_name("python")))
        label = f"greetd {version['implementation']}"
        single = Server(f"greetd-{name}", label, command, True, version)
        servers.append(single)
        servers.append(
            Server(
                f"greetd-{name}-quiet",
                f"{label}, no access log",
                [*command, *QUIET_ARGS],
                True,
                version,
                skip=onlyWorkloads("churn"),
            )
        )
        # Twisted's own epoll reactor rather than greetd's (twistd
        # --reactor=epoll): what greetd's reactor is worth, in the same run.
        epoll = [twistd, *twistdCommand(*args, twistdArgs=EPOLL_ARGS)[1:]]
        singleEpoll = Server(
            f"greetd-{name}-epoll",
            f"{label}, Twisted's epoll",
            epoll,
            True,
            version,
            skip=onlyWorkloads("tcp50", "churn", "udp20"),
        )
        servers.append(singleEpoll)
        if name == "cpython":
            # --workers: the parent holds the sockets and N workers serve
            # them.  The pool's CPU is the parent's and the workers'; the
            # parent's RSS says nothing of the workers', so the idle figure
            # is left out.  Each pool and its one process are also measured
            # at one rate (POOL_PACE), set by the one process.
            for reactor, base, one in (
                ("", command, single),
                (", Twisted's epoll", epoll, singleEpoll),
            ):
                one.pace = one.key
                servers.append(
                    Server(
                        f"greetd-{name}-workers{WORKERS}{'-epoll' if reactor else ''}",
                        f"{label}, {WORKERS} workers{reactor}",
                        [*base, "--workers", str(WORKERS)],
                        True,
                        version,
                        skip=("idle",)
                        if not reactor
                        else onlyWorkloads(*POOL_WORKLOADS),
                        pace=one.key,
                    )
                )
    return servers, notes


def unpaceAlone(servers: Sequence[Server]) -> None:
    """
    Measure the one process a pool is judged against at one rate
    (L{Server.pace}) only beside that pool: not when C{--servers} left the
    pool out.
    """
    pacing = {server.pace for server in servers if server.pace != server.key}
    for server in servers:
        if server.pace not in pacing:
            server.pace = ""


def peerServers(cPeer: Path, network: Network, pair: Network | None) -> list[Server]:
    """
    The peers on C{network}: the C server, then the Python ones on this
    interpreter; and the C server again across the veth C{pair}, if there
    is one.
    """
    ports = ["--port", "0", "--udp-port", "0"]
    servers = [
        Server("c", "C epoll", [str(cPeer), "--host", network.host, *ports]),
    ]
    if pair is not None:
        command = [str(cPeer), "--host", pair.host, *ports]
        servers.append(
            Server(
                "c-veth",
                "C epoll, veth pair",
                command,
                skip=("idle",),
                acrossPair=True,
            )
        )
    ports = ["--host", network.host, *ports]
    for key, label, module in PYTHON_PEERS:
        command = [sys.executable, "-m", f"bench.peers.{module}", *ports]
        servers.append(Server(key, label, command))
    return servers


def coreIrqSeconds(core: int) -> float:
    """
    Seconds core C{core} has spent in interrupts and softirqs.
    """
    with open("/proc/stat") as stat:
        for line in stat:
            if line.startswith(f"cpu{core} "):
                fields = line.split()
                return (int(fields[6]) + int(fields[7])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def processTree(pid: int) -> list[int]:
    """
    Process C{pid} and every process under it (a pool's workers), from
    C{/proc}: the processes whose CPU is the server's.
    """
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        try:
            threads = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for thread in threads:
            try:
                with open(f"/proc/{current}/task/{thread}/children") as children:
                    queue.extend(int(child) for child in children.read().split())
            except OSError:
                continue
    return found


def coresBusy(shares: dict[str, float | None]) -> tuple[float, float]:
    """
    How busy each side's cores were over a window, softirqs and other work
    included, from the generator's C{cores_busy}: the generator's core, for
    the floor rule, and the servers' busiest.

    @raise RuntimeError: A core's share is missing (its ticks were not
        read), which would hide a floor.
    """
    busy: dict[int, float] = {}
    for core in measuredCores():
        share = shares.get(str(core))
        if share is None:
            raise RuntimeError(f"no busy share for core {core} from /proc/stat")
        busy[core] = share
    return busy[GENERATOR_CORE], max(busy[core] for core in serverCores())


def measuredCores() -> list[int]:
    """
    The cores whose busy share each window reports (C{loadgen --cores}):
    the generator's and the servers'.
    """
    return sorted({GENERATOR_CORE, *serverCores()})


def serverCores() -> list[int]:
    """
    The cores the servers run on: every core but the generator's, or every
    core (unpinned) on a machine with one core.
    """
    # PyPy 3.9, which runs this module's tests, has no sched_getaffinity.
    affinity = getattr(os, "sched_getaffinity", None)
    cores = set(affinity(0) if affinity else range(os.cpu_count() or 1))
    return sorted(cores - {GENERATOR_CORE} or cores)


def serverPinning() -> list[str]:
    """
    What runs a command on the servers' cores (L{serverCores}): nothing on
    a machine with one core, or without C{taskset}.
    """
    cores = serverCores()
    if cores == [GENERATOR_CORE] or not shutil.which("taskset"):
        return []
    return ["taskset", "-c", ",".join(map(str, cores))]


def pinned(command: list[str]) -> list[str]:
    """
    C{command} run on the servers' cores (L{serverCores}).
    """
    return [*serverPinning(), *command]


def cpuSeconds(pid: int) -> float:
    """
    User and system CPU seconds used by process C{pid}, every thread.
    """
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Bench:
    """
    One run: the compiled load generator, the timing, and the results.
    """

    def __init__(
        self,
        loadgen: Path,
        timing: Timing,
        workloads: Sequence[str],
        rates: dict[str, float] | None = None,
        network: Network = LOOPBACK,
        pair: Network | None = None,
    ):
        """
        @param network: Where the servers meet the generator.
        @param pair: The veth pair, for the servers measured across it
            whatever C{network} is (L{Server.acrossPair}).
        """
        self.loadgen = loadgen
        self.runNetwork, self.pair = network, pair
        # The network of the server being measured.
        self.network = network
        self.rates = rates or {}
        self.timing = timing
        self.workloads = workloads
        self.samples: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self.failures: list[str] = []
        # (server key, workload): the rate its pool and it are measured at
        # in this pass (POOL_PACE of its most).
        self.paces: dict[tuple[str, str], float] = {}

    def generator(self, mode: str, port: int, *options: str) -> list[str]:
        command = [str(self.loadgen), mode, "--port", str(port), *options]
        if shutil.which("taskset"):
            command = ["taskset", "-c", str(GENERATOR_CORE), *command]
        return self.network.generatorCommand(command)

    def drive(
        self,
        pid: int,
        mode: str,
        port: int,
        connections: int,
        seconds: float,
        rate: float = 0,
    ) -> dict[str, Any]:
        """
        Run the load generator for one window after its warm-up, and return
        its report with the server's CPU over the window (L{processTree}
        of C{pid}): a share of a core, and microseconds per operation.

        @param rate: Operations a second offered at most; 0 for as many as
            the server answers.
        """
        timing = self.timing
        watched = processTree(pid)
        command = self.generator(
            mode,
            port,
            "--connections",
            str(connections),
            "--warmup",
            str(timing.warmup),
            "--duration",
            str(seconds),
            "--rounds",
            "1",
            "--watch",
            ",".join(map(str, watched)),
            "--rate",
            str(rate),
        )
        command += ["--cores", ",".join(map(str, measuredCores()))]
        started = time.monotonic()
        irq = coreIrqSeconds(GENERATOR_CORE)
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timing.loadgenTimeout()
        )
        elapsed = time.monotonic() - started
        reports = [json.loads(line) for line in done.stdout.splitlines()]
        if done.returncode or not reports:
            raise RuntimeError(f"loadgen {mode} failed: {done.stderr.strip()}")
        report: dict[str, Any] = reports[-1]
        serverSeconds = report.pop("watched_cpu_seconds")
        report["server_cpu"] = round(serverSeconds / report["seconds"], 3)
        report["server_us_per_op"] = (
            round(serverSeconds / report["count"] * 1e6, 2) if report["count"] else 0
        )
        parent = report.pop("watched_first_cpu_seconds")
        if len(watched) > 1 and serverSeconds:
            report["parent_share"] = round(parent / serverSeconds, 3)
        irq = coreIrqSeconds(GENERATOR_CORE) - irq
        report["generator_core_irq"] = round(irq / elapsed, 3)
        generator, server = coresBusy(report.pop("cores_busy"))
        report["generator_core_busy"], report["server_busy"] = generator, server
        if rate:
            report["offered_rate"] = rate
            report["kept"] = round(report["rate"] / rate, 3)
        return report

    def windowAt(
        self, workload: str, pid: int, mode: str, port: int, connections: int
    ) -> dict[str, Any]:
        """
        One measured window of C{workload}, at its rate if one is set.
        """
        rate = self.rates.get(workload, 0)
        return self.drive(pid, mode, port, connections, self.duration, rate)

    def idle(self, pid: int, port: int) -> dict[str, Any]:
        """
        Hold C{timing.idle} connections (banner read) and measure how much
        the server's RSS grew per connection.
        """
        count = self.timing.idle
        before = rss(pid)
        generator = subprocess.Popen(
            self.generator("idle", port, "--connections", str(count), "--hold", "60"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert generator.stdin is not None and generator.stdout is not None
        try:
            report: dict[str, Any] = json.loads(generator.stdout.readline() or "{}")
            time.sleep(1.0)
            after = rss(pid)
        finally:
            generator.stdin.close()
            generator.wait(60)
        held = report.get("held", 0)
        if not held:
            raise RuntimeError("loadgen idle held no connection")
        report.update(
            rssBefore=before,
            rssAfter=after,
            count=round((after - before) / held),
            settleSeconds=settle(pid),
        )
        return report

    def measure(self, server: Server) -> None:
        """
        Start C{server}, warm it up, run each workload once, stop it.
        """
        self.network = self.networkFor(server)
        if server.greetd:
            # As greetd runs in production, logging to a file (or journald),
            # not into a pipe the benchmark would have to keep up with.
            logFile = Path(tempfile.mkdtemp(prefix="greetd-bench-log-")) / "greetd.log"
            command = [server.command[0], f"--logfile={logFile}", *server.command[1:]]
        else:
            logFile = None
            command = server.command
        daemon = Daemon(
            self.network.serverCommand(pinned(command)), ROOT, logFile=logFile
        )
        try:
            daemon.waitForListeners(2)
            (_, tcp), (_, udp) = daemon.tcp[0], daemon.udp[0]
            pid = daemon.process.pid
            warm = self.timing.serverWarmup
            self.drive(pid, "pingpong", tcp, 50, warm)
            self.drive(pid, "churn", tcp, 50, warm / 2)
            self.drive(pid, "udp", udp, 20, warm / 2)
            runs = {
                "tcp1": lambda: self.drive(pid, "pingpong", tcp, 1, self.duration),
                "tcp50": lambda: self.windowAt("tcp50", pid, "pingpong", tcp, 50),
                "udp20": lambda: self.windowAt("udp20", pid, "udp", udp, 20),
                "churn": lambda: self.windowAt("churn", pid, "churn", tcp, 50),
                "idle": lambda: self.idle(pid, tcp),
            }
            # The windows at a pool's one rate (POOL_PACE), each right after
            # the same workload at the server's most.
            atPace = {
                "tcp50": partial(self.drive, pid, "pingpong", tcp, 50, self.duration),
                "churn": partial(self.drive, pid, "churn", tcp, 50, self.duration),
            }
            if server.pace == server.key:
                for workload in atPace:
                    self.paces.pop((server.key, workload), None)
            for workload in WORKLOADS:
                if workload not in self.workloads or workload in server.skip:
                    continue
                report = self.record(server, workload, runs[workload])
                if workload not in atPace or workload in self.rates:
                    continue
                if report and server.pace == server.key:
                    self.paces[server.key, workload] = POOL_PACE * report["rate"]
                rate = self.paces.get((server.pace, workload))
                if rate:
                    window = partial(atPace[workload], round(rate))
                    self.record(server, paced(workload), window)
        finally:
            daemon.stop()
            if logFile is not None:
                shutil.rmtree(logFile.parent, ignore_errors=True)

    def networkFor(self, server: Server) -> Network:
        """
        Where C{server} meets the generator: across the pair if it is
        measured there (L{Server.acrossPair}), else the run's network.
        """
        if server.acrossPair and self.pair is not None:
            return self.pair
        return self.runNetwork

    def record(
        self, server: Server, workload: str, measure: Callable[[], dict[str, Any]]
    ) -> dict[str, Any] | None:
        """
        Run C{measure}, one window of C{server}'s C{workload}, keep its report
        and print it, and return it; or record its failure.
        """
        try:
            report = measure()
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            print(f"  {server.key:15} {workload:6} failed: {error}")
            self.failures.append(f"{server.key} {workload}: {error}")
            return None
        self.samples.setdefault(server.key, {}).setdefault(workload, []).append(report)
        print(f"  {server.key:15} {workload:6} {describe(workload, report)}")
        return report

    @property
    def duration(self) -> float:
        return self.timing.duration

    def summary(self) -> dict[str, dict[str, dict[str, Any]]]:
        """
        The median of each figure over the passes, with every sample kept.
        """
        figures: dict[str, dict[str, dict[str, Any]]] = {}
        for key, workloads in self.samples.items():
            for workload, reports in workloads.items():
                values = [report["count"] for report in reports]
                if workload != "idle":
                    values = [report["rate"] for report in reports]
                figure: dict[str, Any] = {
                    "value": statistics.median(values),
                    "samples": values,
                }
                for name in (
                    "p50_us",
                    "p99_us",
                    "generator_cpu",
                    "generator_core_irq",
                    "server_cpu",
                    "generator_core_busy",
                    "server_busy",
                    "server_us_per_op",
                    "parent_share",
                    "offered_rate",
                ):
                    if name in reports[0]:
                        figure[name] = statistics.median(r[name] for r in reports)
                if "kept" in reports[0]:
                    # The pass that fell furthest short of its rate.
                    figure["kept"] = min(r["kept"] for r in reports)
                if "generator_cpu" in figure:
                    figure["floor"] = isFloor(workload, figure)
                    figure["cpu_samples"] = [r["server_us_per_op"] for r in reports]
                figure["errors"] = sum(
                    r.get("errors", 0) + r.get("failed", 0) for r in reports
                )
                figure["wrong"] = sum(r.get("wrong", 0) for r in reports)
                figures.setdefault(key, {})[workload] = figure
        return figures


def settle(pid: int, timeout: float = 10.0) -> float:
    """
    Wait until process C{pid} is nearly idle (under a tenth of a core over
    half a second), at most C{timeout} seconds, and say how long it took: a
    server closing 10,000 connections may stay busy long after (the seed's
    threads do), which is worth knowing.
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        used = cpuSeconds(pid)
        time.sleep(0.5)
        if cpuSeconds(pid) - used < 0.05:
            break
    return round(time.monotonic() - started, 1)


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    with open("/proc/meminfo") as meminfo:
        memory = int(meminfo.readline().split()[1]) * 1024
    compiler = shutil.which("cc") or "cc"
    cc = subprocess.run([compiler, "--version"], capture_output=True, text=True)
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory": memory,
        "kernel": platform.release(),
        "platform": platform.platform(),
        "cc": cc.stdout.splitlines()[0] if cc.stdout else "",
        "loadavg": os.getloadavg(),
    }


def versions(servers: Sequence[Server]) -> dict[str, Any]:
    import twisted

    found: dict[str, Any] = {
        "python (peers)": platform.python_version(),
        "twisted (peers)": twisted.__version__,
    }
    try:
        import uvloop

        found["uvloop"] = uvloop.__version__
    except ImportError:
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    found["greetd commit"] = commit.stdout.strip()
    for server in servers:
        if server.greetd:
            found[server.key] = server.version
    return found


def parseArguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="one pass of short windows"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=WORKLOADS,
        help="run only this workload (repeatable)",
    )
    parser.add_argument(
        "--repeats", type=int, help="passes over every server (default 3, quick 1)"
    )
    parser.add_argument(
        "--greetd",
        action="append",
        default=[],
        metavar="NAME=TWISTD",
        help="measure greetd run by this twistd (repeatable; default: this "
        "venv's twistd, and .venv-pypy3's when it exists)",
    )
    parser.add_argument(
        "--servers",
        help="comma-separated keys of the servers to measure (default: all)",
    )
    parser.add_argument(
        "--rate",
        action="append",
        default=[],
        metavar="[WORKLOAD=]R",
        help="offer at most R operations a second in the tcp50, udp20 and "
        "churn windows (or in WORKLOAD's), so that every server's CPU per "
        "operation is measured at the same rate (repeatable)",
    )
    parser.add_argument(
        "--network",
        choices=("loopback", "veth"),
        default="loopback",
        help="where the servers and the generator meet: loopback, or two "
        "network namespaces joined by a veth pair, each end's receipts on its "
        "own side's cores (needs root; the C server is also measured so in "
        "either case, when it can be)",
    )
    parser.add_argument(
        "--rewrite",
        action="store_true",
        help="measure nothing: write the tables again from latest.json",
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS, help="where latest.json/png go"
    )
    return parser.parse_args(argv)


#: The workloads --rate applies to.
RATED = ("tcp50", "udp20", "churn")


def parseRates(specs: Sequence[str]) -> dict[str, float]:
    """
    The rate offered to each workload, from C{--rate} C{R} (every workload
    of L{RATED}) and C{WORKLOAD=R} (that one).
    """
    rates: dict[str, float] = {}
    for spec in specs:
        workload, _, rate = spec.rpartition("=")
        if workload and workload not in RATED:
            raise SystemExit(f"--rate: {workload} is not one of {', '.join(RATED)}")
        for name in [workload] if workload else RATED:
            rates[name] = float(rate)
    return rates


#: What each network is, for the report.
NETWORKS = {
    "loopback": "loopback: each packet's receipt runs in its sender's thread",
    "veth": "veth: two network namespaces joined by a veth pair, each end's "
    "receipts steered (RPS) to its side's cores",
}


def measured(servers: Sequence[Server], workloads: Sequence[str]) -> list[Server]:
    """
    The C{servers} that run any of C{workloads}: the others are not started.
    """
    return [
        server
        for server in servers
        if any(workload not in server.skip for workload in workloads)
    ]


def pairWanted(network: Network, servers: Sequence[Server]) -> bool:
    """
    Whether the run measures a server across the veth pair: every one on
    C{network} L{PAIR}, else those measured there whatever the network
    (L{Server.acrossPair}).
    """
    return network is PAIR or any(server.acrossPair for server in servers)


def vethPair(stack: ExitStack) -> str | None:
    """
    Make the veth pair (L{PAIR}) for as long as C{stack} lasts; or say why
    it cannot be made here.
    """
    why = unavailable()
    if why is None:
        try:
            stack.enter_context(veth(serverCores(), [GENERATOR_CORE]))
        except RuntimeError as error:
            why = str(error)
    return why


def chartTitle(report: dict[str, Any]) -> str:
    machine = report["machine"]
    return (
        f"greetd vs peers on {machine['cores']} cores ({machine['cpu']}), "
        f"{report['method']['passes']} passes, median; generator pinned to core "
        f"{GENERATOR_CORE}, {networkName(report)}, "
        f"load average {machine['loadavg'][0]:.1f}"
    )


def rewrite(output: Path) -> None:
    """
    Write C{latest.rst} and C{latest-about.rst} again from C{latest.json},
    measuring nothing: after a change to the tables' layout.
    """
    report = json.loads((output / "latest.json").read_text())
    servers = [
        Server(key, label, [], key.startswith("greetd"))
        for key, label in report["servers"].items()
    ]
    figures = report["results"]
    report["targets"] = targets(figures, servers)
    report["table"] = tables(figures, servers, report["targets"])
    (output / "latest.rst").write_text(report["table"] + "\n")
    (output / "latest-about.rst").write_text(aboutRun(report) + "\n")
    (output / "latest.json").write_text(json.dumps(report, indent=1) + "\n")
    chart(figures, servers, chartTitle(report), output / "latest.png")


def main(argv: Sequence[str] | None = None) -> None:
    options = parseArguments(sys.argv[1:] if argv is None else argv)
    if options.rewrite:
        rewrite(options.output)
        return
    timing = QUICK if options.quick else FULL
    repeats = options.repeats or (1 if options.quick else 3)
    workloads = tuple(options.only or WORKLOADS)
    raiseOwnFileLimit()
    # Stopped (a timeout, an operator's kill), unwind: the namespaces go.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    with ExitStack() as stack:
        where = stack.enter_context(tempfile.TemporaryDirectory(prefix="greetd-bench-"))
        network = PAIR if options.network == "veth" else LOOPBACK
        pair = None if network is PAIR else PAIR
        loadgen = compileC(HERE / "loadgen.c", Path(where))
        cPeer = compileC(HERE / "peers" / "c_epoll.c", Path(where))
        greetds, notes = greetdServers(options.greetd, network.host)
        servers = greetds + peerServers(cPeer, network, pair)
        if options.servers:
            keep = set(options.servers.split(","))
            servers = [server for server in servers if server.key in keep]
        servers = measured(servers, workloads)
        unpaceAlone(servers)
        why = vethPair(stack) if pairWanted(network, servers) else None
        if why is not None:
            if network is PAIR:
                raise SystemExit(f"--network veth: {why}")
            servers = [server for server in servers if not server.acrossPair]
            notes.append(
                f"no veth pair, so the C server is not measured across one: {why}"
            )
        for note in notes:
            print(f"note: {note}")
        bench = Bench(
            loadgen, timing, workloads, parseRates(options.rate), network, pair
        )
        started = time.time()
        about = machine()
        for number in range(repeats):
            print(f"pass {number + 1} of {repeats}")
            for server in servers:
                bench.measure(server)
    about["loadavg after"] = os.getloadavg()
    figures = bench.summary()
    checks = targets(figures, servers)
    text = tables(figures, servers, checks)
    print()
    print(text)
    print()
    for check in checks:
        print(checkLine(check))
    report = {
        "command": "python -m bench.run "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started),
        "machine": about,
        "versions": versions(servers),
        "method": {
            "generator": f"bench/loadgen.c, pinned to core {GENERATOR_CORE}",
            "servers": f"pinned to cores {serverPinning()[-1]}"
            if serverPinning()
            else "unpinned",
            "network": NETWORKS[network.name],
            "passes": repeats,
            "rates": parseRates(options.rate),
            "timing": timing.__dict__,
            "figure": "median over the passes; samples lists each pass",
            "noise": "other jobs share this machine; see loadavg",
        },
        "notes": notes,
        "failures": bench.failures,
        "servers": {server.key: server.label for server in servers},
        "results": figures,
        "ratios": ratios(figures, servers),
        "targets": checks,
        "table": text,
    }
    output: Path = options.output
    output.mkdir(parents=True, exist_ok=True)
    data = json.dumps(report, indent=1) + "\n"
    (output / "latest.json").write_text(data)
    runs = output / "runs"
    runs.mkdir(exist_ok=True)
    (runs / f"{report['started'].replace(':', '')}.json").write_text(data)
    (output / "latest.rst").write_text(text + "\n")
    (output / "latest-about.rst").write_text(aboutRun(report) + "\n")
    chart(figures, servers, chartTitle(report), output / "latest.png")
    print(
        f"\nwrote latest.json, latest.rst (the documentation's tables), latest.png "
        f"and runs/{report['started'].replace(':', '')}.json in {output}"
    )


if __name__ == "__main__":
    main()
