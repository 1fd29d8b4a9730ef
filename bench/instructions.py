"""
Instructions per connection of the churn path, greetd's beside plain
Twisted's, counted by valgrind: a figure a busy machine cannot blur, to
price a change to the connection's path before it lands.

    python -m bench.instructions [--connections N]

Each path (L{bench.micro.connection}: a transport on a socket pair, the
banner, C{exit}, the close) runs under C{valgrind --tool=callgrind} twice,
once with no connection and once with C{N}, and the difference over C{N}
is printed: what the interpreter executes in user space for one
connection, the kernel's work apart.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Sequence

#: The paths counted: greetd as C{twistd greetd} builds it, and plain
#: Twisted's protocol.
PATHS = ("greetd", "plain")


def run(path: str, count: int) -> None:
    """
    Make C{count} connections of C{path}, after a warm-up of 200.
    """
    from twisted.internet import tcp
    from twisted.internet.protocol import Factory

    from bench import micro
    from greetd.protocols.streamport import StreamServer

    reactor = micro.Reactor()
    with tempfile.TemporaryFile("w+") as logFile:
        servers = micro.greetdServers(reactor, logFile)
        if path == "greetd":
            factory, kind = servers.factory, StreamServer
        else:
            factory, kind = Factory.forProtocol(micro.PlainGreeting), tcp.Server
        for _ in range(200 + count):
            micro.connection(factory, reactor, kind)


def instructions(path: str, count: int) -> int:
    """
    What valgrind counts for a process that makes C{count} connections.
    """
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-m",
            "bench.instructions",
            "--run",
            path,
            "--connections",
            str(count),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"Collected : (\d+)", done.stderr)
    if match is None:
        raise RuntimeError(f"valgrind said no count: {done.stderr[-500:]}")
    return int(match.group(1))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.instructions", description=__doc__
    )
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--run", choices=PATHS, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.run:
        run(options.run, options.connections)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("python -m bench.instructions needs valgrind")
    for path in PATHS:
        base = instructions(path, 0)
        loaded = instructions(path, options.connections)
        perConnection = (loaded - base) // options.connections
        print(f"{perConnection:9,d}  instructions a connection, {path}")


if __name__ == "__main__":
    main()
