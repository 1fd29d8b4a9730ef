"""
Tests for L{greetd.daemon.single}: the open-file limit, raised when the
service starts and not when it is built.
"""

from __future__ import annotations

import resource

from twisted.trial.unittest import SynchronousTestCase

from greetd.daemon.options import Options
from greetd.daemon.single import FileLimitService, raiseFileLimit
from greetd.daemon.tap import makeService
from tests.helpers import MemoryUDPReactor, captureLogs


class FakeLimits:
    """
    Stands in for C{getrlimit}/C{setrlimit} on C{RLIMIT_NOFILE}.
    """

    def __init__(self, soft: int, hard: int) -> None:
        self.limits = (soft, hard)
        self.set: list[tuple[int, int]] = []

    def getrlimit(self, which: int) -> tuple[int, int]:
        return self.limits

    def setrlimit(self, which: int, limits: tuple[int, int]) -> None:
        self.set.append(limits)
        self.limits = limits


class RaiseFileLimitTests(SynchronousTestCase):
    def fake(self, soft: int, hard: int) -> FakeLimits:
        limits = FakeLimits(soft, hard)
        self.patch(resource, "getrlimit", limits.getrlimit)
        self.patch(resource, "setrlimit", limits.setrlimit)
        return limits

    def test_raisedToFit(self) -> None:
        limits = self.fake(1024, 1 << 20)
        self.assertIsNone(raiseFileLimit(10000))
        self.assertEqual(limits.set, [(10256, 1 << 20)])

    def test_hardLimitShort(self) -> None:
        limits = self.fake(1024, 4096)
        self.assertEqual(raiseFileLimit(10000), (4096, 10256))
        self.assertEqual(limits.set, [(4096, 4096)])

    def test_neverLowered(self) -> None:
        limits = self.fake(65536, 65536)
        self.assertIsNone(raiseFileLimit(100))
        self.assertEqual(limits.set, [])

    def test_warnsAtStart(self) -> None:
        self.fake(1024, 2048)
        events = captureLogs(self, FileLimitService)
        FileLimitService(10000).startService()
        [event] = events
        self.assertEqual(
            (event["limit"], event["wanted"], event["greetdEvent"]),
            (2048, 10256, "files.limit"),
        )

    def test_makeServiceHasNoSideEffects(self) -> None:
        """
        Building the service changes nothing in the process; starting it
        raises the limit.
        """
        limits = self.fake(1024, 1 << 20)
        options = Options()
        options.parseOptions(["--tcp", "tcp:0", "--no-udp"])
        service = makeService(options, MemoryUDPReactor())
        self.assertEqual(limits.set, [])
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(limits.set, [(10256, 1 << 20)])
