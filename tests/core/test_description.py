"""
Tests for L{greetd.core.description}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from greetd.core.description import parsePort, splitDescription


class SplitDescriptionTests(SynchronousTestCase):
    def test_positionalAndKeyword(self) -> None:
        self.assertEqual(
            splitDescription("udp:9999:interface=127.0.0.1"),
            (["udp", "9999"], {"interface": "127.0.0.1"}),
        )

    def test_escapes(self) -> None:
        self.assertEqual(
            splitDescription(r"udp:9999:interface=\:\:1"),
            (["udp", "9999"], {"interface": "::1"}),
        )
        self.assertEqual(splitDescription("a\\=b:c=d=e"), (["a=b"], {"c": "d=e"}))

    def test_positionalAfterKeyword(self) -> None:
        self.assertRaises(ValueError, splitDescription, "udp:port=1:2")

    def test_keywordTwice(self) -> None:
        self.assertRaises(ValueError, splitDescription, "udp:port=1:port=2")


class ParsePortTests(SynchronousTestCase):
    def test_range(self) -> None:
        self.assertEqual(parsePort("0"), 0)
        self.assertEqual(parsePort("65535"), 65535)
        self.assertRaises(ValueError, parsePort, "65536")
        self.assertRaises(ValueError, parsePort, "-1")

    def test_notANumber(self) -> None:
        with self.assertRaises(ValueError) as caught:
            parsePort("http")
        self.assertEqual(str(caught.exception), "port 'http' is not a number")
