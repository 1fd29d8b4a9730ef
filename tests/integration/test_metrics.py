"""
Prometheus metrics from the real daemon, scraped over HTTP after real
traffic and parsed with prometheus_client's own parser.
"""

from __future__ import annotations

import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from greetd.testing import TIMEOUT
from tests.integration.test_seed import runSeedClient

#: A sample's name and sorted labels.
SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def scrape(address: tuple[str, int]) -> dict[SampleKey, float]:
    """
    GET C{/metrics} and parse every sample.
    """
    host, port = address
    with urllib.request.urlopen(
        f"http://{host}:{port}/metrics", timeout=TIMEOUT
    ) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def labelled(name: str, transport: str, reason: str | None = None) -> SampleKey:
    """
    The key of a sample in what L{scrape} returns.
    """
    labels = {"transport": transport}
    if reason is not None:
        labels["reason"] = reason
    return name, tuple(sorted(labels.items()))


def tcp(name: str, reason: str | None = None) -> SampleKey:
    return labelled(name, "tcp", reason)


def udp(name: str, reason: str | None = None) -> SampleKey:
    return labelled(name, "udp", reason)


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
    import socket

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
