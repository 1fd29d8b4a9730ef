"""
One address pipelining as fast as it can on several connections (to the
greeting service, or scrapes to the metrics listener), against the real
daemon, while an honest client from another address talks: the work one
source gets per reactor turn is bounded, so the honest client waits for
about one turn of the flood's work, not for all of it.  The bound is a
factor of what the honest client measures idle in the same run: its own
round trip plus the round trip of one turn's work of the flood (128
pipelined messages, or one scrape), so it holds however fast the machine
and interpreter answer a single message.
"""

from __future__ import annotations

import multiprocessing
import selectors
import socket
import statistics
import time
from typing import Any, Callable

from tests.integration.conftest import TIMEOUT
from tests.integration.helpers import connectFrom

#: Pipelining connections from the flooding address.
FLOODERS = 8

#: What each flooding connection sends at a time: 32,768 two-byte messages.
CHUNK = b"a\n" * 32768

#: What a flooding scraper sends at a time: 2,048 pipelined scrapes.
SCRAPES = b"GET /metrics HTTP/1.1\r\n\r\n" * 2048

#: How long the flood goes on at most, in seconds.
FLOOD_SECONDS = 30.0

#: Round trips measured, idle and under the flood, for each median.
ROUNDS = 100

#: One turn of a flooding source's work on the greeting service: 256 bytes
#: of pipelined messages (L{greetd.protocols.flow.DEFAULT_PER_TURN}).
TURN = b"a\n" * 128

#: One turn of a flooding scraper's work: one scrape.
SCRAPE = b"GET /metrics HTTP/1.1\r\n\r\n"

#: How many of (idle round trip + one turn of the flood's work, idle) the
#: honest median may take under the flood.  A daemon that answered a whole
#: read before anything else would take hundreds: a read is 64 KiB.
FACTOR = 25


def flood(port: int, answered: Any, stop: Any, chunk: bytes, connections: int) -> None:
    """
    C{connections} connections from 127.0.0.7, each sending C{chunk} again
    and again and reading (and discarding) its replies, until C{stop} is
    set or L{FLOOD_SECONDS} pass; C{answered} counts the bytes of replies
    read.
    """
    selector = selectors.DefaultSelector()
    for _ in range(connections):
        client = connectFrom("127.0.0.7", port)
        client.setblocking(False)
        selector.register(client, selectors.EVENT_READ | selectors.EVENT_WRITE)
    deadline = time.monotonic() + FLOOD_SECONDS
    while not stop.is_set() and time.monotonic() < deadline:
        for key, events in selector.select(0.1):
            client = key.fileobj
            assert isinstance(client, socket.socket)
            try:
                if events & selectors.EVENT_READ:
                    answered.value += len(client.recv(1 << 20))
                if events & selectors.EVENT_WRITE:
                    client.send(chunk)
            except BlockingIOError:
                pass


def medianRoundTrip(
    client: socket.socket,
    request: bytes = b"honest\n",
    ends: Callable[[bytes], bool] | None = None,
) -> float:
    """
    The median of L{ROUNDS} round trips of C{request} on C{client}, each
    reading until C{ends} says the reply is whole.
    """
    if ends is None:
        ends = exactly(b"Hello, honest!\n")
    samples = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        client.sendall(request)
        reply = b""
        while not ends(reply):
            data = client.recv(1 << 16)
            assert data, f"closed after {reply[-80:]!r}"
            reply += data
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def turnRoundTrip(port: int, chunk: bytes) -> float:
    """
    The idle median round trip, from the honest address, of one turn of the
    work C{chunk} floods C{port} with: L{TURN} or L{SCRAPE}.
    """
    with connectFrom("127.0.0.9", port) as client:
        if chunk.startswith(SCRAPE):
            medianRoundTrip(client, SCRAPE, scraped)
            return medianRoundTrip(client, SCRAPE, scraped)
        assert client.recv(9) == b"Welcome\r\n"
        replies = exactly(b"Hello, a!\n" * (len(TURN) // 2))
        medianRoundTrip(client, TURN, replies)
        return medianRoundTrip(client, TURN, replies)


def exactly(expected: bytes) -> Callable[[bytes], bool]:
    """
    An end test for L{medianRoundTrip}: the reply is whole once it is as
    long as C{expected}, and must then be C{expected}.
    """

    def ends(reply: bytes) -> bool:
        if len(reply) < len(expected):
            return False
        assert reply == expected, reply[:200]
        return True

    return ends


def scraped(reply: bytes) -> bool:
    """
    Whether C{reply} holds one whole metrics response.
    """
    head, found, body = reply.partition(b"\r\n\r\n")
    if not found:
        return False
    assert head.startswith(b"HTTP/1.1 200 "), head
    length = [
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    ]
    assert length, head
    return len(body) >= length[0]


def honestBesideFlood(port: int, target: int, chunk: bytes, connections: int) -> None:
    """
    Measure the honest client's median round trip to C{port} idle, and of
    one turn of the flood's work on C{target}, then while L{flood} sends
    C{chunk} on C{connections} connections to C{target}, check that the
    honest median stays within L{FACTOR} times their sum.
    """
    turn = turnRoundTrip(target, chunk)
    with connectFrom("127.0.0.9", port) as honest:
        assert honest.recv(9) == b"Welcome\r\n"
        medianRoundTrip(honest)  # Warm-up: PyPy's JIT, the caches.
        idle = medianRoundTrip(honest)
        context = multiprocessing.get_context("spawn")
        answered = context.Value("q", 0)
        stop = context.Event()
        flooder = context.Process(
            target=flood, args=(target, answered, stop, chunk, connections)
        )
        flooder.start()
        try:
            deadline = time.monotonic() + TIMEOUT
            while answered.value < 10 * len(chunk) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert answered.value >= 10 * len(chunk), "the flood never flowed"
            before, started = answered.value, time.monotonic()
            flooded = medianRoundTrip(honest)
            rate = (answered.value - before) / (time.monotonic() - started)
            assert answered.value > before, "the flood stopped while measured"
        finally:
            stop.set()
            flooder.join(TIMEOUT)
    assert flooded < FACTOR * (idle + turn), (
        f"honest median {idle * 1e3:.3f} ms idle (a turn of the flood's work "
        f"{turn * 1e3:.3f} ms), {flooded * 1e3:.3f} ms under a flood answered "
        f"at {rate / 1e6:.1f} MB/s"
    )


def test_pipeliningFloodLeavesHonestClientFast(spawnGreetd: Any) -> None:
    daemon = spawnGreetd("--rate-per-ip", "0", "--framing", "line")
    port = daemon.tcp[0][1]
    honestBesideFlood(port, port, CHUNK, FLOODERS)


def test_metricsPipeliningLeavesHonestClientFast(spawnGreetd: Any) -> None:
    """
    One connection pipelining scrapes to the metrics listener, reading its
    responses, has one answered per reactor turn.
    """
    daemon = spawnGreetd(
        "--rate-per-ip", "0", "--framing", "line",
        "--metrics", "tcp:0:interface=127.0.0.1",
    )  # fmt: skip
    honestBesideFlood(daemon.tcp[0][1], daemon.metrics[0][1], SCRAPES, 1)
