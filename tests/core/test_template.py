"""
Tests for L{greetd.core.template}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from greetd.core.template import ReplyTemplate


class ReplyTemplateTests(SynchronousTestCase):
    def test_default(self) -> None:
        template = ReplyTemplate()
        self.assertEqual(template.format(b"Michael"), b"Hello, Michael!")
        self.assertEqual((template.prefix, template.suffix), (b"Hello, ", b"!"))

    def test_bytesPassThrough(self) -> None:
        """
        The message is inserted as received, whatever it holds.
        """
        self.assertEqual(
            ReplyTemplate().format(b"\xff\xfe\x00z"), b"Hello, \xff\xfe\x00z!"
        )

    def test_unicodeTemplateEncodedAsUTF8(self) -> None:
        template = ReplyTemplate("你好，%s！")  # noqa: RUF001 (the seed is Chinese)
        self.assertEqual(template.format(b"x"), "你好，x！".encode())  # noqa: RUF001

    def test_percentEscape(self) -> None:
        self.assertEqual(ReplyTemplate("100%% %s").format(b"x"), b"100% x")

    def test_noPlaceholder(self) -> None:
        error = self.assertRaises(ValueError, ReplyTemplate, "no placeholder")
        self.assertIn("exactly one %s, not 0", str(error))

    def test_twoPlaceholders(self) -> None:
        error = self.assertRaises(ValueError, ReplyTemplate, "%s and %s")
        self.assertIn("not 2", str(error))

    def test_otherConversion(self) -> None:
        error = self.assertRaises(ValueError, ReplyTemplate, "%d %s")
        self.assertIn("%d", str(error))

    def test_trailingPercent(self) -> None:
        self.assertRaises(ValueError, ReplyTemplate, "%s %")

    def test_repr(self) -> None:
        self.assertEqual(repr(ReplyTemplate("a%s")), "ReplyTemplate('a%s')")
