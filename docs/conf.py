"""
Sphinx configuration for greetd's manual, its man pages and (by pydoctor)
its API reference: C{make docs}.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
PROJECT = DOCS.parent
sys.path[:0] = [str(DOCS / "_ext"), str(PROJECT)]

import greetd  # noqa: E402

project = "greetd"
author = "the greetd developers"
copyright = "the greetd developers"
release = version = greetd.__version__

extensions = [
    "greetddocs",
    "sphinx.ext.intersphinx",
    "pydoctor.sphinx_ext.build_apidocs",
]
# Nothing fetched from the network: the only inventory is pydoctor's own,
# written by the build (see pydoctor_url_path).
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
exclude_patterns = ["_build", "howto/examples"]
# Every reference must resolve, ours and Sphinx's alike.
nitpicky = True
# Options are spelled with two hyphens, in prose too: never an en dash.
smartquotes = False

html_theme = "furo"
html_title = f"greetd {release}"
html_static_path: list[str] = []

# The API reference, by pydoctor from the epytext docstrings, into
# OUTDIR/api/; the manual links to it as :py:obj:`greetd.X` through the
# inventory pydoctor writes.  Offline: links to Twisted's API go through
# an inventory made here from the installed Twisted, none to Python's.
import twisted  # noqa: E402

#: The inventory of the installed Twisted's API, made once (greetddocs).
greetd_twisted_inventory = str(PROJECT / "build" / f"twisted-{twisted.__version__}")
TWISTED_API = f"https://docs.twisted.org/en/twisted-{twisted.__version__}/api/"

pydoctor_args = [
    f"--intersphinx-file={greetd_twisted_inventory}/objects.inv::{TWISTED_API}",
    "--project-name=greetd",
    f"--project-version={release}",
    "--docformat=epytext",
    "--privacy=HIDDEN:greetd.twisted_private",
    # The machinery of the lazy imports, not API.
    "--privacy=PRIVATE:greetd.__getattr__",
    "--privacy=PRIVATE:greetd.__dir__",
    "--html-output={outdir}/api",
    f"--project-base-dir={PROJECT}",
    str(PROJECT / "greetd"),
]
pydoctor_url_path = "api/"

# Man pages: (source, name, description, authors, section).
man_pages = [
    (
        "man/twisted-greetd",
        "twisted-greetd",
        "the greeting daemon: TCP greetings and UDP replies, on Twisted",
        [author],
        8,
    ),
    ("man/greet", "greet", "greet names with a greetd daemon", [author], 1),
]
man_show_urls = False
# Pages in man1/ and man8/, as the wheel installs them (share/man/manN).
man_make_section_directory = True
# The pages carry the release, not the day they were built, so that a
# build of the same sources is the same (the committed pages in man/).
today = release
