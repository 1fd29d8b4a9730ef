"""
One address pipelining as fast as it can on several connections, against
the real daemon, while an honest client from another address talks: the
work one source gets per reactor turn is bounded, so the honest client's
round trip stays within a small factor of its own idle figure, measured
in the same run.
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

#: How long the flood goes on at most, in seconds.
FLOOD_SECONDS = 30.0

#: Round trips measured, idle and under the flood, for each median.
ROUNDS = 100

#: How much slower the honest median may be under the flood than idle.
FACTOR = 25


def flood(port: int, answered: Any, stop: Any) -> None:
    """
    L{FLOODERS} connections from 127.0.0.7, each sending L{CHUNK} again and
    again and reading (and discarding) its replies, until C{stop} is set or
    L{FLOOD_SECONDS} pass; C{answered} counts the bytes of replies read.
    """
    selector = selectors.DefaultSelector()
    for _ in range(FLOODERS):
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
                    client.send(CHUNK)
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


def test_pipeliningFloodLeavesHonestClientFast(spawnGreetd: Any) -> None:
    daemon = spawnGreetd("--rate-per-ip", "0", "--framing", "line")
    port = daemon.tcp[0][1]
    with connectFrom("127.0.0.9", port) as honest:
        assert honest.recv(9) == b"Welcome\r\n"
        medianRoundTrip(honest)  # Warm-up: PyPy's JIT, the caches.
        idle = medianRoundTrip(honest)
        context = multiprocessing.get_context("spawn")
        answered = context.Value("q", 0)
        stop = context.Event()
        flooder = context.Process(target=flood, args=(port, answered, stop))
        flooder.start()
        try:
            deadline = time.monotonic() + TIMEOUT
            while answered.value < 10 * len(CHUNK) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert answered.value >= 10 * len(CHUNK), "the flood never flowed"
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
