"""
The installed C{greet} command against the real daemon in each framing, and
against servers that refuse, stay silent or lose datagrams.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from greetd.client.api import GreetingClientProtocol
from greetd.testing import defaultSignals
from tests.integration.conftest import TIMEOUT
from tests.integration.helpers import (
    GREET,
    NAMES,
    SEED_TCP_OUTPUT,
    SEED_UDP_OUTPUT,
    greet,
)


@pytest.mark.parametrize("framing", ["auto", "line", "raw"])
def test_seedOutput(spawnGreetd: Any, framing: str) -> None:
    """
    C{greet Michael Tracy Sarah} and C{greet --udp ...} print what the seed's
    clients print, in every framing.
    """
    daemon = spawnGreetd("--framing", framing)
    tcp = greet("-p", str(daemon.tcp[0][1]), *NAMES)
    assert (tcp.status, tcp.stdout, tcp.stderr) == (0, SEED_TCP_OUTPUT, "")
    udp = greet("--udp", "-p", str(daemon.udp[0][1]), *NAMES)
    assert (udp.status, udp.stdout, udp.stderr) == (0, SEED_UDP_OUTPUT, "")
    daemon.waitFor(r"closed \(exit\) after [\d.]+s: 3 messages")


@pytest.mark.parametrize("framing", ["auto", "line", "raw"])
def test_standardInput(spawnGreetd: Any, framing: str) -> None:
    """
    C{printf 'Ann\\nBob\\n' | greet}; blank lines are skipped, CRLF is
    fine, and a line C{exit} ends the session.
    """
    daemon = spawnGreetd("--framing", framing)
    port = str(daemon.tcp[0][1])
    piped = greet("-p", port, stdin=b"Ann\nBob\n")
    assert (piped.status, piped.stdout, piped.stderr) == (
        0,
        "Welcome\nHello, Ann!\nHello, Bob!\n",
        "",
    )
    ended = greet("-p", port, stdin=b"Ann\r\n\nexit\nBob\n")
    assert (ended.status, ended.stdout) == (0, "Welcome\nHello, Ann!\n")


@pytest.mark.parametrize("framing", ["auto", "line", "raw"])
def test_noBanner(spawnGreetd: Any, framing: str) -> None:
    """
    Against a daemon with no banner, greet needs no option in any framing:
    it prints the replies alone, whether the names come from the command
    line or standard input, and the daemon counts only the names (and one
    more for C{raw}, which first gets the name as a line).
    """
    daemon = spawnGreetd("--welcome", "", "--framing", framing)
    port = str(daemon.tcp[0][1])
    run = greet("-p", port, *NAMES)
    assert (run.status, run.stderr) == (0, "")
    assert run.stdout == "".join(f"Hello, {name}!\n" for name in NAMES)
    counted = 4 if framing == "raw" else 3
    daemon.waitFor(rf"closed \([\w-]+\) after [\d.]+s: {counted} messages")
    piped = greet("-p", port, stdin=b"Ann\nBob\n")
    assert (piped.status, piped.stdout, piped.stderr) == (
        0,
        "Hello, Ann!\nHello, Bob!\n",
        "",
    )


def test_udpStandardInput(spawnGreetd: Any) -> None:
    daemon = spawnGreetd()
    run = greet("--udp", "-p", str(daemon.udp[0][1]), stdin=b"Ann\nBob")
    assert (run.status, run.stdout) == (0, "Hello, Ann!\nHello, Bob!\n")


def test_otherTemplateAndConnect(spawnGreetd: Any) -> None:
    """
    C{--reply} matches a daemon run with another template, and
    C{--connect} takes an endpoint string.
    """
    daemon = spawnGreetd("--reply", "Hi %s", "--welcome", "Yo")
    endpoint = f"tcp:host=127.0.0.1:port={daemon.tcp[0][1]}"
    run = greet("--connect", endpoint, "--reply", "Hi %s", "Ann", "Bob")
    assert (run.status, run.stdout) == (0, "Yo\nHi Ann\nHi Bob\n")


def test_connectUNIX(spawnGreetd: Any, tmp_path: Path) -> None:
    socketPath = tmp_path / "greetd.sock"
    spawnGreetd("--tcp", f"unix:{socketPath}", "--framing", "line")
    run = greet("--connect", f"unix:path={socketPath}", "Ann")
    assert (run.status, run.stdout) == (0, "Welcome\nHello, Ann!\n")


def test_serverError(spawnGreetd: Any) -> None:
    daemon = spawnGreetd("--max-length", "8")
    port = daemon.tcp[0][1]
    run = greet("-p", str(port), "Ann", "123456789", timed=True)
    assert run.stdout == "Welcome\nHello, Ann!\n"
    run.failedWith(
        f"greet: 127.0.0.1:{port}: the server said "
        "'Error: message longer than 8 bytes'",
        TIMEOUT,
    )


def test_refused(spawnGreetd: Any) -> None:
    """
    A daemon's refusal is one line saying so, not a banner followed by a
    confusing close.
    """
    daemon = spawnGreetd("--max-per-ip", "1")
    port = daemon.tcp[0][1]
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as held:
        assert held.recv(64) == b"Welcome"
        run = greet("-p", str(port), "first", "second", timed=True)
    assert run.stdout == ""
    run.failedWith(
        f"greet: 127.0.0.1:{port}: the server refused the connection: "
        "'Error: too many connections from your address'; try again later",
        TIMEOUT,
    )


def test_udpOtherTemplate(spawnGreetd: Any) -> None:
    """
    Against a daemon with another --reply, greet --udp says so at once,
    rather than resending until --timeout runs out.
    """
    daemon = spawnGreetd("--reply", "Hi %s")
    port = daemon.udp[0][1]
    run = greet("--udp", "--timeout", "20", "-p", str(port), "Sarah", timed=True)
    run.failedWith(
        f"greet: 127.0.0.1:{port}: the reply to 'Sarah' was 'Hi Sarah', "
        "not 'Hello, Sarah!'; if the daemon runs with another --reply, give "
        "greet the same --reply",
        0,
    )


def test_noUNIXSocket(tmp_path: Path) -> None:
    path = tmp_path / "nothing.sock"
    run = greet("--connect", f"unix:path={path}", "--timeout", "20", "Ann", timed=True)
    run.failedWith(
        f"greet: unix:path={path}: no such socket: check the path, and that "
        "the daemon is running",
        0,
    )


class HostileServer:
    """
    A TCP server in a thread that sends C{banner}, then answers one line
    with C{reply}, then, given C{endless}, sends it over and over until
    the client goes.
    """

    def __init__(self, banner: bytes, reply: bytes, endless: bytes = b"") -> None:
        self.banner, self.reply, self.endless = banner, reply, endless
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen()
        self.socket.settimeout(TIMEOUT)
        self.port: int = self.socket.getsockname()[1]
        self.sent = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        connection, _ = self.socket.accept()
        with connection:
            connection.settimeout(TIMEOUT)
            try:
                connection.sendall(self.banner)
                connection.recv(1024)
                connection.sendall(self.reply)
                # Bounded, whatever the client does: at most 64 MiB.
                while self.endless and self.sent < 64 << 20:
                    connection.sendall(self.endless)
                    self.sent += len(self.endless)
                connection.recv(1024)
            except OSError:
                pass

    def stop(self) -> None:
        self._thread.join(TIMEOUT)
        self.socket.close()


@pytest.fixture
def hostileServer() -> Iterator[Any]:
    servers: list[HostileServer] = []

    def start(*args: bytes) -> HostileServer:
        servers.append(HostileServer(*args))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def test_hostileBannerOnTerminal(hostileServer: Any) -> None:
    """
    On a terminal, a banner's escape sequences (OSC 52 clipboard write,
    window title, screen clear) are printed escaped, never raw.
    """
    server = hostileServer(
        b"\x1b]52;c;cm0gLXJmIH4=\x07\x1b]0;pwned\x07\x1b[2JWelcome\r\n",
        b"Hello, Ann!\r\n",
    )
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [GREET, "-p", str(server.port), "Ann"],
            stdin=subprocess.DEVNULL,
            stdout=terminal,
            stderr=subprocess.PIPE,
            preexec_fn=defaultSignals,
        )
        printed = readUntil(controller, b"Hello, Ann!")
        assert process.wait(TIMEOUT) == 0
    finally:
        os.close(controller)
        os.close(terminal)
    assert b"\x1b" not in printed and b"\x07" not in printed
    assert b"\\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b]0;pwned\\x07\\x1b[2JWelcome" in printed


def test_wrongReply(hostileServer: Any) -> None:
    server = hostileServer(b"Welcome\r\n", b"Hello, Bob!\r\n")
    run = greet("-p", str(server.port), "Ann", timed=True)
    assert run.stdout == "Welcome\n"
    run.failedWith(
        f"greet: 127.0.0.1:{server.port}: the reply to 'Ann' was 'Hello, Bob!', "
        "not 'Hello, Ann!'; if the daemon runs with another --reply, give greet "
        "the same --reply",
        TIMEOUT,
    )


def test_strayLine(hostileServer: Any) -> None:
    """
    A line after the reply owed fails the run at once, saying what came:
    it is not kept to be taken for the next name's reply (with a server
    that stays open, after that name's whole --timeout).
    """
    server = hostileServer(b"Welcome\r\n", b"Hello, Ann!\r\nHello, Mallory!\r\n")
    run = greet(
        "--timeout", str(TIMEOUT), "-p", str(server.port), "Ann", "Bob", timed=True
    )
    assert run.stdout == "Welcome\nHello, Ann!\n"
    run.failedWith(
        f"greet: 127.0.0.1:{server.port}: the server sent 'Hello, Mallory!', "
        "which answers no name",
        0,
    )


def test_endlessLine(hostileServer: Any) -> None:
    """
    A reply that never ends fails once it passes --max-length, long
    before --timeout: greet keeps no more than that.
    """
    server = hostileServer(b"Welcome\r\n", b"", b"x" * 65536)
    run = greet("--timeout", str(TIMEOUT), "-p", str(server.port), "Ann", timed=True)
    run.failedWith(
        f"greet: 127.0.0.1:{server.port}: the reply to 'Ann' is longer than "
        "1024 bytes; greet --max-length raises the limit",
        0,
    )
    assert server.sent < 64 << 20


def unusedPort(kind: int = socket.SOCK_STREAM) -> int:
    """
    A loopback port nothing listens on (bound, noted, then released).
    """
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_closedPort() -> None:
    port = unusedPort()
    run = greet("--timeout", "1", "-p", str(port), "Ann", timed=True)
    run.failedWith(
        f"greet: 127.0.0.1:{port}: connection refused: is the daemon running there?",
        1,
    )
    assert run.stdout == ""


def test_silentServer() -> None:
    """
    A server that accepts (in the kernel's backlog) and never answers:
    greet gives up after --timeout.
    """
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        run = greet("--timeout", "1", "-p", str(port), "Ann", timed=True)
    run.failedWith(
        f"greet: 127.0.0.1:{port}: timed out after 1s waiting for a banner "
        "or the reply to 'Ann'",
        1 + GreetingClientProtocol.bannerWait,
    )


def test_noUDPServer() -> None:
    """
    Nothing listens on the UDP port: the ICMP port unreachable the kernel
    reports ends the run at once.
    """
    port = unusedPort(socket.SOCK_DGRAM)
    run = greet("--udp", "--timeout", "1", "-p", str(port), "Ann", timed=True)
    run.failedWith(f"greet: 127.0.0.1:{port}: port unreachable: no UDP server there", 1)


class LossyUDPServer:
    """
    A UDP greeting server in a thread that drops the first datagram it
    gets, and answers every later one C{copies} times, with C{answer}
    if given (whatever the name), else with the greeting.

    @ivar received: Every datagram received, in order.
    """

    def __init__(self, copies: int = 1, answer: bytes | None = None) -> None:
        self.copies = copies
        self.answer = answer
        self.received: list[bytes] = []
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.1)
        self.port: int = self.socket.getsockname()[1]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                datagram, peer = self.socket.recvfrom(2048)
            except socket.timeout:
                continue
            self.received.append(datagram)
            if len(self.received) > 1:
                for _ in range(self.copies):
                    answer = self.answer or b"Hello, %s!" % datagram
                    self.socket.sendto(answer, peer)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(TIMEOUT)
        self.socket.close()


@pytest.fixture
def lossyServer() -> Iterator[Any]:
    servers: list[LossyUDPServer] = []

    def start(copies: int = 1, answer: bytes | None = None) -> LossyUDPServer:
        server = LossyUDPServer(copies, answer)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def test_udpFirstDatagramLost(lossyServer: Any) -> None:
    """
    The lost first datagram is sent again well within --timeout (a third
    of a second, with the default --retries), not after a whole one, and
    every name gets its own reply.
    """
    server = lossyServer()
    run = greet("--udp", "--timeout", "5", "-p", str(server.port), *NAMES)
    assert (run.status, run.stdout, run.stderr) == (0, SEED_UDP_OUTPUT, "")
    assert server.received == [b"Michael", b"Michael", b"Tracy", b"Sarah"]
    assert run.elapsed < 5


def test_udpDuplicateReplies(lossyServer: Any) -> None:
    """
    A server that answers twice: each reply is printed once, against its
    own name.
    """
    server = lossyServer(copies=2)
    run = greet("--udp", "--timeout", "1", "-p", str(server.port), *NAMES)
    assert (run.status, run.stdout, run.stderr) == (0, SEED_UDP_OUTPUT, "")


def test_udpReplyToAnotherName(lossyServer: Any) -> None:
    """
    A server that answers with the greeting of a name never sent fails the
    run at its first answer, saying what came: it is no late duplicate to
    wait past.
    """
    server = lossyServer(answer=b"Hello, Mallory!")
    run = greet("--udp", "--timeout", "10", "-p", str(server.port), "Ann", timed=True)
    run.failedWith(
        f"greet: 127.0.0.1:{server.port}: the reply to 'Ann' was 'Hello, Mallory!', "
        "not 'Hello, Ann!'; if the daemon runs with another --reply, give greet "
        "the same --reply",
        1,
    )
    assert server.received == [b"Ann", b"Ann"]


def test_udpNoRetries(lossyServer: Any) -> None:
    """
    With C{--retries 0} the lost datagram is not sent again.
    """
    server = lossyServer()
    run = greet(
        "--udp", "--timeout", "1", "--retries", "0", "-p", str(server.port), "Ann",
        timed=True,
    )  # fmt: skip
    run.failedWith(
        f"greet: 127.0.0.1:{server.port}: no reply to 'Ann' after 1 try; "
        "is a greetd UDP service at that address?",
        1,
    )


def readUntil(fd: int, expected: bytes) -> bytes:
    """
    Read from C{fd} until C{expected} has appeared, for at most L{TIMEOUT}.
    """
    deadline = time.monotonic() + TIMEOUT
    received = b""
    while expected not in received:
        ready, _, _ = select.select([fd], [], [], deadline - time.monotonic())
        assert ready, f"waited for {expected!r}, got {received!r}"
        received += os.read(fd, 1024)
    return received


def test_interactive(spawnGreetd: Any) -> None:
    """
    At a terminal, greet answers each name as it is typed, ends at C{exit},
    and leaves the terminal blocking, as it found it.
    """
    daemon = spawnGreetd()
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [GREET, "-p", str(daemon.tcp[0][1])],
            stdin=terminal,
            stdout=terminal,
            stderr=subprocess.PIPE,
            preexec_fn=defaultSignals,
        )
        assert b"Welcome" in readUntil(controller, b"Welcome")
        os.write(controller, b"Ann\n")
        assert b"Hello, Ann!" in readUntil(controller, b"Hello, Ann!")
        os.write(controller, b"Bob\n")
        readUntil(controller, b"Hello, Bob!")
        os.write(controller, b"exit\n")
        assert process.wait(TIMEOUT) == 0
        assert process.stderr is not None
        assert process.stderr.read() == b""
        assert not fcntl.fcntl(terminal, fcntl.F_GETFL) & os.O_NONBLOCK
    finally:
        os.close(controller)
        os.close(terminal)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted(sig: int) -> None:
    """
    Interrupted while it waits, greet says so in one line and exits 130.
    """
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent.settimeout(TIMEOUT)
        port = silent.getsockname()[1]
        process = subprocess.Popen(
            [GREET, "--timeout", str(TIMEOUT), "-p", str(port), "Ann"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=defaultSignals,
        )
        connection, _ = silent.accept()
        with connection:
            process.send_signal(sig)
            stdout, stderr = process.communicate(timeout=TIMEOUT)
    assert (process.returncode, stdout) == (130, b"")
    assert stderr == f"greet: 127.0.0.1:{port}: interrupted\n".encode()
