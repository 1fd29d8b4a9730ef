"""
The flags of the terminal C{greet} shares with the shell.
"""

from __future__ import annotations

import contextlib
import fcntl
from typing import Callable


def keepFlags(*fds: int) -> Callable[[], None]:
    """
    Note the flags of C{fds} now; the returned callable puts them back.
    Reading standard input the Twisted way makes it non-blocking, which a
    terminal shared with the shell must not be left in.
    """
    saved = []
    for fd in fds:
        with contextlib.suppress(OSError):
            saved.append((fd, fcntl.fcntl(fd, fcntl.F_GETFL)))

    def restore() -> None:
        for fd, flags in saved:
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, fcntl.F_SETFL, flags)

    return restore
