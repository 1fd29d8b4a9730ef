"""
The man pages: the committed ones (C{man/}, which the wheel installs) are
what C{make man} makes from C{docs/} now, and every option of C{--help} is
in them.  (The wheel's copies are rendered by C{test_wheel.py}.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import TIMEOUT
from tests.integration.helpers import PAGES, missingOptions

PROJECT = Path(__file__).resolve().parents[2]


def withoutComments(page: str) -> list[str]:
    """
    The lines of a man page's source but its comments (which name the
    docutils that wrote it).
    """
    return [line for line in page.splitlines() if not line.startswith('.\\"')]


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
