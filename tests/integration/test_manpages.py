"""
The man pages: the committed ones (C{man/}, which the wheel installs) are
what C{make man} makes from C{docs/} now, and every option of C{--help} is
in them.  (The wheel's copies are rendered by C{test_wheel.py}.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import TIMEOUT, requireTool

PROJECT = Path(__file__).resolve().parents[2]

#: Each page, by its path under man/ and share/man/, and the command whose
#: --help it documents.
PAGES = {
    "man8/twisted-greetd.8": ["twistd", "greetd"],
    "man1/greet.1": ["greet"],
}


def withoutComments(page: str) -> list[str]:
    """
    The lines of a man page's source but its comments (which name the
    docutils that wrote it).
    """
    return [line for line in page.splitlines() if not line.startswith('.\\"')]


def helpOptions(command: list[str]) -> set[str]:
    """
    The long options C{command --help} lists, in the virtualenv running the
    tests.
    """
    executable = str(Path(sys.executable).with_name(command[0]))
    output = subprocess.run(
        [executable, *command[1:], "--help"],
        check=True,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    ).stdout
    options = set(re.findall(r"^\s+(?:-\w, )?(--[\w-]+)", output, re.MULTILINE))
    assert "--help" in options, output
    return options


def render(page: Path) -> str:
    """
    C{page} as C{man -l} shows it, in ASCII, one line for each paragraph.
    """
    requireTool("man")
    return subprocess.run(
        ["man", "-l", str(page)],
        check=True,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "LC_ALL": "C", "MANWIDTH": "1000", "MANPAGER": "cat"},
    ).stdout


def missingOptions(page: Path, command: list[str]) -> set[str]:
    """
    The options of C{command --help} that the rendered C{page} does not name.
    """
    rendered = render(page)
    return {
        option
        for option in helpOptions(command)
        if not re.search(re.escape(option) + r"\b", rendered)
    }


def test_current(tmp_path: Path) -> None:
    """
    The committed man pages are what Sphinx makes of the sources now: run
    C{make man} after changing an option or a page.
    """
    pytest.importorskip("sphinx", reason="the docs extra is installed on CPython")
    sphinx = [sys.executable, "-m", "sphinx", "-q", "-W", "-n", "-b", "man"]
    subprocess.run(
        [*sphinx, "docs", str(tmp_path)],
        cwd=PROJECT,
        check=True,
        timeout=TIMEOUT * 8,
    )
    for page in PAGES:
        made = withoutComments((tmp_path / page).read_text())
        assert withoutComments((PROJECT / "man" / page).read_text()) == made, (
            f"man/{page} is out of date: run make man"
        )


@pytest.mark.parametrize("page", sorted(PAGES))
def test_everyOption(page: str) -> None:
    """
    The committed page names every option its command's C{--help} lists.
    """
    assert missingOptions(PROJECT / "man" / page, PAGES[page]) == set()
