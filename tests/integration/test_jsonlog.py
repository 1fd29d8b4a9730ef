"""
C{twistd --logger greetd.ops.log.jsonLogger}: one JSON object per log line.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.integration.conftest import TIMEOUT
from tests.integration.test_seed import SEED_TCP_OUTPUT, runSeedClient

JSON_LOGGER = ("--logger", "greetd.ops.log.jsonLogger")


def test_seedSessionToStdout(spawnGreetd: Any) -> None:
    """
    With C{--nodaemon}, every line on stdout is a JSON object; a seed
    client's session is one connection.open (at debug level) and one
    connection.close, the access log's line, with the peer's address and
    port, its figures and how it ended as fields, and no message text.
    """
    daemon = spawnGreetd("--log-level", "debug", twistdArgs=JSON_LOGGER)
    assert runSeedClient("tcp_client", daemon.tcp[0][1]) == SEED_TCP_OUTPUT
    daemon.waitFor(r'"greetdEvent": "connection\.close"')
    daemon.stop()
    records = [json.loads(line) for line in daemon.lines]
    assert all(
        {"timestamp", "level", "namespace", "text"} <= set(record) for record in records
    )
    sessions = [
        record
        for record in records
        if record.get("greetdEvent") in ("connection.open", "connection.close")
    ]
    opened, closed = sessions
    assert opened["greetdEvent"] == "connection.open"
    assert closed["greetdEvent"] == "connection.close"
    assert (opened["level"], closed["level"]) == ("debug", "info")
    assert closed["ended"] == "exit"
    for record in sessions:
        assert record["namespace"] == "greetd.access"
        assert record["peerHost"] == "127.0.0.1"
        assert record["peer"] == f"127.0.0.1:{opened['peerPort']}"
    assert closed["peerPort"] == opened["peerPort"] > 0
    assert (closed["messages"], closed["bytesReceived"], closed["bytesSent"]) == (
        3,
        21,
        48,
    )
    assert not any("Michael" in line for line in daemon.lines)


def test_logFile(spawnGreetd: Any, tmp_path: Path) -> None:
    """
    With C{--logfile}, the JSON lines go to the file, as twistd's own would.
    """
    path = tmp_path / "greetd.log"
    daemon = spawnGreetd(
        "--no-udp", twistdArgs=(*JSON_LOGGER, f"--logfile={path}"), listeners=0
    )
    deadline = time.monotonic() + TIMEOUT
    while '"listen.ok"' not in (path.read_text() if path.exists() else ""):
        assert time.monotonic() < deadline, "greetd logged no listener"
        assert daemon.process.poll() is None, daemon.output
        time.sleep(0.05)
    daemon.stop()
    assert daemon.output == ""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    [serving] = [r for r in records if r.get("greetdEvent") == "listen.ok"]
    assert serving["kind"] == "TCP"
    assert records[-1]["text"] == "Server Shut Down."
