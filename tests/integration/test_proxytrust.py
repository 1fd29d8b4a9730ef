"""
The PROXY protocol against the real daemon: only trusted peers may name a
client (C{--proxy-from}), a connection still sending its header is under
the limits from accept, a balancer's refusals are answered a bounded
number of times, a health check that sends messages is a client, and
refusals do not flood the log.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from typing import Any

from greetd.core.proxyheader import V2_SIGNATURE
from tests.integration.conftest import TIMEOUT
from tests.integration.helpers import (
    connectFrom,
    pacedFlood,
    receiveUntilClosed,
    refusalAnswersBound,
    rss,
    scrape,
    tcp,
    udpFrom,
    waiting,
)

#: A PROXY listener on loopback.
PROXIED = "haproxy:tcp:0:interface=127.0.0.1"

#: A UDP PROXY listener on loopback.
PROXIED_UDP = "haproxy:udp:0:interface=127.0.0.1"

#: A v2 header's fixed part that says 64 KiB follow: what a header that
#: never finishes, holding as much memory as it may, starts with.
ENDLESS_V2 = V2_SIGNATURE + struct.pack("!BBH", 0x21, 0x11, 0xFFFF)


def header(client: str, port: int = 5555) -> bytes:
    return b"PROXY TCP4 %s 127.0.0.1 %d 9999\r\n" % (client.encode(), port)


def accessLines(daemon: Any, pattern: str) -> list[str]:
    return [line for line in daemon.lines if pattern in line]


def test_onlyTrustedPeersNameClients(spawnGreetd: Any) -> None:
    """
    With C{--proxy-from 127.0.0.1}, a direct client on 127.0.0.2 claiming
    10.1.2.3 is not served under C{--allow 10.0.0.0/8}, and is warned of
    once however often it tries; the balancer's header naming the same
    client is believed, and the access line names both addresses.
    Datagrams from 127.0.0.2 naming 198.51.100.7 get nothing and do not
    spend that address's UDP budget.
    """
    daemon = spawnGreetd(
        "--tcp", PROXIED, "--udp", PROXIED_UDP, "--proxy-from", "127.0.0.1",
        "--allow", "10.0.0.0/8", "--allow", "198.51.100.0/24",
        "--udp-rate", "1", "--udp-global-rate", "0",
    )  # fmt: skip
    port, udpPort = daemon.tcp[0][1], daemon.udp[0][1]
    for _ in range(20):
        with connectFrom("127.0.0.2", port) as direct:
            try:
                direct.sendall(header("10.1.2.3") + b"Mallory\n")
                assert receiveUntilClosed(direct) == b""
            except ConnectionResetError:
                pass
    with connectFrom("127.0.0.1", port) as balanced:
        balanced.sendall(header("10.1.2.3") + b"Alice\n")
        assert balanced.recv(100).startswith(b"Welcome")
    daemon.waitFor(
        r"Connection from 10\.1\.2\.3:5555 via 127\.0\.0\.1:\d+ closed", timeout=TIMEOUT
    )
    warnings = accessLines(daemon, "bad PROXY header (peer not in --proxy-from)")
    assert len(warnings) == 1, warnings
    assert "Dropped a connection from 127.0.0.2:" in warnings[0]

    forger = udpFrom("127.0.0.2")
    for _ in range(50):
        forger.sendto(header("198.51.100.7") + b"x", ("127.0.0.1", udpPort))
    balancer = udpFrom("127.0.0.1")
    balancer.sendto(header("198.51.100.7") + b"Bob", ("127.0.0.1", udpPort))
    assert balancer.recv(100) == b"Hello, Bob!"
    time.sleep(0.2)
    assert waiting(forger) == 0
    forger.close()
    balancer.close()


def served(client: socket.socket, name: bytes = b"Ann") -> bool:
    """
    Whether C{client} is answered C{Hello, name!} before it is closed.
    """
    expected, received = b"Hello, " + name + b"!", b""
    while expected not in received:
        data = client.recv(100)
        if not data:
            break
        received += data
    return expected in received


def test_balancerInJSONRecord(spawnGreetd: Any) -> None:
    """
    In the JSON log, a proxied client's access record names the client as
    its C{peer} and the balancer in a field of its own, C{via}.
    """
    daemon = spawnGreetd("--tcp", PROXIED, "--no-udp", "--log-format", "json")
    with connectFrom("127.0.0.1", daemon.tcp[0][1]) as client:
        client.sendall(header("10.1.2.3") + b"exit\n")
        receiveUntilClosed(client)
    daemon.waitFor(r'"greetdEvent": "connection.close"', timeout=TIMEOUT)
    [record] = [
        json.loads(line) for line in daemon.lines if '"connection.close"' in line
    ]
    assert (record["peer"], record["peerHost"]) == ("10.1.2.3:5555", "10.1.2.3")
    assert record["via"].startswith("127.0.0.1:")


def test_untrustedHeadersHoldNothing(spawnGreetd: Any) -> None:
    """
    320 connections that never finish a header, from five addresses not in
    C{--proxy-from} (half of them a v2 header saying 64 KiB follow, and 60
    KiB of it), under C{--max-connections 40 --max-per-ip 5}: each is
    dropped at accept, so honest clients through the trusted balancer are
    all served, the metrics scrape answers, and the daemon's memory grows
    by a bounded amount.
    """
    daemon = spawnGreetd(
        "--tcp", PROXIED, "--no-udp", "--metrics", "tcp:0:interface=127.0.0.1",
        "--max-connections", "40", "--max-per-ip", "5",
        "--proxy-from", "127.0.0.1/32",
    )  # fmt: skip
    port = daemon.tcp[0][1]
    pid = daemon.process.pid
    before = rss(pid)
    stalled = []
    for index in range(320):
        attacker = connectFrom(f"127.0.0.{5 + index % 5}", port)
        attacker.setblocking(False)
        try:
            if index % 2:
                attacker.send(ENDLESS_V2 + b"\0" * 60 * 1024)
            else:
                attacker.send(b"PROXY TCP4 192.0.2.")
        except OSError:
            pass
        stalled.append(attacker)
    try:
        honest = 0
        for index in range(10):
            with connectFrom("127.0.0.1", port) as client:
                client.sendall(header(f"192.0.2.{index + 1}") + b"Ann\n")
                honest += served(client)
        assert honest == 10
        metrics = scrape(daemon.metrics[0])
        assert metrics[tcp("greetd_dropped_total", "proxy-header")] >= 315
        grown = rss(pid) - before
        print(f"RSS grew by {grown / 1e6:.1f} MB")
        assert grown < 8 * 1024 * 1024
    finally:
        for attacker in stalled:
            attacker.close()


def test_balancerBurstServed(spawnGreetd: Any) -> None:
    """
    200 connections from the trusted balancer at once, each with a header
    naming a client of its own, are all served under the default options:
    a balancer carries many clients, and is not capped as one.  All are
    opened before any header is sent, as when the daemon accepts a batch of
    a balancer's connections before reading any.
    """
    daemon = spawnGreetd("--tcp", PROXIED, "--no-udp")
    port = daemon.tcp[0][1]
    clients = []
    try:
        for _ in range(200):
            clients.append(
                socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
            )
        for index, client in enumerate(clients):
            client.sendall(header(f"10.0.{index}.1", 1000 + index) + b"Ann\n")
        assert sum(served(client) for client in clients) == 200
    finally:
        for client in clients:
            client.close()


def test_overTotalCapTold(spawnGreetd: Any) -> None:
    """
    Past C{--max-connections}, a proxied client is told
    C{Error: too many connections}, as a direct one is.
    """
    daemon = spawnGreetd(
        "--tcp", PROXIED, "--no-udp", "--max-connections", "2",
    )  # fmt: skip
    port = daemon.tcp[0][1]
    held = []
    try:
        for index in range(2):
            client = connectFrom("127.0.0.1", port)
            client.sendall(header(f"192.0.2.{index + 1}"))
            assert client.recv(7) == b"Welcome"
            held.append(client)
        with connectFrom("127.0.0.1", port) as refused:
            refused.sendall(header("192.0.2.3") + b"Ann\n")
            assert receiveUntilClosed(refused) == b"Error: too many connections\r\n"
    finally:
        for client in held:
            client.close()


def test_balancerRefusalsBounded(spawnGreetd: Any) -> None:
    """
    Under C{--udp-rate 10 --udp-global-rate 100}, 3,000 datagrams from a
    balancer naming one client get a bounded number of answers, replies
    and the empty answers to refusals together: each spends its own bucket.
    """
    daemon = spawnGreetd(
        "--no-tcp", "--udp", PROXIED_UDP, "--udp-rate", "10",
        "--udp-global-rate", "100",
    )  # fmt: skip
    target = ("127.0.0.1", daemon.udp[0][1])
    with udpFrom("127.0.0.1") as balancer:
        datagram = header("192.0.2.7") + b"x"
        answers, seconds = pacedFlood(balancer, target, datagram, 3000, settle=0.5)
    bound = refusalAnswersBound(seconds)
    print(f"{answers} answers to 3000 datagrams in {seconds:.2f}s (bound {bound:.0f})")
    assert 10 <= answers <= bound


def test_localHeaderSessionIsAClient(spawnGreetd: Any) -> None:
    """
    A connection with a v2 C{LOCAL} header that sends 1,000 messages is a
    client: its access line is written at info and it is counted in
    C{greetd_connections_total}; a real check (banner, close) is not.
    """
    daemon = spawnGreetd(
        "--tcp", PROXIED, "--no-udp", "--metrics", "tcp:0:interface=127.0.0.1",
    )  # fmt: skip
    port = daemon.tcp[0][1]
    local = V2_SIGNATURE + bytes([0x20, 0x00, 0, 0])
    with connectFrom("127.0.0.1", port) as check:
        check.sendall(local)
        assert check.recv(7) == b"Welcome"
    with connectFrom("127.0.0.1", port) as session:
        session.sendall(local + b"x\n" * 1000 + b"exit\n")
        received = receiveUntilClosed(session)
        assert received.count(b"Hello, x!") == 1000
    daemon.waitFor(r"Connection from 127\.0\.0\.1:\d+ closed \(exit\).*1000 messages")
    metrics = scrape(daemon.metrics[0])
    assert metrics[("greetd_connections_total", ())] == 1
    assert metrics[("greetd_health_checks_total", ())] == 2


def test_refusalsLoggedOncePerMinute(spawnGreetd: Any) -> None:
    """
    150 connections from one address over C{--max-per-ip} write one access
    line and one refusal line, not one each; the metrics count them all.
    """
    daemon = spawnGreetd(
        "--no-udp", "--metrics", "tcp:0:interface=127.0.0.1",
        "--max-per-ip", "1", "--rate-per-ip", "0",
    )  # fmt: skip
    port = daemon.tcp[0][1]
    with connectFrom("127.0.0.2", port) as held:
        assert held.recv(7) == b"Welcome"
        for _ in range(150):
            with connectFrom("127.0.0.2", port) as refused:
                receiveUntilClosed(refused)
        metrics = scrape(daemon.metrics[0])
        assert metrics[tcp("greetd_dropped_total", "max-per-ip")] == 150
    daemon.waitFor(r"Connection from 127\.0\.0\.2:\d+ closed \(closed\)")
    assert len(accessLines(daemon, "closed (refused)")) == 1
    assert len(accessLines(daemon, "Refused a connection from 127.0.0.2")) == 1


def test_acceptErrorsThrottled(spawnGreetd: Any) -> None:
    """
    Out of descriptors (a hard limit of 64, no connection cap), a flood of
    connections, held until the daemon has met EMFILE, writes each of
    Twisted's accept-error lines exactly once; the metrics count every
    connection that could not be accepted.
    """
    daemon = spawnGreetd(
        "--no-udp", "--metrics", "tcp:0:interface=127.0.0.1",
        "--max-connections", "0", "--max-per-ip", "0", "--rate-per-ip", "0",
        wrapper=("prlimit", "--nofile=64:64", "--"),
    )  # fmt: skip
    port = daemon.tcp[0][1]
    clients = []
    try:
        for _ in range(150):
            client = socket.socket()
            client.setblocking(False)
            client.connect_ex(("127.0.0.1", port))
            clients.append(client)
        daemon.waitFor(r"EMFILE recovery: Closed socket", timeout=TIMEOUT)
    finally:
        for client in clients:
            client.close()
    with connectFrom("127.0.0.1", port) as honest:
        honest.sendall(b"exit\n")
        receiveUntilClosed(honest)
    daemon.waitFor(r"Connection from 127\.0\.0\.1:\d+ closed \(exit\)")
    for text in ("EMFILE encountered", "EMFILE recovery: Closed socket"):
        assert len(accessLines(daemon, text)) == 1, text
    failed = scrape(daemon.metrics[0])[tcp("greetd_dropped_total", "accept")]
    print(f"{failed} connections not accepted")
    assert failed >= 1
