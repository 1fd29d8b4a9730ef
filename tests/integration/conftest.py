"""
Fixtures that run the real daemon: C{twistd --nodaemon greetd} as a child
process on ephemeral loopback ports, its log read line by line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from greetd.testing import (
    TIMEOUT,
    Daemon,
    listenerCount,
    twistdCommand,
    withEphemeralPorts,
)

__all__ = ["TIMEOUT", "Daemon", "requireTool", "runTwistd", "spawnGreetd"]


@pytest.fixture
def spawnGreetd(tmp_path: Path) -> Iterator[object]:
    """
    Start daemons: C{spawnGreetd(*args)} runs C{twistd greetd *args} and
    returns the L{Daemon} once every listener is up; all are stopped when the
    test ends.  Services C{args} do not place listen on ephemeral loopback
    ports, unless C{ephemeral=False} leaves greetd's own defaults.
    C{env} adds to the daemon's environment, C{wrapper} is a command that
    runs twistd (C{systemd-socket-activate ...}), C{cwd} replaces the test's
    temporary directory, and C{listeners} says how many listeners to wait
    for (0: return at once).
    """
    daemons: list[Daemon] = []

    def start(
        *args: str,
        ephemeral: bool = True,
        twistdArgs: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        wrapper: tuple[str, ...] = (),
        cwd: Path = tmp_path,
        listeners: int | None = None,
    ) -> Daemon:
        if ephemeral:
            args = withEphemeralPorts(args)
        command = [*wrapper, *twistdCommand(*args, twistdArgs=twistdArgs)]
        daemon = Daemon(command, cwd, None if env is None else {**os.environ, **env})
        daemons.append(daemon)
        daemon.waitForListeners(listenerCount(args) if listeners is None else listeners)
        return daemon

    yield start
    for daemon in daemons:
        daemon.stop()


def runTwistd(
    *args: str, cwd: Path, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """
    Run C{twistd greetd *args} to completion (for ones that must fail).
    """
    return subprocess.run(
        twistdCommand(*args),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def requireTool(name: str) -> str:
    """
    The path of the outside tool C{name}, which C{make test} installs.  A
    developer without it gets a skip saying so; CI (C{CI=true}) fails.
    """
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        message = f"{name} is not installed (make test installs it as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def contribWithPorts(
    path: Path, directives: str, frontend: int, backends: list[int]
) -> str:
    """
    A shipped recipe (C{contrib/...}) with its example addresses replaced:
    C{127.0.0.1:9999} by C{frontend}, C{127.0.0.1:10001} and C{10002} by
    the two C{backends}.  Each example must stand in a line starting with
    one of C{directives} (a regular expression), so the test runs the file
    as shipped, not a copy drifting from it.
    """
    text = path.read_text()
    ports = {
        "127.0.0.1:9999": frontend,
        "127.0.0.1:10001": backends[0],
        "127.0.0.1:10002": backends[1],
    }
    for example, port in ports.items():
        pattern = rf"^(\s+(?:{directives}) ){re.escape(example)}\b"
        assert re.search(pattern, text, re.MULTILINE), example
        text = re.sub(pattern, rf"\g<1>127.0.0.1:{port}", text, flags=re.MULTILINE)
    return text
