"""
Privileged ports: twistd binds them as root in C{privilegedStartService},
then drops to C{--uid}/C{--gid} before serving.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.integration.conftest import TIMEOUT
from tests.integration.helpers import exchange

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="binding a port below 1024 needs root"
)


def freePrivilegedPort() -> int:
    """
    A loopback port below 1024 that is free for both TCP and UDP now.
    """
    for port in range(700, 1024):
        try:
            with socket.socket() as tcp, socket.socket(type=socket.SOCK_DGRAM) as udp:
                tcp.bind(("127.0.0.1", port))
                udp.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    pytest.skip("no port below 1024 is free on 127.0.0.1")


@pytest.fixture
def sharedDirectory() -> Iterator[Path]:
    """
    A working directory nobody may use, as the unprivileged daemon's.
    """
    directory = Path(tempfile.mkdtemp(prefix="greetd-privileged-"))
    directory.chmod(0o777)
    yield directory
    for child in directory.iterdir():
        child.unlink()
    directory.rmdir()


def processIds(pid: int) -> tuple[list[int], list[int]]:
    """
    The real, effective, saved and filesystem user and group ids of C{pid}.
    """
    fields = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return (
        [int(value) for value in fields["Uid"].split()],
        [int(value) for value in fields["Gid"].split()],
    )


def test_bindAsRootServeAsNobody(spawnGreetd: Any, sharedDirectory: Path) -> None:
    """
    C{twistd --uid nobody --gid nogroup greetd --tcp tcp:PORT --udp udp:PORT}
    with PORT below 1024 serves both, and the process then runs as nobody.
    """
    port = freePrivilegedPort()
    nobody = pwd.getpwnam("nobody")
    daemon = spawnGreetd(
        "--tcp", f"tcp:{port}:interface=127.0.0.1",
        "--udp", f"udp:{port}:interface=127.0.0.1",
        twistdArgs=("--uid", "nobody", "--gid", "nogroup"),
        cwd=sharedDirectory,
    )  # fmt: skip
    assert daemon.tcp == [("127.0.0.1", port)]
    assert daemon.udp == [("127.0.0.1", port)]
    assert exchange(socket.AF_INET, ("127.0.0.1", port), b"Michael") == (
        b"WelcomeHello, Michael!"
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(TIMEOUT)
        client.sendto(b"Sarah", ("127.0.0.1", port))
        assert client.recv(1024) == b"Hello, Sarah!"
    uids, gids = processIds(daemon.process.pid)
    assert uids == [nobody.pw_uid] * 4
    assert gids == [grp.getgrnam("nogroup").gr_gid] * 4
