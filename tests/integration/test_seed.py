"""
The seed tutorial's own clients against the real daemon.
"""

from __future__ import annotations

import fcntl
import socket
from typing import Any, Iterator

import pytest

from tests.integration.helpers import SEED_TCP_OUTPUT, SEED_UDP_OUTPUT, runSeedClient


def test_seedClients(spawnGreetd: Any) -> None:
    """
    Both seed clients print what they printed against the seed's server.
    """
    daemon = spawnGreetd()
    assert runSeedClient("tcp_client", daemon.tcp[0][1]) == SEED_TCP_OUTPUT
    assert runSeedClient("udp_client", daemon.udp[0][1]) == SEED_UDP_OUTPUT


def _portFree(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def seedPort() -> Iterator[None]:
    """
    The seed's port, 9999, this machine's own: held under a lock for the
    test and the daemon's stop, so that suites run side by side (CPython's
    and PyPy's in CI) take turns rather than race for it.
    """
    with open("/tmp/greetd-tests-port-9999.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def test_defaultsServeSeedUnchanged(seedPort: None, spawnGreetd: Any) -> None:
    """
    With no options (what C{make run} starts), greetd serves both seed
    clients, unchanged, on the seed's 127.0.0.1:9999.
    """
    if not _portFree(9999):
        pytest.skip("127.0.0.1:9999 is in use on this machine")
    daemon = spawnGreetd(ephemeral=False)
    assert daemon.tcp == [("127.0.0.1", 9999)]
    assert daemon.udp == [("127.0.0.1", 9999)]
    assert runSeedClient("tcp_client", 9999) == SEED_TCP_OUTPUT
    assert runSeedClient("udp_client", 9999) == SEED_UDP_OUTPUT


def test_connectionLogged(spawnGreetd: Any) -> None:
    """
    A session is one line of the access log, written when it closes, with
    how it ended and its figures, and no line per message (the line when
    it opens is at debug level).
    """
    daemon = spawnGreetd()
    runSeedClient("tcp_client", daemon.tcp[0][1])
    match = daemon.waitFor(
        r"\[greetd\.access#info\] Connection from 127\.0\.0\.1:(\d+) closed "
        r"\(exit\) after [\d.]+s: 3 messages, 21 bytes received, 48 bytes sent"
    )
    peer = match.group(1)
    assert sum(f"127.0.0.1:{peer}" in line for line in daemon.lines) == 1
    assert not any("Michael" in line for line in daemon.lines)
