"""
The project's documentation sources, for the tests that run their examples:
the README and every page of the manual in C{docs/}.
"""

from __future__ import annotations

import re
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
README = PROJECT / "README.rst"
DOCS = PROJECT / "docs"


def documents() -> list[Path]:
    """
    The README, then every page of the manual in C{docs/}, by path.
    """
    return [README, *sorted(DOCS.rglob("*.rst"))]


def blocks(text: str, header: str) -> list[str]:
    """
    The bodies of C{text}'s directives whose first lines are C{header}
    (a directive and its options, each line ending in a newline), dedented.

    @param text: reStructuredText.
    @param header: For instance C{".. code-block:: python\\n"}.
    """
    found = re.findall(
        "^" + re.escape(header) + r"\n((?:    .*\n|\n)+)", text, re.MULTILINE
    )
    return [re.sub(r"^    ", "", block, flags=re.MULTILINE) for block in found]
