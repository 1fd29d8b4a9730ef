"""
The real C{logrotate} against the real daemon writing its log: in its three
usual modes, several rotations each, no line is lost or duplicated and no
file holds a NUL byte.
"""

from __future__ import annotations

import os
import re
import subprocess
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from greetd.testing import logText
from tests.integration.conftest import TIMEOUT, requireTool
from tests.integration.helpers import (
    _CLOSED,
    closedPorts,
    loggedConversation,
    logLines,
    readLog,
    series,
    startLogging,
    waitForClosed,
    waitUntil,
)

#: The shipped recipe.
RECIPE = Path(__file__).parents[2] / "contrib" / "logrotate" / "twisted-greetd"

#: Rotations per test, and connections between two rotations.
ROTATIONS = 4
CONNECTIONS = 5

JSON_LOGGER = ("--logger", "greetd.ops.log.jsonLogger")

_OPENED = re.compile(r"Connection from 127\.0\.0\.1:(\d+) opened")


def signalMode(signal: str, create: bool) -> str:
    return (
        f"    {'create' if create else 'nocreate'}\n"
        "    postrotate\n"
        f'        kill -{signal} "$(cat {{pidfile}})"\n'
        "    endscript\n"
    )


def shippedRecipe(log: Path, pidfile: Path) -> str:
    """
    The shipped recipe for this test's log and pidfile, and the test's own
    user (which owns the files it creates) rather than greetd's.
    """
    recipe = RECIPE.read_text()
    for old, new in [
        ("/var/log/twisted-greetd/greetd.log", str(log)),
        ("/run/twisted-greetd/greetd.pid", str(pidfile)),
        ("create 0640 twisted-greetd adm", "create 0640"),
    ]:
        assert old in recipe
        recipe = recipe.replace(old, new)
    return recipe


MODES = {
    # logrotate moves the file and signals; greetd recreates it.
    "move-and-HUP": signalMode("HUP", create=False),
    # logrotate moves the file, creates a new one, and signals.
    "create-and-USR1": signalMode("USR1", create=True),
    # logrotate copies the file and truncates it; no signal.
    "copytruncate": "    copytruncate\n",
    # contrib/logrotate/twisted-greetd: create, compress, delaycompress, USR1.
    "shipped-recipe": "",
}


@pytest.mark.parametrize("logger", [(), JSON_LOGGER], ids=["text", "json"])
@pytest.mark.parametrize("mode", sorted(MODES))
def test_rotations(
    spawnGreetd: Any, tmp_path: Path, mode: str, logger: tuple[str, ...]
) -> None:
    """
    Rotated again and again while clients are served, the log loses no
    line, repeats none and holds no NUL byte, and after a rotation that
    signals, greetd writes to the new file, which has the mode of the one
    it replaces (or the recipe's C{create} mode), never the umask's.
    """
    rotateWhileServing(spawnGreetd, tmp_path, mode, logger)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_rotationsWithWorkers(spawnGreetd: Any, tmp_path: Path, mode: str) -> None:
    """
    With C{--workers 2}, each worker appending its own lines to the log
    file and reopening it when the parent forwards the signal, rotation
    loses no line and repeats none either.
    """
    rotateWhileServing(spawnGreetd, tmp_path, mode, (), workers=2)


def reloaded(log: Path, workers: int, reloads: int) -> bool:
    """
    Whether the pool has ended C{reloads} reloads, and every worker they
    replaced has exited.
    """
    lines = logLines(log)
    stopped = [line for line in lines if "Reload stopped" in line]
    assert not stopped, stopped
    ended = sum(f"Reloaded: {workers} workers" in line for line in lines)
    exited = sum("has drained and exited" in line for line in lines)
    return ended == reloads and exited == workers * reloads


def rotateWhileServing(
    spawnGreetd: Any,
    tmp_path: Path,
    mode: str,
    logger: tuple[str, ...],
    workers: int = 1,
) -> None:
    """
    Serve clients and rotate the log in C{mode} again and again, then check
    every file.
    """
    logrotate = requireTool("logrotate")
    pool = ("--workers", str(workers)) if workers > 1 else ()
    daemon, log, pidfile, port = startLogging(spawnGreetd, tmp_path, logger, *pool)
    # Each process that writes the log says it reopened it.
    writers = 1 + workers if pool else 1
    log.chmod(0o644)
    permissions = 0o640 if mode == "shipped-recipe" else 0o644
    config = tmp_path / "logrotate.conf"
    if mode == "shipped-recipe":
        config.write_text(shippedRecipe(log, pidfile))
    else:
        body = MODES[mode].format(pidfile=pidfile)
        config.write_text(f'"{log}" {{\n    rotate 20\n    missingok\n{body}}}\n')
    signals = "copytruncate" not in mode
    # SIGHUP also replaces a pool's workers.
    reloads = bool(pool) and "kill -HUP" in MODES[mode]
    ports: list[int] = []
    for rotation in range(ROTATIONS + 1):
        ports += [
            loggedConversation(port, f"R{rotation}C{n}") for n in range(CONNECTIONS)
        ]
        # Every line is in some file before the next rotation (copytruncate
        # loses what is written between its copy and its truncation).
        waitForClosed(daemon, log, len(ports))
        if rotation == ROTATIONS:
            break
        subprocess.run(
            [logrotate, "-f", "-s", str(tmp_path / "state"), str(config)],
            check=True,
            timeout=TIMEOUT,
            capture_output=True,
        )
        if signals:
            waitUntil(
                daemon,
                lambda: (
                    log.exists()
                    and log.read_bytes().count(b"Reopened the log file") == writers
                ),
                "reopen",
            )
        if reloads:
            # Let the reload the signal began end, and the workers it
            # replaced exit, before the next rotation: a signal during a
            # reload also reaches the replacement and the workers still
            # draining, which would each reopen the log too.
            waitUntil(daemon, partial(reloaded, log, workers, rotation + 1), "reload")
        assert log.stat().st_mode & 0o777 == permissions, oct(log.stat().st_mode)
    daemon.stop()
    assert daemon.output == ""
    parts = series(log)
    assert len(parts) == ROTATIONS + 1, parts
    for part in parts:
        content = readLog(part)
        assert b"\0" not in content, part
        assert content == b"" or content.endswith(b"\n"), part
    lines = logLines(log)
    opened = [int(m.group(1)) for m in map(_OPENED.search, lines) if m]
    assert sorted(opened) == sorted(closedPorts(log)) == sorted(ports)
    assert len(set(ports)) == len(ports)
    if signals:
        # Each file after the first holds exactly the connections made
        # after its rotation's reopen, and begins by saying so.
        for rotation, part in enumerate(parts[1:]):
            text = [logText(line) for line in readLog(part).decode().splitlines()]
            assert "Reopened the log file" in text[0], text[0]
            served = [int(m.group(1)) for m in map(_CLOSED.search, text) if m]
            first = (rotation + 1) * CONNECTIONS
            # Workers' batches may come in any order.
            assert sorted(served) == sorted(ports[first : first + CONNECTIONS])
    assert os.path.exists(log)
