"""
The embedding guide's plain-reactor example, run as a program: it serves
both services, and a port already in use is one line on stderr and exit
status 1, never C{Unhandled error in Deferred}.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from greetd.testing import Daemon, defaultSignals
from tests.documents import DOCS
from tests.helpers import pythonBlocks
from tests.integration.conftest import TIMEOUT
from tests.integration.helpers import freePort

#: The example's port, replaced by a free one here.
EXAMPLE_PORT = "9999"


def example(tmp_path: Path, port: int) -> Path:
    """
    The guide's example that listens with the factory and the protocol
    directly, as a file, on C{port} instead of the example's.
    """
    [code] = [
        block
        for block in pythonBlocks(DOCS / "howto" / "embedding.rst")
        if "listenUDP" in block
    ]
    assert code.count(EXAMPLE_PORT) == 2
    path = tmp_path / "greeter.py"
    path.write_text(code.replace(EXAMPLE_PORT, str(port)))
    return path


def test_serves(tmp_path: Path) -> None:
    """
    With both ports free, the example greets over TCP and UDP, and SIGINT
    stops it.
    """
    port = freePort()
    program = Daemon([sys.executable, str(example(tmp_path, port))], tmp_path)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(0.2)
            for _ in range(int(TIMEOUT / 0.2)):
                udp.sendto(b"Sarah", ("127.0.0.1", port))
                try:
                    reply = udp.recv(100)
                    break
                except OSError:
                    assert program.process.poll() is None
        assert reply == b"Hi, Sarah"
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as tcp:
            tcp.sendall(b"Ann\nexit\n")
            received = b""
            while chunk := tcp.recv(100):
                received += chunk
        assert received == b"Hi\r\nHello, Ann!\n"
    finally:
        status = program.stop(signal.SIGINT)
    assert status == 0, program.output
    assert "Traceback" not in program.output


@pytest.mark.parametrize(
    "busy", [socket.SOCK_STREAM, socket.SOCK_DGRAM], ids=["tcp", "udp"]
)
def test_portInUse(tmp_path: Path, busy: socket.SocketKind) -> None:
    """
    With its TCP or its UDP port in use, the example says so in one line
    and exits with status 1.
    """
    port = freePort()
    with socket.socket(socket.AF_INET, busy) as holder:
        holder.bind(("127.0.0.1", port))
        if busy == socket.SOCK_STREAM:
            holder.listen()
        result = subprocess.run(
            [sys.executable, str(example(tmp_path, port))],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            preexec_fn=defaultSignals,
        )
    assert (result.returncode, result.stdout) == (1, ""), result
    [line] = result.stderr.splitlines()
    assert line.startswith(f"greeter: Couldn't listen on 127.0.0.1:{port}:"), line
    assert "Address already in use" in line
