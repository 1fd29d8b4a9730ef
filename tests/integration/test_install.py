"""
The package installs into a fresh virtualenv, plain and editable, without a
warning from the build, and twistd finds the plugin either way.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from greetd.testing import TIMEOUT, Daemon
from tests.certificates import writeCredentials
from tests.integration.helpers import INSTALL_TIMEOUT

PROJECT = Path(__file__).resolve().parents[2]


#: A warning in pip's verbose output of a build: Python's warnings, which
#: pip passes on from the backend (C{SetuptoolsDeprecationWarning:},
#: C{BuildBackendWarning:}), setuptools' banners around them (C{!!}) and
#: its commands' own (C{warning: ...}).  pip's own C{WARNING:} lines are
#: about this machine's package index, not about greetd.
BUILD_WARNING = re.compile(r"Warning\b|\bwarning:|^\s*!!", re.MULTILINE)


def quietEnvironment() -> dict[str, str]:
    """
    This process's environment, without C{PYTHONDONTWRITEBYTECODE}: under
    it setuptools warns that it does not byte-compile, a warning about the
    caller's environment, not about greetd's packaging.
    """
    environment = dict(os.environ)
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    return environment


def buildWarnings(output: str) -> list[str]:
    """
    The lines of pip's verbose C{output} that are warnings of the build.
    """
    return [line for line in output.splitlines() if BUILD_WARNING.search(line)]


def freshVenv(where: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=120)
    return where / "bin"


def twistd(bin: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """
    Run the installed C{twistd greetd *args} to completion.
    """
    return subprocess.run(
        [str(bin / "twistd"), "greetd", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


@pytest.mark.parametrize(
    "installArgs",
    [
        pytest.param([str(PROJECT)], id="plain"),
        pytest.param(
            ["-e", str(PROJECT)],
            id="editable",
        ),
    ],
)
def test_installedPluginFound(tmp_path: Path, installArgs: list[str]) -> None:
    """
    The build says no warning, and after installing, C{twistd greetd
    --help} works from an unrelated directory, so the plugin is found on
    the installed path.
    """
    bin = freshVenv(tmp_path / "venv")
    installed = subprocess.run(
        [str(bin / "python"), "-m", "pip", "install", "--verbose", *installArgs],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        cwd=tmp_path,
        env=quietEnvironment(),
    )
    output = installed.stdout + installed.stderr
    assert installed.returncode == 0, output
    assert "Running command Building" in output, output
    assert buildWarnings(output) == [], output
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = twistd(bin, elsewhere, "--help")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Usage: twistd [options] greetd [options]" in result.stdout
    assert "--max-length=" in result.stdout
    # TLS is an extra: without it, ssl: says what to install.
    result = twistd(bin, elsewhere, "--tcp", "ssl:0:privateKey=key.pem")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "pip install 'greetd[tls]'" in result.stderr


def test_tlsExtra(tmp_path: Path) -> None:
    """
    After C{pip install greetd[tls]}, the installed daemon serves C{ssl:}
    and the installed C{greet} talks to it over C{tls:}.
    """
    bin = freshVenv(tmp_path / "venv")
    subprocess.run(
        [str(bin / "python"), "-m", "pip", "install", "--quiet", f"{PROJECT}[tls]"],
        check=True,
        timeout=INSTALL_TIMEOUT,
        cwd=tmp_path,
    )
    authority, key, certificate = writeCredentials(tmp_path / "pki")
    listener = f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={certificate}"
    daemon = Daemon(
        [str(bin / "twistd"), "--nodaemon", "--pidfile=", "greetd", "--no-udp",
         "--tcp", listener],
        tmp_path,
    )  # fmt: skip
    try:
        daemon.waitForListeners(1)
        port = daemon.tcp[0][1]
        connect = f"tls:host=localhost:port={port}:trustRoots={authority.parent}"
        result = subprocess.run(
            [str(bin / "greet"), "--connect", connect, "Michael"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    finally:
        daemon.stop()
    assert (result.returncode, result.stdout) == (0, "Welcome\nHello, Michael!\n")
