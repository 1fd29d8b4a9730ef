"""
The systemd units in C{contrib/systemd}: valid for systemd, and agreeing
with greetd about the sockets they pass.
"""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from greetd.testing import TWISTD
from tests.integration.conftest import TIMEOUT, requireTool, runTwistd
from tests.integration.helpers import exchange

UNITS = Path(__file__).resolve().parents[2] / "contrib" / "systemd"

#: Where the shipped unit expects twistd (a virtualenv at /opt/twisted-greetd).
INSTALLED_TWISTD = "/opt/twisted-greetd/bin/twistd"


def setting(unit: str, key: str) -> list[str]:
    """
    Every value of C{key=} in C{unit}.
    """
    text = (UNITS / unit).read_text()
    return re.findall(rf"^{key}=(.*)$", text, re.MULTILINE)


def execStart() -> list[str]:
    [command] = setting("twisted-greetd.service", "ExecStart")
    return shlex.split(command)


def test_verify(tmp_path: Path) -> None:
    """
    C{systemd-analyze verify} accepts the units, with the ExecStart binary
    pointed at this checkout's twistd (verify checks that it exists, and
    nothing else of the unit is changed).
    """
    tool = requireTool("systemd-analyze")
    assert execStart()[0] == INSTALLED_TWISTD
    for unit in UNITS.iterdir():
        text = unit.read_text().replace(INSTALLED_TWISTD, TWISTD)
        (tmp_path / unit.name).write_text(text)
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == [
        "twisted-greetd-tcp.socket",
        "twisted-greetd-udp.socket",
        "twisted-greetd.service",
    ]
    result = subprocess.run(
        [tool, "verify", *names],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 4,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_socketNamesAgree() -> None:
    """
    Each socket unit's C{FileDescriptorName=} is a name ExecStart asks for,
    with the socket type greetd expects for it, and the service takes both.
    """
    command = " ".join(execStart())
    for unit, option, listen in [
        ("twisted-greetd-tcp.socket", "--tcp", "ListenStream"),
        ("twisted-greetd-udp.socket", "--udp", "ListenDatagram"),
    ]:
        [name] = setting(unit, "FileDescriptorName")
        assert setting(unit, listen) == ["9999"]
        assert setting(unit, "BindIPv6Only") == ["both"]
        assert f"{option} systemd:domain=INET6:name={name}" in command
        assert setting(unit, "Service") == ["twisted-greetd.service"]
    assert setting("twisted-greetd.service", "Sockets") == [
        "twisted-greetd-tcp.socket twisted-greetd-udp.socket"
    ]


def test_execStartOptionsParse(tmp_path: Path) -> None:
    """
    ExecStart's greetd options are valid: outside socket activation they
    get exactly the usage error for a socket that was not inherited.
    """
    arguments = execStart()
    greetdArguments = arguments[arguments.index("greetd") + 1 :]
    result = runTwistd(*greetdArguments, cwd=tmp_path)
    assert result.returncode == 1
    assert "no inherited socket is named 'greetd-tcp'" in result.stdout + result.stderr


def freeIPv6Port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET6, kind) as probe:
        try:
            probe.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback on this machine")
        return int(probe.getsockname()[1])


def test_execStartUnderActivation(spawnGreetd: Any, tmp_path: Path) -> None:
    """
    The unit's own ExecStart arguments, run as systemd would run them: both
    sockets inherited by name (two nested C{systemd-socket-activate}, the
    inner one passing the outer's socket on), C{NOTIFY_SOCKET} set.  greetd
    serves TCP and UDP, says C{READY=1}, and logs JSON.
    """
    tool = requireTool("systemd-socket-activate")
    tcpPort = freeIPv6Port(socket.SOCK_STREAM)
    udpPort = freeIPv6Port(socket.SOCK_DGRAM)
    notifyPath = str(tmp_path / "notify")
    arguments = execStart()
    twistdArgs = tuple(arguments[1 : arguments.index("greetd")])
    greetdArgs = arguments[arguments.index("greetd") + 1 :]
    setenv = f"--setenv=NOTIFY_SOCKET={notifyPath}"
    wrapper = (
        tool, "-l", f"[::1]:{tcpPort}", "--fdname=greetd-tcp", "--",
        tool, setenv, "--datagram", "-l", f"[::1]:{udpPort}",
        "--fdname=greetd-tcp:greetd-udp", "--",
    )  # fmt: skip
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(notifyPath)
        notify.settimeout(TIMEOUT)
        daemon = spawnGreetd(
            *greetdArgs,
            ephemeral=False,
            twistdArgs=twistdArgs[2:],  # spawnGreetd adds --nodaemon --pidfile=
            wrapper=wrapper,
            listeners=0,
        )
        # The outer activator starts the inner one on the first connection.
        daemon.waitFor(rf"Listening on \[::1\]:{tcpPort}")
        reply = exchange(socket.AF_INET6, ("::1", tcpPort), b"Michael")
        assert reply == b"WelcomeHello, Michael!"
        daemon.waitForListeners(2)
        assert daemon.tcp == [("::1", tcpPort)]
        assert daemon.udp == [("::1", udpPort)]
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as client:
            client.settimeout(TIMEOUT)
            client.sendto(b"Sarah", ("::1", udpPort))
            assert client.recv(1024) == b"Hello, Sarah!"
        message = notify.recv(4096)
        while message == b"WATCHDOG=1":
            message = notify.recv(4096)
        status = f"Serving TCP on [::1]:{tcpPort}, UDP on [::1]:{udpPort}"
        assert message == b"READY=1\nSTATUS=" + status.encode()
    daemon.waitFor(r'"greetdEvent": "connection\.close"')
    records = [json.loads(line) for line in daemon.lines if line.startswith("{")]
    assert [r["kind"] for r in records if r.get("greetdEvent") == "listen.ok"] == [
        "TCP",
        "UDP",
    ]
