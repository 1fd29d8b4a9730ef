"""
The "Loop DoS" (CVE-2024-2169) against two real daemons: one datagram with
a forged source sets them answering each other.  Each reply is 8 bytes
longer than what it answers, so C{--max-length} ends the loop, and the
per-source rate ends it sooner.  The daemons' own metrics count what
passed; forging the source needs a raw socket: root only (CI runs as root).
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import pytest

from tests.integration.helpers import forgedDatagram, scrape

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="raw sockets need root")

#: The two daemons' addresses, of their own so that no stray datagram to
#: 127.0.0.1 from another program on this machine joins the loop.
FIRST, SECOND = "127.0.77.1", "127.0.77.2"


def counts(daemons: list[Any]) -> dict[str, float]:
    """
    Replies and drops by reason, summed over both daemons.
    """
    totals: dict[str, float] = {}
    for daemon in daemons:
        metrics = scrape(daemon.metrics[0])
        for (name, labels), value in metrics.items():
            if name in ("greetd_messages_total", "greetd_dropped_total"):
                key = dict(labels).get("reason", "replies")
                if dict(labels)["transport"] == "udp":
                    totals[key] = totals.get(key, 0) + value
    return totals


def runLoop(spawnGreetd: Any, *args: str) -> tuple[dict[str, float], list[Any]]:
    """
    Start two daemons with C{args}, forge one datagram from the second to
    the first, and return their counts once nothing has changed for a
    second (30 s at most).
    """
    daemons = [
        spawnGreetd(
            "--no-tcp",
            "--udp",
            f"udp:0:interface={host}",
            "--metrics",
            "tcp:0:interface=127.0.0.1",
            "--log-level",
            "debug",
            *args,
        )
        for host in (FIRST, SECOND)
    ]
    firstAddress, secondAddress = (daemon.udp[0] for daemon in daemons)
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw:
        raw.sendto(forgedDatagram(secondAddress, firstAddress, b"x"), firstAddress)
    started = quietSince = time.monotonic()
    seen = counts(daemons)
    while time.monotonic() - quietSince < 1.0 and time.monotonic() - started < 30:
        time.sleep(0.1)
        now = counts(daemons)
        if now != seen:
            seen, quietSince = now, time.monotonic()
    for daemon in daemons:
        assert daemon.process.poll() is None
    return seen, daemons


def test_maxLengthEndsLoop(spawnGreetd: Any) -> None:
    """
    Without a rate limit the loop runs until a reply outgrows
    C{--max-length}: the forged byte is answered with 9 bytes, those with 17,
    and so on; the datagrams of 1, 9, ..., 193 bytes are answered (25) and
    the one of 201 is dropped.
    """
    maxLength = 200
    seen, daemons = runLoop(
        spawnGreetd, "--max-length", str(maxLength), "--udp-rate", "0"
    )
    assert seen["replies"] == len(range(1, maxLength + 1, 8)) == 25
    assert seen["length"] == 1
    assert seen["rate"] == seen["global-rate"] == 0
    # The daemon that got the overlong datagram says why it dropped it.
    dropper = daemons[int(seen["replies"]) % 2]
    dropper.waitFor(r"Dropped a datagram from 127\.0\.77\.\d:\d+: length")


def test_rateEndsLoopSooner(spawnGreetd: Any) -> None:
    """
    With C{--udp-rate N}, each daemon answers the other (its only source) at
    most N times in a burst: the loop runs faster than the buckets refill,
    so it ends after about 2N replies, long before the length limit.
    """
    rate = 5
    seen, daemons = runLoop(spawnGreetd, "--udp-rate", str(rate))
    assert 2 * rate <= seen["replies"] <= 2 * rate + 2
    assert seen["rate"] == 1
    assert seen["length"] == 0
    dropper = daemons[int(seen["replies"]) % 2]
    dropper.waitFor(r"Dropped a datagram from 127\.0\.77\.\d:\d+: rate")
