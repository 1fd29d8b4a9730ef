"""
greetd embedded in a C{.tac} run by the real C{twistd -ny}: its services
log as their options say.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from greetd.testing import TWISTD, Daemon
from tests.integration.conftest import TIMEOUT

TAC = """
from twisted.application.service import Application

from greetd import Options, makeService

application = Application("my-app")
options = Options()
options.parseOptions({arguments!r})
makeService(options).setServiceParent(application)
"""


def runTac(tmp_path: Path, *arguments: str) -> Daemon:
    """
    Run a C{.tac} embedding greetd's services with C{arguments} and a TCP
    listener on a UNIX socket, greet once through it, and stop it.
    """
    path = tmp_path / "greetd.sock"
    tac = tmp_path / "app.tac"
    tac.write_text(
        TAC.format(arguments=["--tcp", f"unix:{path}", "--no-udp", *arguments])
    )
    daemon = Daemon([TWISTD, "-ny", str(tac), "--pidfile="], tmp_path)
    deadline = time.monotonic() + TIMEOUT
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(TIMEOUT)
        while client.connect_ex(str(path)) != 0:
            assert daemon.process.poll() is None, daemon.output
            assert time.monotonic() < deadline, "the .tac never listened"
            time.sleep(0.02)
        client.sendall(b"Ann\nexit\n")
        received = b""
        while chunk := client.recv(4096):
            received += chunk
    assert b"Hello, Ann!" in received
    daemon.stop()
    path.unlink(missing_ok=True)
    return daemon


def test_logLevel(tmp_path: Path) -> None:
    """
    C{--log-level warn} in a C{.tac} leaves out every line below warn: the
    connection's lines, greetd's and twistd's own info lines.  The same
    C{.tac} at C{debug} writes them, the open line among them.
    """
    debug = runTac(tmp_path, "--log-level", "debug")
    assert any(
        "[greetd.access#debug]" in line and "opened" in line for line in debug.lines
    )
    assert any("[greetd.access#info]" in line for line in debug.lines)
    warn = runTac(tmp_path, "--log-level", "warn")
    assert [line for line in warn.lines if "#debug]" in line or "#info]" in line] == []


@pytest.mark.parametrize("level", ["info", "debug"])
def test_logFormat(tmp_path: Path, level: str) -> None:
    """
    C{--log-format json} in a C{.tac}: every line is a JSON object, at the
    level and above.
    """
    daemon = runTac(tmp_path, "--log-format", "json", "--log-level", level)
    records = [json.loads(line) for line in daemon.lines]
    events = [record.get("greetdEvent") for record in records]
    assert "connection.close" in events
    assert ("connection.open" in events) == (level == "debug")
