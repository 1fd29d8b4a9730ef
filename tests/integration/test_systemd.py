"""
The systemd units in C{contrib/systemd}: valid for systemd, and agreeing
with greetd about the sockets they pass.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from tests.integration.conftest import TIMEOUT, TWISTD, requireTool, runTwistd

UNITS = Path(__file__).resolve().parents[2] / "contrib" / "systemd"

#: Where the shipped unit expects twistd (a virtualenv at /opt/greetd).
INSTALLED_TWISTD = "/opt/greetd/bin/twistd"


def setting(unit: str, key: str) -> list[str]:
    """
    Every value of C{key=} in C{unit}.
    """
    text = (UNITS / unit).read_text()
    return re.findall(rf"^{key}=(.*)$", text, re.MULTILINE)


def execStart() -> list[str]:
    [command] = setting("greetd.service", "ExecStart")
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
    assert names == ["greetd-tcp.socket", "greetd-udp.socket", "greetd.service"]
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
        ("greetd-tcp.socket", "--tcp", "ListenStream"),
        ("greetd-udp.socket", "--udp", "ListenDatagram"),
    ]:
        [name] = setting(unit, "FileDescriptorName")
        assert setting(unit, listen) == ["9999"]
        assert setting(unit, "BindIPv6Only") == ["both"]
        assert f"{option} systemd:domain=INET6:name={name}" in command
        assert setting(unit, "Service") == ["greetd.service"]
    assert setting("greetd.service", "Sockets") == [
        "greetd-tcp.socket greetd-udp.socket"
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
