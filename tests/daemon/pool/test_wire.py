"""
Tests for L{greetd.daemon.pool.wire}: what the parent tells a worker, and
what the worker understands.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from greetd.daemon.pool import (
    formatInherited,
    parseInherited,
    workerCommand,
)
from greetd.daemon.worker import (
    WorkerOptions,
)
from tests.helpers import daemonOptions


class ArgumentTests(SynchronousTestCase):
    """
    What the parent tells a worker, and what the worker understands.
    """

    def test_inheritedRoundTrip(self) -> None:
        inherited = {"tcp": [4, 5], "udp": [6]}
        self.assertEqual(formatInherited(inherited), "tcp=4,tcp=5,udp=6")
        self.assertEqual(parseInherited(formatInherited(inherited)), inherited)
        self.assertEqual(parseInherited(""), {"tcp": [], "udp": []})
        self.assertRaises(ValueError, parseInherited, "unix=4")
        self.assertRaises(ValueError, parseInherited, "tcp=x")

    def test_commandRoundTrip(self) -> None:
        """
        The worker parses the parent's greetd arguments as they were given,
        and the descriptors in option order.
        """
        arguments = daemonOptions(
            "--workers", "3", "--tcp", "tcp:0", "--tcp", "haproxy:tcp6:0",
            "--udp", "udp:0", "--welcome", "--", "--max-per-ip", "5",
        ).arguments  # fmt: skip
        command = workerCommand(2, {"tcp": [4, 5], "udp": [6]}, arguments)
        self.assertEqual(command[1:3], ["-m", "greetd.daemon.worker"])
        options = WorkerOptions()
        options.parseOptions(command[3:])  # type: ignore[no-untyped-call]
        self.assertEqual(options["slot"], 2)
        self.assertEqual(options["fds"], {"tcp": [4, 5], "udp": [6]})
        greetd = options["options"]
        self.assertEqual(greetd["tcp"], ["tcp:0", "haproxy:tcp6:0"])
        self.assertEqual(greetd["welcome"], "--")
        self.assertEqual(greetd["max-per-ip"], 5)

    def test_commandReactor(self) -> None:
        """
        The worker is told the parent's reactor, among its own options;
        without one it takes Twisted's default.
        """
        command = workerCommand(1, {"tcp": [4]}, ["--no-udp"], "greetd")
        self.assertEqual(command[-3:], ["--reactor=greetd", "--", "--no-udp"])
        self.assertNotIn(
            "--reactor", " ".join(workerCommand(1, {"tcp": [4]}, ["--no-udp"]))
        )
