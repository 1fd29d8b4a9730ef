"""
The servers greetd is measured against, one small file each; every one takes
C{--port} and C{--udp-port} (0 for ephemeral) and C{--host} (127.0.0.1, or
the address bench.run's veth pair gives the server), and prints C{Serving TCP
on HOST:PORT} and C{Serving UDP on ...} when ready,
as C{twistd greetd} does.  They speak greetd's line framing: the banner
C{Welcome\\r\\n}, then C{Hello, M!} and the line's ending for each non-blank
line C{M}, and a close after C{exit}.
"""

from __future__ import annotations

import argparse
from typing import Sequence

BANNER = b"Welcome\r\n"
EXIT = b"exit"


def parseArguments(
    argv: Sequence[str] | None, description: str | None
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1", help="IPv4 address")
    parser.add_argument("--port", type=int, default=9999, help="TCP port")
    parser.add_argument("--udp-port", type=int, default=9999, help="UDP port")
    return parser.parse_args(argv)


def ready(tcp: tuple[str, int], udp: tuple[str, int]) -> None:
    """
    Say where the peer listens, in the words of greetd's log.
    """
    print(f"Serving TCP on {tcp[0]}:{tcp[1]}", flush=True)
    print(f"Serving UDP on {udp[0]}:{udp[1]}", flush=True)


def answer(buffer: bytes) -> tuple[bytes, bytes, bool]:
    """
    Answer the complete lines in C{buffer}.

    @return: The replies, the unfinished line left over, and whether C{exit}
        was among the lines (nothing after it is answered).
    """
    *lines, rest = buffer.split(b"\n")
    replies = []
    for line in lines:
        ending = b"\n"
        if line.endswith(b"\r"):
            line, ending = line[:-1], b"\r\n"
        if line == EXIT:
            return b"".join(replies), b"", True
        if line:
            replies.append(b"Hello, " + line + b"!" + ending)
    return b"".join(replies), rest, False
