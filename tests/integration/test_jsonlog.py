"""
C{twistd greetd --log-format json}, or C{twistd --logger
greetd.ops.log.jsonLogger}, or greetd 0.1's deprecated C{twistd --logger
greetd.log.jsonLogger}: one JSON object per log line.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from greetd.testing import TWISTD
from tests.integration.conftest import TIMEOUT
from tests.integration.helpers import JSON_LOGGER, SEED_TCP_OUTPUT, runSeedClient

#: Each way of asking for JSON: greetd's arguments, twistd's arguments.
JSON_SPELLINGS = {
    "log-format": (("--log-format", "json"), ()),
    "logger": ((), JSON_LOGGER),
    "deprecated-logger": ((), ("--logger", "greetd.log.jsonLogger")),
}


@pytest.mark.parametrize("spelling", sorted(JSON_SPELLINGS))
def test_seedSessionToStdout(spawnGreetd: Any, spelling: str) -> None:
    """
    With C{--nodaemon}, every line on stdout is a JSON object; a seed
    client's session is one connection.open (at debug level) and one
    connection.close, the access log's line, with the peer's address and
    port, its figures and how it ended as fields, and no message text.
    greetd 0.1's logger name works, with a warning that it is deprecated.
    """
    greetdArgs, twistdArgs = JSON_SPELLINGS[spelling]
    daemon = spawnGreetd("--log-level", "debug", *greetdArgs, twistdArgs=twistdArgs)
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
    deprecations = [r for r in records if r.get("greetdEvent") == "log.deprecated"]
    assert len(deprecations) == (spelling == "deprecated-logger")
    for record in deprecations:
        assert record["level"] == "warn"
        assert "--log-format json" in record["text"]


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


@pytest.mark.parametrize("greetdArgs", [(), ("--log-format", "json")])
def test_daemonCannotLogToStdout(tmp_path: Path, greetdArgs: tuple[str, ...]) -> None:
    """
    A daemon told to log to standard output is refused by twistd's own
    logger, in twistd's words, in either format.
    """
    result = subprocess.run(
        [TWISTD, "--pidfile=", "--logfile", "-", "greetd", "--no-udp", *greetdArgs],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 1
    assert "Daemons cannot log to stdout, exiting!" in result.stderr
