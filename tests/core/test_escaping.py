"""
Tests for L{greetd.core.escaping}.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.trial.unittest import SynchronousTestCase

from greetd.core.escaping import escape, formatAddress


class EscapeTests(SynchronousTestCase):
    def test_printablePassesThrough(self) -> None:
        self.assertEqual(escape(b"Hello, Michael!"), "Hello, Michael!")

    def test_controlAndHighBytesEscaped(self) -> None:
        self.assertEqual(
            escape(b"\xff\x00\n\r\t\x1b[31m\\"), "\\xff\\x00\\n\\r\\t\\x1b[31m\\\\"
        )

    def test_textEscapedAsUTF8(self) -> None:
        self.assertEqual(escape("é\n"), "\\xc3\\xa9\\n")

    def test_everyByteGivesPrintableASCII(self) -> None:
        rendered = escape(bytes(range(256)))
        self.assertTrue(rendered.isascii() and rendered.isprintable())


class FormatAddressTests(SynchronousTestCase):
    def test_ipv4(self) -> None:
        self.assertEqual(
            formatAddress(IPv4Address("TCP", "127.0.0.1", 9999)), "127.0.0.1:9999"
        )

    def test_ipv6(self) -> None:
        self.assertEqual(formatAddress(IPv6Address("TCP", "::1", 9999)), "[::1]:9999")

    def test_unix(self) -> None:
        self.assertEqual(
            formatAddress(UNIXAddress(b"/run/g\n.sock")), "unix:/run/g\\n.sock"
        )
        self.assertEqual(formatAddress(UNIXAddress(None)), "unix:(unnamed)")

    def test_datagramTuples(self) -> None:
        self.assertEqual(formatAddress(("127.0.0.1", 5)), "127.0.0.1:5")
        self.assertEqual(formatAddress(("::1", 5)), "[::1]:5")

    def test_other(self) -> None:
        self.assertEqual(formatAddress("weird\x1b"), "weird\\x1b")
