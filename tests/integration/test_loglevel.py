"""
C{--log-level} and C{--version} against the real daemon.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

from greetd import __version__
from tests.integration.conftest import runTwistd
from tests.integration.helpers import JSON_LOGGER, loggedConversation
from twisted import copyright


def dropDatagram(daemon: Any) -> None:
    """
    Send a datagram longer than C{--max-length 4}: dropped, at debug level.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.sendto(b"far too long", daemon.udp[0])


def test_defaultHidesDebug(spawnGreetd: Any) -> None:
    """
    By default a dropped datagram is not logged, and each listener is
    announced once, by greetd, and its closing not at all.
    """
    daemon = spawnGreetd("--max-length", "4")
    dropDatagram(daemon)
    loggedConversation(daemon.tcp[0][1], "ok")
    daemon.waitFor("Connection from .* closed")
    daemon.stop()
    for kind, (_, port) in [("TCP", daemon.tcp[0]), ("UDP", daemon.udp[0])]:
        mentions = [line for line in daemon.lines if f":{port}" in line]
        assert [line.split("] ", 1)[1] for line in mentions] == [
            f"Serving {kind} on 127.0.0.1:{port}"
        ]
    assert not any(
        re.search("Dropped|starting on|Closed\\)", line) for line in daemon.lines
    )


def test_debugShowsAll(spawnGreetd: Any) -> None:
    """
    C{--log-level debug} shows dropped datagrams, and Twisted's own lines
    for ports, as debug lines (here in JSON).
    """
    daemon = spawnGreetd(
        "--max-length", "4", "--log-level", "debug", twistdArgs=JSON_LOGGER
    )
    dropDatagram(daemon)
    daemon.waitFor("Dropped a datagram from 127.0.0.1:\\d+: length")
    daemon.stop()
    records = [json.loads(line) for line in daemon.lines]
    for pattern in [
        "Dropped a datagram",
        "GreetingFactory starting on",
        "ReplyProtocol starting on",
        "\\(TCP Port \\d+ Closed\\)",
        "\\(UDP Port \\d+ Closed\\)",
    ]:
        [level] = [r["level"] for r in records if re.match(pattern, r["text"])]
        assert level == "debug", pattern


def test_warnHidesInfo(spawnGreetd: Any, tmp_path: Path) -> None:
    """
    C{--log-level warn} leaves out the info lines, connections among them,
    and keeps the warnings: here, a listener that cannot be bound.
    """
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runTwistd(
            "--log-level",
            "warn",
            "--tcp",
            f"tcp:{port}:interface=127.0.0.1",
            "--no-udp",
            cwd=tmp_path,
        )
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 1, lines
    assert f"Cannot listen for TCP on tcp:{port}" in lines[0]


def test_version(tmp_path: Path) -> None:
    result = runTwistd("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == f"greetd {__version__} (Twisted {copyright.version})\n"
