"""
C{SIGHUP} to the parent of C{--workers}: code upgraded on disk reaches every
worker, one at a time, while clients talk, and no exchange fails.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import greetd
from greetd.testing import TIMEOUT
from tests.integration.helpers import (
    UNLIMITED,
    Load,
    alive,
    children,
    connectFrom,
    receiveUntilClosed,
    scrape,
    startedWorkers,
)

#: The banner the upgraded code sends by default.
UPGRADED = b"Welcome, v2"


def versionedExchange(port: int, name: bytes, source: str) -> bytes:
    """
    A whole honest exchange, under the old code's banner or the upgraded
    one: the banner it got.
    """
    reply = b"Hello, " + name + b"!\n"
    with connectFrom(source, port) as client:
        client.sendall(name + b"\n")
        received = b""
        while not received.endswith(reply):
            data = client.recv(1024)
            assert data, f"closed after {received!r}"
            received += data
        banner = received[: -len(reply)]
        assert banner in (b"Welcome", UPGRADED), received
        client.sendall(b"exit\n")
        assert receiveUntilClosed(client) == b""
    return banner


def copyPackage(destination: Path) -> Path:
    """
    A copy of the C{greetd} package under C{destination}, for a daemon run
    with C{PYTHONPATH=destination} to import: its code "on disk".
    """
    source = Path(greetd.__file__).parent
    shutil.copytree(
        source, destination / "greetd", ignore=shutil.ignore_patterns("__pycache__")
    )
    return destination / "greetd"


def upgrade(package: Path) -> None:
    """
    Change the copy's default banner, as an upgrade changes behaviour.
    """
    module = package / "protocols" / "greeting.py"
    text = module.read_text()
    old = 'DEFAULT_WELCOME = b"Welcome"\n'
    assert old in text
    module.write_text(text.replace(old, f"DEFAULT_WELCOME = {UPGRADED!r}\n"))


#: The sample of C{greetd_connections_total}.
CONNECTIONS = ("greetd_connections_total", ())


class Scraper:
    """
    Scrapes C{greetd_connections_total} every 50 ms in a thread until
    stopped (at most L{TIMEOUT} seconds).

    @ivar totals: Every value read, in order.
    """

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.totals: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT)

    def _run(self) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not self._stop.wait(0.05) and time.monotonic() < deadline:
            self.totals.append(scrape(self.address)[CONNECTIONS])


def test_sighupUpgradesWorkers(spawnGreetd: Any, tmp_path: Path) -> None:
    """
    Two workers run from a copy of the package while 20 clients talk in a
    loop; the copy is edited and the parent gets SIGHUP.  Each worker is
    replaced (a new one serving before the old one drains), every exchange
    succeeds throughout, every worker pid is new afterwards, and every
    exchange started once the old workers are gone gets the new banner.
    Nothing is killed.  The summed connection counter never goes backwards
    and, once the load stops, counts every exchange: replaced workers'
    counters, up to their last connection, are kept.
    """
    package = copyPackage(tmp_path / "code")
    daemon = spawnGreetd(
        "--workers", "2", "--no-udp", *UNLIMITED,
        "--metrics", "tcp:0:interface=127.0.0.1",
        env={"PYTHONPATH": str(tmp_path / "code"), "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    old = startedWorkers(daemon, 2)
    port = daemon.tcp[0][1]
    with Load(port, exchange=versionedExchange) as load:
        load.waitForExchanges(200)
        assert set(load.seenSince(0)) == {b"Welcome"}
        upgrade(package)
        with Scraper(daemon.metrics[0]) as scraper:
            hangUpAt = time.monotonic()
            os.kill(daemon.process.pid, signal.SIGHUP)
            daemon.waitFor(r"Reloaded: 2 workers replaced")
            new = {}
            for slot in (1, 2):
                started = daemon.waitFor(
                    rf"Started worker {slot} \(pid (\d+)\) to replace pid {old[slot]}"
                )
                new[slot] = int(started.group(1))
                daemon.waitFor(
                    rf"Worker {slot} \(pid {old[slot]}\) has drained and exited"
                )
            goneAt = time.monotonic()
            load.waitForExchanges(200, since=goneAt)
    assert load.failuresSince(0) == []
    assert len(scraper.totals) > 2
    assert scraper.totals == sorted(scraper.totals)
    deadline = time.monotonic() + TIMEOUT
    while scrape(daemon.metrics[0])[CONNECTIONS] != len(load.results):
        assert time.monotonic() < deadline, (
            scrape(daemon.metrics[0])[CONNECTIONS],
            len(load.results),
        )
        time.sleep(0.1)
    # Clients were served while the workers were being replaced.
    assert load.completedSince(hangUpAt) - load.completedSince(goneAt) > 0
    assert set(load.seenSince(goneAt)) == {UPGRADED}
    assert children(daemon.process.pid) == set(new.values())
    assert not set(new.values()) & set(old.values())
    assert not [pid for pid in old.values() if alive(pid)]
    # Replaced in order: slot 1's successor served before slot 1 drained,
    # and slot 2's was started only then.
    log = daemon.output
    order = [
        f"Worker 1 (pid {new[1]}) serves; pid {old[1]} drains",
        f"Started worker 2 (pid {new[2]}) to replace pid {old[2]}",
        f"Worker 2 (pid {new[2]}) serves; pid {old[2]} drains",
    ]
    assert [log.index(line) for line in order] == sorted(
        log.index(line) for line in order
    )
    assert not re.search(r"died|Killing|Reload stopped", log), log
    # The daemon is unharmed: it still stops cleanly.
    assert daemon.stop() == -signal.SIGTERM


def test_brokenUpgradeKeepsOldWorkers(spawnGreetd: Any, tmp_path: Path) -> None:
    """
    An upgrade whose code cannot even be imported stops the reload at the
    first replacement, with an error: the old workers keep serving every
    exchange.  Once the code is mended, the next SIGHUP replaces them.
    """
    package = copyPackage(tmp_path / "code")
    daemon = spawnGreetd(
        "--workers", "2", "--no-udp", *UNLIMITED,
        env={"PYTHONPATH": str(tmp_path / "code"), "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    old = startedWorkers(daemon, 2)
    module = package / "protocols" / "greeting.py"
    working = module.read_text()
    module.write_text(working + '\nraise RuntimeError("a broken upgrade")\n')
    with Load(daemon.tcp[0][1], clients=5, exchange=versionedExchange) as load:
        load.waitForExchanges(50)
        os.kill(daemon.process.pid, signal.SIGHUP)
        failed = daemon.waitFor(r"Reload stopped at worker 1: its replacement .*")
        daemon.waitFor(r"RuntimeError: a broken upgrade")
        stoppedAt = time.monotonic()
        load.waitForExchanges(50, since=stoppedAt)
        assert children(daemon.process.pid) == set(old.values())
        assert set(load.seenSince(0)) == {b"Welcome"}
        module.write_text(working)
        os.kill(daemon.process.pid, signal.SIGHUP)
        daemon.waitFor(r"Reloaded: 2 workers replaced")
        for slot, pid in old.items():
            daemon.waitFor(rf"Worker {slot} \(pid {pid}\) has drained and exited")
    assert load.failuresSince(0) == []
    assert f"worker 1: pid {old[1]}" in failed.group(0)
    # Slot 2 was replaced only by the second reload.
    assert daemon.output.count(f"to replace pid {old[2]}") == 1
    assert not set(children(daemon.process.pid)) & set(old.values())
