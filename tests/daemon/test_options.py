"""
Tests for L{greetd.daemon.options}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from greetd.daemon.options import Options


class OptionsTests(SynchronousTestCase):
    def test_arguments(self) -> None:
        options = Options()
        options.parseOptions(["--workers=2", "--no-udp"])
        self.assertEqual(options.arguments, ["--workers=2", "--no-udp"])
        self.assertEqual(options["workers"], 2)
