"""
The benchmark's load generator (C{bench/loadgen.c}) against the C peer
(C{bench/peers/c_epoll.c}), both compiled with the machine's C compiler as
C{bench/run.py} compiles them: each timed mode prints one JSON line per
window with the figures C{bench/run.py} reads, and loses nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.integration.conftest import TIMEOUT, requireTool

PROJECT = Path(__file__).resolve().parents[2]

#: What bench/run.py reads from each window's line.
FIELDS = {
    "mode",
    "round",
    "seconds",
    "count",
    "rate",
    "p50_us",
    "p99_us",
    "errors",
    "wrong",
    "resets",
    "generator_cpu",
    "watched_cpu_seconds",
    "watched_first_cpu_seconds",
}


def compiled(source: Path, where: Path) -> Path:
    binary = where / source.stem
    subprocess.run(
        [requireTool("cc"), "-O2", "-Wall", "-o", str(binary), str(source)],
        check=True,
        timeout=TIMEOUT * 4,
    )
    return binary


#: The compiled load generator, and the C peer's TCP port, UDP port and pid.
Peer = tuple[Path, int, int, int]


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    """
    The compiled load generator, and the C peer serving: its TCP and UDP
    ports and its process id.
    """
    where = tmp_path_factory.mktemp("loadgen")
    loadgen = compiled(PROJECT / "bench" / "loadgen.c", where)
    server = compiled(PROJECT / "bench" / "peers" / "c_epoll.c", where)
    process = subprocess.Popen(
        [str(server), "--port", "0", "--udp-port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        ports = [int(process.stdout.readline().rsplit(":", 1)[1]) for _ in range(2)]
        yield loadgen, ports[0], ports[1], process.pid
    finally:
        process.kill()
        process.wait(TIMEOUT)


def run(loadgen: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(loadgen), *arguments], capture_output=True, text=True, timeout=TIMEOUT * 2
    )


def windows(peer: Peer, mode: str, *options: str) -> list[Any]:
    """
    Two short windows of C{mode} against the peer, as JSON.
    """
    loadgen, tcp, udp, pid = peer
    port = udp if mode == "udp" else tcp
    done = run(
        loadgen, mode, "--port", str(port), "--warmup", "0.2", "--duration", "0.4",
        "--rounds", "2", "--watch", str(pid), *options,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.mark.parametrize(
    "mode, options",
    [
        ("pingpong", ("--io", "uring")),
        ("pingpong", ("--io", "epoll")),
        ("pingpong", ("--io", "uring", "--connections", "1")),
        ("pingpong", ("--io", "uring", "--rate", "2000")),
        ("pingpong", ("--io", "epoll", "--rate", "2000")),
        ("churn", ()),
        ("churn", ("--rate", "500")),
        ("udp", ()),
        ("udp", ("--rate", "2000")),
    ],
)
def test_windows(peer: Peer, mode: str, options: tuple[str, ...]) -> None:
    """
    Each window's line has every figure bench/run.py reads; operations were
    done, none failed and no reply was wrong.
    """
    reports = windows(peer, mode, *options)
    assert [report["round"] for report in reports] == [1, 2]
    for report in reports:
        assert set(report) >= FIELDS, report
        assert report["mode"] == mode
        assert report["count"] > 0
        assert report["errors"] == report["wrong"] == report["resets"] == 0, report
        if "--rate" in options:
            assert report["rate"] <= float(options[options.index("--rate") + 1]) * 1.1


def test_unknownEngine(peer: Peer) -> None:
    """
    C{--io} is C{uring} or C{epoll}; anything else is refused at once.
    """
    loadgen, tcp, _, _ = peer
    done = run(loadgen, "pingpong", "--port", str(tcp), "--io", "poll")
    assert done.returncode == 2
    assert "--io is uring or epoll" in done.stderr


def test_cores(peer: Peer) -> None:
    """
    C{--cores} gives each listed core's busy share of every window, a share
    of one, and null for a core the machine does not have; the addresses
    C{bench/run.py} passes on loopback are the defaults.
    """
    absent = str(os.cpu_count() or 1)
    options = ["--host", "127.0.0.1", "--source", "127.0.0.2", "--sources", "32"]
    for report in windows(peer, "churn", "--cores", f"0,{absent}", *options):
        assert report["count"] > 0
        assert set(report["cores_busy"]) == {"0", absent}
        assert 0 <= report["cores_busy"]["0"] <= 1
        assert report["cores_busy"][absent] is None


@pytest.mark.parametrize(
    "option, value",
    [
        ("--cores", "x"),
        ("--cores", "0,"),
        ("--cores", "0,,1"),
        ("--cores", "-1"),
        ("--watch", "1;2"),
        ("--host", "localhost"),
        ("--source", "300.0.0.1"),
    ],
)
def test_badOption(peer: Peer, option: str, value: str) -> None:
    """
    A list that is not numbers and commas, or an address that is not IPv4,
    is refused at once, naming the option.
    """
    loadgen, tcp, _, _ = peer
    done = run(loadgen, "churn", "--port", str(tcp), option, value)
    assert done.returncode == 2
    assert option in done.stderr
