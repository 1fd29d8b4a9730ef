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

    def test_helpLinesUnbroken(self) -> None:
        """
        Every greetd option's help is one line of source: Twisted's C{--help} keeps
        a docstring's line breaks, with their indentation, inside its text.
        """
        options = [name for name in vars(Options) if name.startswith("opt_")]
        self.assertIn("opt_proxy_from", options)
        for name in options:
            self.assertNotIn("\n", getattr(Options, name).__doc__ or "", name)
