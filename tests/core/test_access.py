"""
Tests for L{greetd.core.access}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from greetd.core.access import AccessPolicy, TrustedPeers, parseNetwork


def policy(allow: list[str], deny: list[str]) -> AccessPolicy:
    return AccessPolicy(
        [parseNetwork(net) for net in allow], [parseNetwork(net) for net in deny]
    )


class AccessPolicyTests(SynchronousTestCase):
    def test_openByDefault(self) -> None:
        empty = AccessPolicy()
        self.assertFalse(empty)
        self.assertTrue(empty.permits("203.0.113.9"))
        self.assertTrue(empty.permits("not an address"))

    def test_deny(self) -> None:
        rules = policy([], ["10.0.0.0/8", "2001:db8::/32"])
        self.assertFalse(rules.permits("10.1.2.3"))
        self.assertFalse(rules.permits("2001:db8::1"))
        self.assertTrue(rules.permits("192.0.2.1"))
        self.assertTrue(rules.permits("::1"))

    def test_unparseableRefusedByAnyPolicy(self) -> None:
        """
        An address that does not parse cannot be shown to be outside the
        denied networks: with any policy, it is refused.
        """
        rules = policy([], ["10.0.0.0/8"])
        self.assertFalse(rules.permits("not an address"))
        self.assertFalse(rules.permits("1.2.3"))

    def test_allowListClosesTheRest(self) -> None:
        rules = policy(["127.0.0.0/8", "::1"], [])
        self.assertTrue(rules.permits("127.0.0.2"))
        self.assertTrue(rules.permits("::1"))
        self.assertFalse(rules.permits("192.0.2.1"))
        self.assertFalse(rules.permits("not an address"))

    def test_denyWins(self) -> None:
        rules = policy(["127.0.0.0/8"], ["127.0.0.2"])
        self.assertTrue(rules.permits("127.0.0.1"))
        self.assertFalse(rules.permits("127.0.0.2"))

    def test_listsReadOnly(self) -> None:
        """
        A policy's networks cannot be changed once it is made: whether it
        permits everyone is kept, and a list changed under it would go
        unheeded (a policy that permitted everyone would go on doing so).
        """
        rules = policy(["127.0.0.0/8"], ["127.0.0.2"])
        self.assertEqual(rules.allow, (parseNetwork("127.0.0.0/8"),))
        self.assertEqual(rules.deny, (parseNetwork("127.0.0.2"),))
        empty = AccessPolicy()
        with self.assertRaises(AttributeError):
            empty.deny = (parseNetwork("10.0.0.0/8"),)  # type: ignore[misc]
        with self.assertRaises(AttributeError):
            empty.allow = (parseNetwork("10.0.0.0/8"),)  # type: ignore[misc]
        self.assertTrue(empty.permits("10.1.2.3"))

    def test_mappedIPv4(self) -> None:
        rules = policy([], ["192.0.2.0/24"])
        self.assertFalse(rules.permits("::ffff:192.0.2.7"))

    def test_mappedNetworks(self) -> None:
        """
        An IPv4-mapped network is the IPv4 network it maps, so that it
        matches IPv4 peers however they are seen; other IPv6 networks stay
        IPv6.
        """
        self.assertEqual(str(parseNetwork("::ffff:127.0.0.3/128")), "127.0.0.3/32")
        self.assertEqual(str(parseNetwork("::ffff:10.0.0.0/104")), "10.0.0.0/8")
        self.assertEqual(str(parseNetwork("::ffff:0:0/96")), "0.0.0.0/0")
        self.assertEqual(str(parseNetwork("::/64")), "::/64")
        rules = policy(["::ffff:127.0.0.3/128"], [])
        self.assertTrue(rules.permits("127.0.0.3"))
        self.assertTrue(rules.permits("::ffff:127.0.0.3"))
        self.assertFalse(rules.permits("127.0.0.4"))

    def test_scopedIPv6(self) -> None:
        rules = policy([], ["fe80::/10"])
        self.assertFalse(rules.permits("fe80::1%lo"))

    def test_parseErrors(self) -> None:
        error = self.assertRaises(ValueError, parseNetwork, "10.0.0.0/33")
        self.assertIn("'10.0.0.0/33' is not an IPv4 or IPv6 network", str(error))
        self.assertEqual(str(parseNetwork("10.1.2.3/8")), "10.0.0.0/8")


class TrustedPeersTests(SynchronousTestCase):
    def test_emptyTrustsNoOne(self) -> None:
        """
        With no networks, no peer is trusted: unlike an empty allow list,
        which allows everyone.
        """
        for host in ("127.0.0.1", "::1", "192.0.2.1", "nonsense"):
            self.assertFalse(TrustedPeers().trusts(host), host)

    def test_trusts(self) -> None:
        peers = TrustedPeers([parseNetwork("10.0.0.0/8"), parseNetwork("::1")])
        for host, trusted in [
            ("10.1.2.3", True),
            ("::ffff:10.1.2.3", True),
            ("::1", True),
            ("11.0.0.1", False),
            ("not an address", False),
        ]:
            self.assertEqual(peers.trusts(host), trusted, host)
