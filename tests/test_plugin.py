"""
Tests for the C{greetd} twistd plugin.
"""

from __future__ import annotations

import subprocess
import sys

from twisted.application.reactors import IReactorInstaller
from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.trial.unittest import SynchronousTestCase

import greetd.daemon.tap
from greetd.daemon.reactor import REACTOR_NAME


class PluginTests(SynchronousTestCase):
    def test_discoverable(self) -> None:
        """
        twistd finds a C{greetd} service maker that builds from L{greetd.daemon.tap}.
        """
        makers = {maker.tapname: maker for maker in getPlugins(IServiceMaker)}
        maker = makers["greetd"]
        self.assertIs(maker.options, greetd.daemon.tap.Options)
        self.assertIs(maker.makeService, greetd.daemon.tap.makeService)

    def test_reactorDiscoverable(self) -> None:
        """
        C{twistd --reactor=greetd} finds greetd's reactor.
        """
        installers = {
            installer.shortName: installer
            for installer in getPlugins(IReactorInstaller)
        }
        installer = installers[REACTOR_NAME]
        self.assertEqual(installer.moduleName, "greetd.daemon.reactor")

    def test_publicAPI(self) -> None:
        import greetd

        self.assertEqual(greetd.__all__, sorted(greetd._EXPORTS))
        # The API reference's front page (greetd's docstring) links each.
        for name in greetd.__all__:
            self.assertIn(f"L{{{name}}}", greetd.__doc__)
        for name in greetd.__all__:
            self.assertTrue(hasattr(greetd, name), name)
        self.assertIs(greetd.makeService, greetd.daemon.tap.makeService)

    def test_lightImports(self) -> None:
        """
        C{import greetd} and the C{greet} command load neither the daemon's
        options nor C{prometheus_client} nor C{twisted.web}: public names
        are imported when first used.
        """
        code = (
            "import sys, greetd, greetd.client.cli\n"
            "heavy = ('greetd.daemon', 'greetd.ops', 'prometheus_client',"
            " 'twisted.web')\n"
            "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
        )
        output = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        self.assertEqual(output.strip(), "[]")
