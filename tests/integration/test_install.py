"""
The package installs into a fresh virtualenv, plain and editable, and
twistd finds the plugin either way.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]

#: Installing pulls Twisted from the package index: give it time.
INSTALL_TIMEOUT = 600


def freshVenv(where: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=120)
    return where / "bin"


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
    After installing, C{twistd greetd --help} works from an unrelated
    directory, so the plugin is found on the installed path.
    """
    bin = freshVenv(tmp_path / "venv")
    subprocess.run(
        [str(bin / "python"), "-m", "pip", "install", "--quiet", *installArgs],
        check=True,
        timeout=INSTALL_TIMEOUT,
        cwd=tmp_path,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [str(bin / "twistd"), "greetd", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=elsewhere,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Usage: twistd [options] greetd [options]" in result.stdout
    assert "--max-length=" in result.stdout
