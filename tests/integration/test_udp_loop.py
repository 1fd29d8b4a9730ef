"""
The "Loop DoS" (CVE-2024-2169) against two real daemons: one datagram with
a forged source sets them answering each other.  Each reply is 8 bytes
longer than what it answers, so C{--max-length} ends the loop, and the
per-source rate bounds how fast it runs meanwhile.

Forging the source needs a raw socket and counting the loop's datagrams a
packet socket on C{lo}: root only (CI runs as root).
"""

from __future__ import annotations

import os
import socket
import struct
import time
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="raw and packet sockets need root"
)

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def forgedDatagram(
    source: tuple[str, int], target: tuple[str, int], payload: bytes
) -> bytes:
    """
    An IPv4 packet carrying a UDP datagram from C{source}, which we do not
    own, to C{target}.  The kernel fills in the IP checksum; a UDP checksum
    of 0 means none.
    """
    udp = struct.pack("!HHHH", source[1], target[1], 8 + len(payload), 0) + payload
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        0x4242,
        0,
        64,
        socket.IPPROTO_UDP,
        0,
        socket.inet_aton(source[0]),
        socket.inet_aton(target[0]),
    )
    return header + udp


class LoopCounter:
    """
    Counts UDP datagrams between two loopback ports, as seen on C{lo}.
    """

    def __init__(self, ports: set[int]) -> None:
        self.ports = ports
        self.lengths: list[tuple[float, int]] = []
        self.socket = socket.socket(
            socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)
        )
        self.socket.bind(("lo", 0))
        self.socket.setblocking(False)

    def drain(self) -> None:
        while True:
            try:
                frame, address = self.socket.recvfrom(65535)
            except BlockingIOError:
                return
            if address[2] == PACKET_OUTGOING:
                continue
            packet = frame[14:]
            if len(packet) < 28 or packet[9] != socket.IPPROTO_UDP:
                continue
            headerLength = (packet[0] & 0x0F) * 4
            sourcePort, targetPort, length = struct.unpack(
                "!HHH", packet[headerLength : headerLength + 6]
            )
            if {sourcePort, targetPort} == self.ports:
                self.lengths.append((time.monotonic(), length - 8))

    def close(self) -> None:
        self.socket.close()


def runLoop(spawnGreetd: Any, *args: str) -> tuple[list[int], list[Any]]:
    """
    Start two daemons with C{args}, forge one datagram from the second to
    the first, and record the lengths of the datagrams between them until
    none has passed for 1.5 s (30 s at most).
    """
    daemons = [spawnGreetd("--no-tcp", *args) for _ in range(2)]
    firstAddress, secondAddress = (daemon.udp[0] for daemon in daemons)
    counter = LoopCounter({firstAddress[1], secondAddress[1]})
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw:
            raw.sendto(forgedDatagram(secondAddress, firstAddress, b"x"), firstAddress)
        started = quietSince = time.monotonic()
        seen = 0
        while time.monotonic() - quietSince < 1.5 and time.monotonic() - started < 30:
            time.sleep(0.05)
            counter.drain()
            if len(counter.lengths) != seen:
                seen = len(counter.lengths)
                quietSince = time.monotonic()
    finally:
        counter.close()
    for daemon in daemons:
        assert daemon.process.poll() is None
    return [length for _, length in counter.lengths], daemons


def test_maxLengthEndsLoop(spawnGreetd: Any) -> None:
    """
    Without a rate limit the loop runs until a reply outgrows
    C{--max-length}: the forged byte, then replies of 9, 17, ... bytes.
    """
    maxLength = 200
    lengths, daemons = runLoop(
        spawnGreetd, "--max-length", str(maxLength), "--udp-rate", "0"
    )
    assert lengths == list(range(1, maxLength + 9, 8))
    assert lengths[-1] > maxLength
    # The daemon that got the last, overlong datagram says why it dropped it.
    dropper = daemons[(len(lengths) - 1) % 2]
    dropper.waitFor(r"Dropped a datagram from 127\.0\.0\.1:\d+: length")


def test_rateEndsLoopSooner(spawnGreetd: Any) -> None:
    """
    With C{--udp-rate N}, each daemon answers the other (its only source) at
    most N times in a burst: a loop runs faster than the buckets refill, so
    it ends after about 2N replies, long before the length limit.
    """
    rate = 5
    lengths, daemons = runLoop(spawnGreetd, "--udp-rate", str(rate))
    assert lengths == list(range(1, 8 * len(lengths), 8))
    assert 2 * rate + 1 <= len(lengths) <= 2 * rate + 3
    dropper = daemons[(len(lengths) - 1) % 2]
    dropper.waitFor(r"Dropped a datagram from 127\.0\.0\.1:\d+: rate")
