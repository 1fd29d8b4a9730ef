"""
How the real C{twistd greetd} ends when a listener fails: status 1, every
log line written, the pid file removed, whether the listener fails as the
daemon starts or later, in the foreground or daemonized.
"""

from __future__ import annotations

import os
import socket
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Iterator

import pytest

from greetd.testing import TIMEOUT, TWISTD, twistdCommand

#: A Twisted endpoint plugin, C{latefail:SECONDS}, whose listen fails that
#: many seconds later, the reactor running, as an endpoint that listens
#: asynchronously can.
LATE_FAILURE_PLUGIN = textwrap.dedent(
    """
    from twisted.internet.defer import Deferred
    from twisted.internet.error import CannotListenError
    from twisted.internet.interfaces import (
        IStreamServerEndpoint,
        IStreamServerEndpointStringParser,
    )
    from twisted.plugin import IPlugin
    from zope.interface import implementer


    @implementer(IStreamServerEndpoint)
    class LateFailure:
        def __init__(self, reactor, delay):
            self.reactor = reactor
            self.delay = delay

        def listen(self, factory):
            failing = Deferred()
            error = CannotListenError("", 0, OSError(98, "Address already in use"))
            self.reactor.callLater(self.delay, failing.errback, error)
            return failing


    @implementer(IPlugin, IStreamServerEndpointStringParser)
    class LateFailureParser:
        prefix = "latefail"

        def parseStreamServer(self, reactor, delay):
            return LateFailure(reactor, float(delay))


    parser = LateFailureParser()
    """
)


@pytest.fixture
def latePlugin(tmp_path: Path) -> dict[str, str]:
    """
    The environment under which twistd finds the C{latefail:} endpoint.
    """
    plugins = tmp_path / "plugins" / "twisted" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "greetd_test_latefail.py").write_text(LATE_FAILURE_PLUGIN)
    path = [str(tmp_path / "plugins"), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}


@pytest.fixture
def takenPort() -> Iterator[int]:
    """
    A loopback TCP port something else listens on.
    """
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_lateFailure(tmp_path: Path, latePlugin: dict[str, str]) -> None:
    """
    A listener that fails once the daemon runs (here after it has served
    for a moment) ends it with status 1, through twistd's usual shutdown:
    the failure logged, the log's last line twistd's own, the pid file
    removed, no traceback.
    """
    pidFile, logFile = tmp_path / "twistd.pid", tmp_path / "twistd.log"
    twistdArgs = ("--pidfile", str(pidFile), "--logfile", str(logFile))
    command = twistdCommand(
        "--tcp", "tcp:0:interface=127.0.0.1", "--tcp", "latefail:0.5", "--no-udp",
        twistdArgs=twistdArgs,
    )  # fmt: skip
    result = subprocess.run(
        command,
        cwd=tmp_path,
        env=latePlugin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 3,
    )
    log = logFile.read_text()
    assert result.returncode == 1, (result, log)
    assert "Traceback" not in log + result.stdout + result.stderr
    assert "Cannot listen for TCP on latefail:0.5: Address already in use" in log
    assert log.splitlines()[-1].endswith("Server Shut Down.")
    assert not pidFile.exists()


def test_lateFailureRunsEveryExitHook(
    tmp_path: Path, latePlugin: dict[str, str]
) -> None:
    """
    The exit with status 1 after a late failure runs every exit hook,
    those registered before greetd was imported too: here a
    C{sitecustomize}'s, as coverage.py's data save or C{logging.shutdown}
    are.
    """
    site, ran = tmp_path / "site", tmp_path / "hook-ran"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        textwrap.dedent(
            f"""
            import atexit

            def ran():
                with open({str(ran)!r}, "a") as hook:
                    hook.write("ran\\n")

            atexit.register(ran)
            """
        )
    )
    env = {**latePlugin, "PYTHONPATH": f"{site}{os.pathsep}{latePlugin['PYTHONPATH']}"}
    result = subprocess.run(
        twistdCommand("--tcp", "latefail:0.2", "--no-udp"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 3,
    )
    assert result.returncode == 1, result
    assert ran.read_text() == "ran\n"


def test_startupFailure(tmp_path: Path, takenPort: int) -> None:
    """
    A listener that fails as the daemon starts ends it with status 1 and
    one line, and its pid file removed.
    """
    pidFile = tmp_path / "twistd.pid"
    description = f"tcp:{takenPort}:interface=127.0.0.1"
    result = subprocess.run(
        twistdCommand(
            "--tcp", description, "--no-udp", twistdArgs=("--pidfile", str(pidFile))
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 3,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert f"Cannot listen for TCP on {description}" in result.stdout
    assert not pidFile.exists()


def test_startupFailureDaemonized(tmp_path: Path, takenPort: int) -> None:
    """
    Daemonized, the command that started twistd exits with status 1 and
    says what failed; the daemon's pid file is removed and its log names
    the reason.
    """
    pidFile, logFile = tmp_path / "twistd.pid", tmp_path / "twistd.log"
    description = f"tcp:{takenPort}:interface=127.0.0.1"
    command = [
        TWISTD, "--pidfile", str(pidFile), "--logfile", str(logFile),
        "greetd", "--tcp", description, "--no-udp",
    ]  # fmt: skip
    result = subprocess.run(
        command,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 3,
    )
    assert result.returncode == 1
    assert f"cannot listen for TCP on {description}" in result.stderr
    deadline = time.monotonic() + TIMEOUT
    while pidFile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pidFile.exists()
    assert f"Cannot listen for TCP on {description}" in logFile.read_text()
