"""
The README's Python examples stay true to the API.
"""

from __future__ import annotations

import re
from pathlib import Path

from twisted.application.service import IServiceCollection
from twisted.trial.unittest import SynchronousTestCase

from greetd.daemon.listening import ListeningService

README = Path(__file__).resolve().parents[1] / "README.rst"


def pythonBlocks() -> list[str]:
    """
    The bodies of the README's C{code-block:: python} directives, dedented.
    """
    text = README.read_text()
    blocks = re.findall(
        r"^\.\. code-block:: python\n\n((?:    .*\n|\n)+)", text, re.MULTILINE
    )
    return [re.sub(r"^    ", "", block, flags=re.MULTILINE) for block in blocks]


class ReadmeExampleTests(SynchronousTestCase):
    def test_examplesCompile(self) -> None:
        blocks = pythonBlocks()
        self.assertGreaterEqual(len(blocks), 2)
        for index, block in enumerate(blocks):
            compile(block, f"README.rst block {index}", "exec")

    def test_applicationExample(self) -> None:
        """
        The C{.tac} example builds an application holding greetd's services.
        """
        namespace: dict[str, object] = {}
        exec(pythonBlocks()[0], namespace)
        [greetd] = list(IServiceCollection(namespace["application"]))
        self.assertEqual(
            [
                child.description
                for child in greetd
                if isinstance(child, ListeningService)
            ],
            ["tcp:9999:interface=127.0.0.1"],
        )
