"""
Tests for L{greetd.client.output}.
"""

from __future__ import annotations

import io
import sys

from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase

from greetd.client.output import Output


class FakeStdout(io.TextIOWrapper):
    """
    A standard output that is, or is not, a terminal.
    """

    def __init__(self, terminal: bool) -> None:
        super().__init__(io.BytesIO())
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal


class OutputTests(SynchronousTestCase):
    def printed(self, terminal: bool, line: bytes) -> bytes:
        stdout = FakeStdout(terminal)
        self.patch(sys, "stdout", stdout)
        Output(MemoryReactor(), [b"Ann"]).write(line)
        buffer = stdout.buffer
        assert isinstance(buffer, io.BytesIO)
        return buffer.getvalue()

    def test_terminalEscaped(self) -> None:
        """
        On a terminal, what the server sent cannot drive it.
        """
        self.assertEqual(
            self.printed(True, b"\x1b]0;pwned\x07Welcome"),
            b"\\x1b]0;pwned\\x07Welcome\n",
        )

    def test_pipeByteForByte(self) -> None:
        self.assertEqual(self.printed(False, b"\x1b[1mHi"), b"\x1b[1mHi\n")
