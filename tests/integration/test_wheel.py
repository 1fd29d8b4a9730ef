"""
The distributions: C{python -m build} makes, with setuptools from
C{setup.cfg} and C{setup.py}, an sdist and a wheel (built from the sdist)
that C{twine check} passes (on CPython: twine does not install on PyPy
3.9), both with the license and the metadata publishing needs, and the
wheel, installed into a
fresh virtualenv on CPython and on PyPy, runs C{twistd greetd} and C{greet}
for a user who cannot write to its site-packages, with no word from
Twisted's plugin cache once the systemd guide's install step has filled it.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Iterator

import pytest

from greetd import __version__
from greetd.testing import Daemon, defaultSignals, withEphemeralPorts
from tests.integration.conftest import TIMEOUT, requireTool
from tests.integration.helpers import INSTALL_TIMEOUT, PAGES, missingOptions

PROJECT = Path(__file__).resolve().parents[2]
SYSTEMD_GUIDE = PROJECT / "docs" / "howto" / "systemd.rst"

#: The systemd guide's step after installing or upgrading, run as the user who
#: installed: it writes Twisted's plugin cache (dropin.cache) for every
#: plugin, greetd's included, where a daemon that may not write there
#: would otherwise try at every start and log that it could not.
FILL_PLUGIN_CACHE = (
    "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"
)

#: What Twisted logs when it cannot write the cache, or fails to otherwise.
CACHE_COMPLAINTS = ("Unable to write to plugin cache", "Unexpected error")

#: Runs a command as a user who owns nothing in the virtualenv, when the
#: tests run as root (who may write anywhere); otherwise the tree's write
#: bits are removed for the tests' own user.
AS_NOBODY = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--")


@pytest.fixture(scope="module")
def distributions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """
    The sdist and the wheel C{python -m build} makes of the project.
    """
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(PROJECT)],
        check=True,
        capture_output=True,
        timeout=INSTALL_TIMEOUT,
    )
    [sdist] = out.glob("greetd-*.tar.gz")
    [wheel] = out.glob("greetd-*-py3-none-any.whl")
    return {"sdist": sdist, "wheel": wheel}


def test_setuptools() -> None:
    """
    The build backend is setuptools, with the metadata in C{setup.cfg} and
    the package list in C{setup.py}; C{pyproject.toml} has no C{[project]}
    table of its own to contradict them.
    """
    pyproject = (PROJECT / "pyproject.toml").read_text()
    assert 'build-backend = "setuptools.build_meta"' in pyproject
    assert "[project]" not in pyproject
    assert "name = greetd" in (PROJECT / "setup.cfg").read_text()
    assert "packages=" in (PROJECT / "setup.py").read_text()


def test_licenseAndMetadata(distributions: dict[str, Path]) -> None:
    """
    The repository's LICENSE (MIT) is in the sdist and the wheel, and the
    metadata names the version of C{greetd/__init__.py}, the license, an
    author and the project's addresses.
    """
    license = (PROJECT / "LICENSE").read_text()
    assert license.startswith("MIT License\n"), license
    top = f"greetd-{__version__}"
    with tarfile.open(distributions["sdist"]) as sdist:
        member = sdist.extractfile(f"{top}/LICENSE")
        assert member is not None
        assert member.read().decode() == license
    assert distributions["wheel"].name == f"{top}-py3-none-any.whl"
    with zipfile.ZipFile(distributions["wheel"]) as wheel:
        info = f"{top}.dist-info"
        assert wheel.read(f"{info}/licenses/LICENSE").decode() == license
        metadata = wheel.read(f"{info}/METADATA").decode()
    headers = metadata.split("\n\n")[0].splitlines()
    assert f"Version: {__version__}" in headers
    assert "License-Expression: MIT" in headers
    assert "License-File: LICENSE" in headers
    assert "Author: the greetd developers" in headers
    urls = [line for line in headers if line.startswith("Project-URL: ")]
    assert {url.split(":")[1].split(",")[0].strip() for url in urls} == {
        "Documentation",
        "Source",
        "Issues",
    }, urls


def test_twineCheck(distributions: dict[str, Path]) -> None:
    """
    C{twine check --strict} passes both: their metadata, and the README
    rendered as PyPI renders it.
    """
    pytest.importorskip("twine", reason="twine is not installable on PyPy 3.9")
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "twine",
            "check",
            "--strict",
            *(str(path) for path in distributions.values()),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("PASSED") == 2, checked.stdout


def test_wheelContents(distributions: dict[str, Path]) -> None:
    """
    The wheel holds the package, the twistd plugin beside Twisted's own,
    the C{greet} command and the two man pages, and nothing else from the
    source tree.
    """
    with zipfile.ZipFile(distributions["wheel"]) as wheel:
        names = wheel.namelist()
        [entryPoints] = [name for name in names if name.endswith("entry_points.txt")]
        scripts = wheel.read(entryPoints).decode()
    assert "twisted/plugins/greetd_plugin.py" in names
    assert "greetd/client/cli.py" in names
    assert "greet = greetd.client.cli:main" in scripts
    tops = {name.split("/")[0] for name in names}
    data = f"greetd-{__version__}.data"
    assert tops == {"greetd", "twisted", f"greetd-{__version__}.dist-info", data}, tops
    assert sorted(name for name in names if name.startswith(data)) == [
        f"{data}/data/share/man/man1/greet.1",
        f"{data}/data/share/man/man8/twisted-greetd.8",
    ]
    assert [name for name in names if name.startswith("twisted/")] == [
        "twisted/plugins/greetd_plugin.py"
    ]


@pytest.fixture
def shared() -> Iterator[Path]:
    """
    A directory that every user may read, for a virtualenv (pytest's own
    temporary directories are its user's alone).
    """
    where = Path(tempfile.mkdtemp(prefix="greetd-wheel-"))
    where.chmod(0o755)
    try:
        yield where
    finally:
        setWritable(where, True)
        shutil.rmtree(where)


def setWritable(tree: Path, writable: bool) -> None:
    """
    Give everything in C{tree} its owner's write bit, or take every write
    bit away.
    """
    for path in [tree, *tree.rglob("*")]:
        if not path.is_symlink():
            mode = path.stat().st_mode
            path.chmod(mode | 0o200 if writable else mode & ~0o222)


def run(*command: str, cwd: Path) -> str:
    """
    Run C{command}, check that it succeeds, and return its output.
    """
    result = subprocess.run(
        command,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        preexec_fn=defaultSignals,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def serve(asUser: tuple[str, ...], bin: Path, cwd: Path) -> Daemon:
    """
    Start the installed C{twistd greetd} on ephemeral loopback ports.
    """
    command = [*asUser, str(bin / "twistd"), "--nodaemon", "--pidfile=", "greetd"]
    daemon = Daemon([*command, *withEphemeralPorts(())], cwd)
    daemon.waitForListeners(2)
    return daemon


def test_guideFillsTheCache() -> None:
    """
    The systemd guide gives the step that fills the plugin cache.
    """
    assert FILL_PLUGIN_CACHE in SYSTEMD_GUIDE.read_text()


def test_wheelRunsReadOnly(distributions: dict[str, Path], shared: Path) -> None:
    """
    Installed from the wheel into a fresh virtualenv of the kind of
    interpreter running the tests (so that the suite under each of CPython
    and PyPy covers its own), away from the source tree, greetd serves and
    C{greet} greets for a user who cannot write to the virtualenv.
    Twisted's plugin cache complains until the systemd guide's step has
    filled it (which shows that this test sees the complaint), and never
    after.
    """
    python = requireTool(
        "pypy3" if platform.python_implementation() == "PyPy" else "python3"
    )
    run(python, "-m", "venv", str(shared / "venv"), cwd=shared)
    bin = shared / "venv" / "bin"
    run(
        str(bin / "python"),
        "-m",
        "pip",
        "install",
        "--quiet",
        str(distributions["wheel"]),
        cwd=shared,
    )
    venv = shared / "venv"
    asUser = AS_NOBODY if os.geteuid() == 0 else ()
    setWritable(venv, False)

    unfilled = serve(asUser, bin, shared)
    unfilled.stop()
    assert CACHE_COMPLAINTS[0] in unfilled.output, unfilled.output

    # The install step, by the user who installed.
    setWritable(venv, True)
    run(str(bin / "python"), "-c", FILL_PLUGIN_CACHE, cwd=shared)
    setWritable(venv, False)

    daemon = serve(asUser, bin, shared)
    try:
        greet = (*asUser, str(bin / "greet"))
        tcp = run(*greet, "-p", str(daemon.tcp[0][1]), "Ann", cwd=shared)
        udp = run(
            *greet,
            "--udp",
            "-p",
            str(daemon.udp[0][1]),
            "Bob",
            cwd=shared,
        )
    finally:
        status = daemon.stop()
    assert (tcp, udp) == ("Welcome\nHello, Ann!\n", "Hello, Bob!\n")
    assert status in (0, -signal.SIGTERM), daemon.output
    for complaint in (*CACHE_COMPLAINTS, "Traceback"):
        assert complaint not in daemon.output, daemon.output


def test_wheelInstallsManPages(distributions: dict[str, Path], tmp_path: Path) -> None:
    """
    Installed, the wheel puts C{twisted-greetd(8)} and C{greet(1)} under
    C{share/man}, where C{man -l} renders each with every option of its
    command's C{--help}.
    """
    # --ignore-installed: leave the greetd installed where the tests run.
    pip = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--ignore-installed",
    ]
    installed = subprocess.run(
        [*pip, "--no-index", "--prefix", str(tmp_path), str(distributions["wheel"])],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
    )
    assert installed.returncode == 0, installed.stderr
    for page, command in PAGES.items():
        assert missingOptions(tmp_path / "share/man" / page, command) == set()
