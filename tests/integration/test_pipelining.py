"""
One address pipelining as fast as it can on several connections (to the
greeting service, or scrapes to the metrics listener), against the real
daemon, while an honest client from another address talks: the work one
source gets per reactor turn is bounded, so the honest client's round
trip stays within a small factor of its own idle figure, measured in the
same run.
"""

from __future__ import annotations

import multiprocessing
import selectors
import socket
import statistics
import time
from typing import Any

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

#: How much slower the honest median may be under the flood than idle.
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


def medianRoundTrip(client: socket.socket) -> float:
    """
    The median of L{ROUNDS} round trips of one message on C{client}.
    """
    samples = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        client.sendall(b"honest\n")
        reply = b""
        while not reply.endswith(b"\n"):
            data = client.recv(1024)
            assert data, "closed"
            reply += data
        samples.append(time.perf_counter() - started)
        assert reply == b"Hello, honest!\n"
    return statistics.median(samples)


def honestBesideFlood(port: int, target: int, chunk: bytes, connections: int) -> None:
    """
    Measure the honest client's median round trip to C{port} idle, then
    while L{flood} sends C{chunk} on C{connections} connections to
    C{target}, and check that the flood slowed it by less than L{FACTOR}.
    """
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
    assert flooded < FACTOR * idle, (
        f"honest median {idle * 1e3:.3f} ms idle, {flooded * 1e3:.3f} ms under "
        f"a flood answered at {rate / 1e6:.1f} MB/s"
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
