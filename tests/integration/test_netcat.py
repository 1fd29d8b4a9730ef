"""
Everyday tools against the real daemon: OpenBSD netcat over TCP and UDP.
"""

from __future__ import annotations

import subprocess
from typing import Any

from tests.integration.conftest import TIMEOUT, requireTool


def netcat(*args: str, stdin: bytes) -> bytes:
    return subprocess.run(
        [requireTool("nc"), *args],
        input=stdin,
        capture_output=True,
        timeout=TIMEOUT,
        check=True,
    ).stdout


def test_pipedLines(spawnGreetd: Any) -> None:
    """
    C{printf ... | nc}: every line answered in order, C{exit} closes, and
    nc ends because the daemon closed (C{-N} only half-closes).
    """
    daemon = spawnGreetd()
    output = netcat(
        "-N",
        "127.0.0.1",
        str(daemon.tcp[0][1]),
        stdin=b"Michael\nTracy\r\n\nSarah\nexit\nnever\n",
    )
    assert output == b"WelcomeHello, Michael!\nHello, Tracy!\r\nHello, Sarah!\n"


def test_telnetStyleCRLF(spawnGreetd: Any) -> None:
    """
    C{nc -C} ends lines with CRLF, as telnet does; replies follow suit.  It
    writes each line and its CRLF apart, so this runs in C{line} framing:
    in C{auto}, a first line whose LF arrives in a later chunk is answered
    by the raw rule (see docs/reference/protocol.rst).
    """
    daemon = spawnGreetd("--framing", "line")
    output = netcat(
        "-C", "-N", "127.0.0.1", str(daemon.tcp[0][1]), stdin=b"Ann\nexit\n"
    )
    assert output == b"Welcome\r\nHello, Ann!\r\n"


def test_udp(spawnGreetd: Any) -> None:
    daemon = spawnGreetd()
    output = netcat("-u", "-w1", "127.0.0.1", str(daemon.udp[0][1]), stdin=b"Sarah")
    assert output == b"Hello, Sarah!"
