"""
Tests for L{greetd.protocols.admission}, alone.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from greetd.core.access import AccessPolicy, parseNetwork
from greetd.core.limits import ConnectionLimiter
from greetd.protocols.admission import Admission
from tests.helpers import captureLogs


class AdmissionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.events = captureLogs(self, Admission)
        self.admission = Admission(
            ConnectionLimiter(maxConnections=2),
            AccessPolicy(deny=[parseNetwork("192.0.2.0/24")]),
            self.clock,
        )

    def test_admitAndRelease(self) -> None:
        self.assertIsNone(self.admission.admit("127.0.0.1", "127.0.0.1", lambda: "a"))
        self.assertIsNone(self.admission.admit("127.0.0.1", "127.0.0.1", lambda: "a"))
        self.assertEqual(
            self.admission.admit("127.0.0.1", "127.0.0.1", lambda: "a"),
            "max-connections",
        )
        self.admission.release("127.0.0.1")
        self.assertIsNone(self.admission.admit("127.0.0.1", "127.0.0.1", lambda: "a"))
        self.assertEqual(self.admission.refused["max-connections"], 1)

    def test_accessFirst(self) -> None:
        self.assertEqual(
            self.admission.admit("192.0.2.7", "192.0.2.7", lambda: "x"), "access"
        )
        self.assertEqual(self.admission.limiter.open, 0)
        self.assertEqual(self.admission.refused["access"], 1)

    def test_peerFormattedOnlyToLog(self) -> None:
        """
        The peer's text is worked out only for a refusal that is logged,
        once a minute per source.
        """
        asked: list[str] = []

        def peer() -> str:
            asked.append("x")
            return "192.0.2.7:1"

        self.admission.admit("127.0.0.1", "127.0.0.1", peer)
        self.assertEqual(asked, [])
        for _ in range(3):
            self.admission.admit("192.0.2.7", "192.0.2.7", peer)
        self.assertEqual(len(asked), 1)
        self.assertEqual(len(self.events), 1)
        self.assertEqual(self.events[0]["reason"], "access")
        self.clock.advance(60)
        self.admission.admit("192.0.2.7", "192.0.2.7", peer)
        self.assertEqual(len(self.events), 2)

    def test_sourceKeysTheLimits(self) -> None:
        """
        The limits and the log throttle count the source key, access control
        the full address: two addresses of one source share its limits.
        """
        admission = Admission(
            ConnectionLimiter(maxPerHost=1), AccessPolicy(), self.clock
        )
        source = "2001:db8::/64"
        self.assertIsNone(admission.admit("2001:db8::1", source, lambda: "a"))
        refusal = admission.admit("2001:db8::2", source, lambda: "b")
        self.assertEqual(refusal, "max-per-ip")
        admission.release(source)
        self.assertIsNone(admission.admit("2001:db8::2", source, lambda: "b"))

    def test_emptyProxyFromTrustsNoOne(self) -> None:
        """
        An empty C{proxyFrom} trusts no peer with an address to send a
        PROXY header; loopback is trusted by default.
        """
        none = Admission(ConnectionLimiter(), AccessPolicy(), self.clock, proxyFrom=())
        self.assertFalse(none.trustsProxy("127.0.0.1"))
        self.assertFalse(none.trustsProxy("192.0.2.1"))
        self.assertTrue(self.admission.trustsProxy("127.0.0.1"))

    def test_kindsThrottledApart(self) -> None:
        """
        Refusal lines and bad-header warnings are each throttled to once a
        minute per source, apart: one does not silence the other.
        """
        peer = lambda: "127.0.0.1:1"  # noqa: E731
        for _ in range(3):
            self.admission.refuseHeader("127.0.0.1", peer, "bad port")
            self.admission.refuse("max-per-ip", "127.0.0.1", peer)
        self.admission.refuse("max-per-ip", "127.0.0.2", peer)
        self.assertEqual(
            [event["reason"] for event in self.events],
            ["proxy-header", "max-per-ip", "max-per-ip"],
        )
        self.clock.advance(60)
        self.admission.refuse("max-per-ip", "127.0.0.1", peer)
        self.admission.refuseHeader("127.0.0.1", peer, "bad port")
        self.assertEqual(len(self.events), 5)

    def test_refuseHeader(self) -> None:
        """
        A bad PROXY header is a C{proxy-header} refusal, warned of once a
        minute per source.
        """
        for _ in range(3):
            self.admission.refuseHeader("127.0.0.1", lambda: "127.0.0.1:1", "bad port")
        self.assertEqual(self.admission.refused["proxy-header"], 3)
        [event] = self.events
        self.assertEqual(
            (event["log_level"].name, event["proxyError"], event["reason"]),
            ("warn", "bad port", "proxy-header"),
        )
