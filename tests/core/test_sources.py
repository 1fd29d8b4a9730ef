"""
Tests for L{greetd.core.sources}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from greetd.core.sources import sourceKey


class SourceKeyTests(SynchronousTestCase):
    def test_ipv4(self) -> None:
        self.assertEqual(sourceKey("192.0.2.7"), "192.0.2.7")

    def test_ipv4Mapped(self) -> None:
        """
        An IPv4 peer seen through a dual-stack socket is its IPv4 address.
        """
        self.assertEqual(sourceKey("::ffff:192.0.2.7"), "192.0.2.7")
        self.assertEqual(sourceKey("::ffff:c000:207", 128), "192.0.2.7")

    def test_ipv6Prefix(self) -> None:
        """
        Every address of one /64 is one source by default; another /64 is
        another.
        """
        self.assertEqual(sourceKey("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64")
        self.assertEqual(
            sourceKey("2001:db8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::/64"
        )
        self.assertEqual(sourceKey("2001:db8:1:3::1"), "2001:db8:1:3::/64")

    def test_otherPrefixes(self) -> None:
        self.assertEqual(sourceKey("2001:db8:1:2::1", 48), "2001:db8:1::/48")
        self.assertEqual(sourceKey("2001:db8:1:ff::1", 60), "2001:db8:1:f0::/60")
        self.assertEqual(sourceKey("2001:db8::1", 0), "::/0")
        self.assertEqual(sourceKey("2001:db8::1", 128), "2001:db8::1/128")
        self.assertEqual(
            sourceKey("2001:0db8:0:0::1", 128), sourceKey("2001:db8::1", 128)
        )

    def test_scope(self) -> None:
        self.assertEqual(sourceKey("fe80::1:2%eth0"), "fe80::/64")

    def test_notAnAddress(self) -> None:
        """
        What no socket gives is its own key rather than an error.
        """
        self.assertEqual(sourceKey("not:an:address"), "not:an:address")
        self.assertEqual(sourceKey("localhost"), "localhost")
