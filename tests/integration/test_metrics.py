"""
Prometheus metrics from the real daemon, scraped over HTTP after real
traffic and parsed with prometheus_client's own parser.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from typing import Any

from greetd.ops.metricshttp import MetricsChannel, MetricsSite
from greetd.testing import TIMEOUT
from tests.integration.helpers import (
    honestExchange,
    receiveUntilClosed,
    runSeedClient,
    scrape,
    status,
    tcp,
    udp,
)


def test_scrapeAfterSeedSessions(spawnGreetd: Any) -> None:
    daemon = spawnGreetd("--metrics", "tcp:0:interface=127.0.0.1", "--max-length", "16")
    runSeedClient("tcp_client", daemon.tcp[0][1])
    runSeedClient("udp_client", daemon.udp[0][1])
    daemon.waitFor(r"Connection from .* closed")
    metrics = scrape(daemon.metrics[0])
    assert metrics[("greetd_connections_total", ())] == 1
    assert metrics[("greetd_connections_open", ())] == 0
    assert metrics[tcp("greetd_messages_total")] == 3
    assert metrics[udp("greetd_messages_total")] == 3
    assert metrics[tcp("greetd_bytes_received_total")] == 21
    assert metrics[tcp("greetd_bytes_sent_total")] == 48
    assert metrics[udp("greetd_bytes_received_total")] == 17
    assert metrics[udp("greetd_bytes_sent_total")] == 41
    assert metrics[udp("greetd_dropped_total", "length")] == 0
    assert metrics[("process_open_fds", ())] > 0


def test_dropsAndErrorsCounted(spawnGreetd: Any) -> None:
    daemon = spawnGreetd(
        "--metrics", "tcp:0:interface=127.0.0.1", "--max-length", "16",
        "--max-connections", "1",
    )  # fmt: skip
    port = daemon.tcp[0][1]
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as first:
        assert first.recv(7) == b"Welcome"
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as second:
            assert second.recv(100) == b"Error: too many connections\r\n"
        first.sendall(b"x" * 17)
        assert first.recv(100) == b"Error: message longer than 16 bytes"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(TIMEOUT)
        client.sendto(b"y" * 17, daemon.udp[0])
        client.sendto(b"ok", daemon.udp[0])
        assert client.recv(100) == b"Hello, ok!"
    metrics = scrape(daemon.metrics[0])
    assert metrics[tcp("greetd_dropped_total", "max-connections")] == 1
    assert metrics[tcp("greetd_errors_total", "length")] == 1
    assert metrics[udp("greetd_dropped_total", "length")] == 1
    assert metrics[udp("greetd_messages_total")] == 1


def httpExchange(address: tuple[str, int], request: bytes) -> bytes:
    """
    Send C{request} as it is on a new connection and return everything
    the daemon sends back until it closes the connection.
    """
    with socket.create_connection(address, timeout=TIMEOUT) as client:
        client.sendall(request)
        return receiveUntilClosed(client)


def test_onlyGetAndHeadOfMetrics(spawnGreetd: Any) -> None:
    """
    Only C{GET} and C{HEAD} of C{/metrics} are answered: another method is
    refused before its body is read (here a body of 100 MB that never
    comes), a body is refused, and other paths are not found.
    """
    daemon = spawnGreetd("--metrics", "tcp:0:interface=127.0.0.1")
    address = daemon.metrics[0]
    headers = b" HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n"
    huge = b"Content-Length: 100000000\r\n\r\n"
    for request, expected in [
        (b"POST /metrics" + headers + huge, 405),
        (b"PUT /metrics" + headers + huge, 405),
        (b"DELETE /" + headers + b"\r\n", 405),
        (b"GET /metrics" + headers + b"Content-Length: 5\r\n\r\nhello", 413),
        (b"GET /metrics" + headers + b"Transfer-Encoding: chunked\r\n\r\n", 413),
        (b"GET /other" + headers + b"\r\n", 404),
        (b"GET /metrics/more" + headers + b"\r\n", 404),
        (b"GET /metrics" + headers + b"\r\n", 200),
    ]:
        response = httpExchange(address, request)
        assert status(response) == expected, (request, response[:200])
    refused = httpExchange(address, b"POST /metrics" + headers + huge)
    assert b"\r\nAllow: GET, HEAD\r\n" in refused
    head = httpExchange(address, b"HEAD /metrics" + headers + b"\r\n")
    assert status(head) == 200
    assert head.endswith(b"\r\n\r\n"), head[-100:]
    assert scrape(address)[("greetd_connections_open", ())] == 0


def test_metricsConnectionLimit(spawnGreetd: Any) -> None:
    """
    The metrics listener keeps at most ten connections open, apart from
    greetd's: forty idle ones leave greetd's clients served, the rest are
    closed as they come, and once they go a scrape is answered.
    """
    daemon = spawnGreetd(
        "--metrics", "tcp:0:interface=127.0.0.1", "--max-connections", "20"
    )
    idle = [
        socket.create_connection(daemon.metrics[0], timeout=TIMEOUT) for _ in range(40)
    ]
    try:
        honestExchange(daemon.tcp[0][1], source="127.0.0.1")
        deadline = time.monotonic() + TIMEOUT
        closed: set[socket.socket] = set()
        while len(closed) < 30 and time.monotonic() < deadline:
            readable, _, _ = select.select(
                [client for client in idle if client not in closed], [], [], 0.5
            )
            closed.update(readable)
        assert len(closed) == 30
        for client in closed:
            with contextlib.suppress(ConnectionResetError):
                assert client.recv(1024) == b""
    finally:
        for client in idle:
            client.close()
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            metrics = scrape(daemon.metrics[0])
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert metrics[("greetd_connections_total", ())] == 1


def test_nonReadingScrapersCut(spawnGreetd: Any) -> None:
    """
    Ten clients that pipeline scrapes and never read hold every place of
    the metrics listener, but only until their requests' deadline and the
    close's have passed: then greetd cuts them, and an honest scrape is
    answered while they are still connected.
    """
    daemon = spawnGreetd("--metrics", "tcp:0:interface=127.0.0.1", "--no-udp")
    address = daemon.metrics[0]
    scrapers = []
    for _ in range(MetricsSite.maxConnections):
        scraper = socket.socket()
        scraper.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        scraper.connect(address)
        scraper.sendall(b"GET /metrics HTTP/1.1\r\n\r\n" * 1500)
        scrapers.append(scraper)
    started = time.monotonic()
    bound = MetricsChannel.requestTimeout + MetricsChannel.closeTimeout
    refused = 0
    try:
        while True:
            try:
                scrape(address)
                break
            except OSError:
                refused += 1
                assert time.monotonic() < started + bound + TIMEOUT, (
                    "non-reading scrapers still hold the metrics listener"
                )
                time.sleep(0.5)
        assert refused, "the scrapers never held the listener"
    finally:
        for scraper in scrapers:
            scraper.close()
