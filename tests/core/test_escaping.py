"""
Tests for L{greetd.core.escaping}.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.trial.unittest import SynchronousTestCase

from greetd.core.escaping import escape, formatAddress, terminalText


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


class TerminalTextTests(SynchronousTestCase):
    def test_printablePassesThrough(self) -> None:
        for text in (b"Hello, Michael!", "Grüß dich, Zoë 🌍".encode(), b"a\\b"):
            self.assertEqual(terminalText(text), text)

    def test_sequencesEscaped(self) -> None:
        """
        OSC 52 (clipboard), a window title, a screen clear, C1 controls
        and a bidirectional override reach the terminal as visible escapes.
        """
        for data, shown in [
            (b"\x1b]52;c;aGk=\x07", b"\\x1b]52;c;aGk=\\x07"),
            (b"\x1b]0;pwned\x1b\\", b"\\x1b]0;pwned\\x1b\\"),
            (b"\x1b[2J\x1b[H", b"\\x1b[2J\\x1b[H"),
            ("\x9b2J".encode(), b"\\x9b2J"),
            ("\u202eevil".encode(), b"\\u202eevil"),
            (b"\r\n\x7f\x00", b"\\x0d\\x0a\\x7f\\x00"),
            (b"\xff\xfe", b"\\xff\\xfe"),
        ]:
            self.assertEqual(terminalText(data), shown)

    @given(st.binary())
    def test_noControlSurvives(self, data: bytes) -> None:
        """
        Whatever the bytes, what is printed holds no control character
        (C0, DEL, C1), so no escape sequence can start.
        """
        text = terminalText(data).decode("utf-8")
        self.assertFalse(
            [char for char in text if ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0]
        )


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
