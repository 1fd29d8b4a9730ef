"""
The Python examples of the README and the manual stay true to the API.
"""

from __future__ import annotations

from twisted.application.service import IServiceCollection
from twisted.trial.unittest import SynchronousTestCase

from greetd.daemon.listening import ListeningService
from tests.documents import DOCS, PROJECT, documents
from tests.helpers import pythonBlocks


class DocumentationExampleTests(SynchronousTestCase):
    def test_examplesCompile(self) -> None:
        """
        Every Python example of the README and the manual compiles.
        """
        compiled = 0
        for path in documents():
            for index, block in enumerate(pythonBlocks(path)):
                compile(block, f"{path.relative_to(PROJECT)} block {index}", "exec")
                compiled += 1
        self.assertGreaterEqual(compiled, 3)

    def test_applicationExample(self) -> None:
        """
        The embedding guide's C{.tac} example builds an application holding
        greetd's services.
        """
        namespace: dict[str, object] = {}
        exec(pythonBlocks(DOCS / "howto" / "embedding.rst")[0], namespace)
        [greetd] = list(IServiceCollection(namespace["application"]))
        self.assertEqual(
            [
                child.description
                for child in greetd
                if isinstance(child, ListeningService)
            ],
            ["tcp:9999:interface=127.0.0.1"],
        )
