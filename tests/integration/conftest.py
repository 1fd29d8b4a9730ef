"""
Fixtures that run the real daemon: C{twistd --nodaemon greetd} as a child
process on ephemeral loopback ports, its log read line by line.
"""

from __future__ import annotations

import os
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
    """
    daemons: list[Daemon] = []

    def start(
        *args: str, ephemeral: bool = True, twistdArgs: tuple[str, ...] = ()
    ) -> Daemon:
        if ephemeral:
            args = withEphemeralPorts(args)
        daemon = Daemon(twistdCommand(*args, twistdArgs=twistdArgs), tmp_path)
        daemons.append(daemon)
        daemon.waitForListeners(listenerCount(args))
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
