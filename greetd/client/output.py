"""
Where C{greet} prints, and where its names come from.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet.defer import Deferred, succeed

from greetd.client.lines import LineNames, readLine
from greetd.client.names import Names
from greetd.core.escaping import terminalText


class Output:
    """
    Where C{greet} prints: C{sys.stdout} when the names are on the command
    line; otherwise standard input and output both go through Twisted's
    C{StandardIO} (which makes them non-blocking, so printing must go
    through it too), and the names come from a L{LineNames}.

    On a terminal, what the server sent is printed with its control
    characters escaped (L{terminalText}): a banner cannot set the window's
    title, write the clipboard or clear the screen.  Elsewhere (a pipe, a
    file) lines are printed byte for byte.
    """

    def __init__(self, reactor: Any, names: list[bytes]) -> None:
        self.names: Names = names
        self._terminal = sys.stdout.isatty()
        self._lines: LineNames | None = None
        if not names:
            from twisted.internet.stdio import StandardIO

            self._lines = LineNames()
            self._stdio = StandardIO(self._lines, reactor=reactor)
            self.names = readLine(self._lines)

    def write(self, line: bytes) -> None:
        """
        Print one line.
        """
        if self._terminal:
            line = terminalText(line)
        if self._lines is None:
            sys.stdout.buffer.write(line + b"\n")
            sys.stdout.buffer.flush()
        else:
            self._stdio.write(line + b"\n")

    def close(self) -> Deferred[None]:
        """
        Finish writing.
        """
        if self._lines is None:
            return succeed(None)
        return self._lines.close()
