"""
C{make run} as a developer runs it on a fresh clone: into a virtualenv of
its own it installs what running greetd needs and nothing of the tests' or
the linters', and stopped as a terminal's Ctrl-C or a C{kill} of its
process group stops it, it says no error.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from pathlib import Path

from greetd.testing import Daemon
from tests.documents import PROJECT
from tests.integration.conftest import TIMEOUT
from tests.integration.helpers import INSTALL_TIMEOUT, freePort

#: What the tests and the linters need, which running greetd does not.
DEVELOPMENT_ONLY = {"pytest", "hypothesis", "build", "twine", "ruff", "mypy"}


def makeRun(venv: Path) -> Daemon:
    """
    C{make run} in a session of its own (its process group, as a terminal
    has), with C{venv} as its virtualenv, serving both services: its
    reactor runs (and handles signals), since it has greeted a client.
    """
    port = freePort()
    command = ["setsid", "make", "--no-print-directory", "run", f"VENV={venv}"]
    daemon = Daemon([*command, f"PORT={port}"], PROJECT)
    daemon.waitFor("Serving UDP", timeout=INSTALL_TIMEOUT)
    daemon.waitForListeners(2)
    assert daemon.tcp == daemon.udp == [("127.0.0.1", port)]
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
        assert client.recv(7) == b"Welcome"
    return daemon


def installed(venv: Path) -> set[str]:
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
        timeout=TIMEOUT * 4,
    ).stdout
    return {line.split("==")[0].lower() for line in listed.splitlines()}


def test_makeRun(tmp_path: Path) -> None:
    """
    C{make run} installs greetd, Twisted and TLS but no test tool or
    linter, and serves; Ctrl-C (SIGINT to its process group) and SIGTERM
    to the group each stop it without C{make: *** ...}.
    """
    venv = tmp_path / "venv"
    for sig in [signal.SIGINT, signal.SIGTERM]:
        daemon = makeRun(venv)
        os.killpg(daemon.process.pid, sig)
        # One signal, as a terminal or an operator sends it: stop() would
        # signal make again, and a second signal while make's handler for
        # the first reaps its children makes it fail ("wait: No child
        # processes").  Should it not stop, stop() signals again, kills it
        # and says so.
        with contextlib.suppress(subprocess.TimeoutExpired):
            daemon.process.wait(TIMEOUT)
        status = daemon.stop(sig)
        assert status in (0, -sig), daemon.output
        assert "Server Shut Down." in daemon.output
        assert "make: ***" not in daemon.output, daemon.output
    packages = installed(venv)
    assert {"greetd", "twisted", "prometheus_client", "pyopenssl"} <= packages
    assert packages & DEVELOPMENT_ONLY == set(), packages
