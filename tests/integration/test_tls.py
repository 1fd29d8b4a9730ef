"""
C{--tcp ssl:...} against the real daemon, with a certificate authority and
server certificate the real C{openssl} command makes, talked to by the
real C{openssl s_client} and by C{greet --connect tls:/ssl:}.
"""

from __future__ import annotations

import contextlib
import platform
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from twisted.internet import endpoints

from tests.integration.conftest import TIMEOUT, requireTool, runTwistd
from tests.integration.helpers import (
    FLOOD,
    NAMES,
    SEED_TCP_OUTPUT,
    connectFrom,
    converse,
    cpuBurner,
    floodWhileServing,
    greet,
    honestExchange,
    nonReadersCut,
    rss,
    startHAProxy,
    warmUp,
)


class Certificates(NamedTuple):
    """
    Paths: the authority's certificate, a directory holding only it (as
    Twisted's clients take their trust roots), and the server's key and
    certificate, for C{localhost} and 127.0.0.1.
    """

    authority: Path
    trust: Path
    key: Path
    certificate: Path

    def listener(self, extra: str = "") -> str:
        """
        An C{ssl:} description on an ephemeral loopback port.
        """
        return (
            f"ssl:0:interface=127.0.0.1:privateKey={self.key}"
            f":certKey={self.certificate}{extra}"
        )

    def sniListener(self) -> str:
        """
        A C{tls:} description on an ephemeral loopback port: a directory
        of C{NAME.pem} files, each a key and certificate for C{NAME}.
        """
        directory = self.key.parent / "sni"
        directory.mkdir(exist_ok=True)
        (directory / "localhost.pem").write_bytes(
            self.certificate.read_bytes() + self.key.read_bytes()
        )
        return f"tls:{directory}:port=0:interface=127.0.0.1"


@pytest.fixture
def certificates(tmp_path: Path) -> Certificates:
    openssl = requireTool("openssl")
    where = tmp_path / "pki"
    trust = where / "trust"
    trust.mkdir(parents=True)
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    extensions = where / "server.ext"
    extensions.write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
    )
    for command in [
        ["req", "-x509", *key, "-keyout", "ca.key", "-out", "trust/ca.pem",
         "-days", "2", "-subj", "/CN=greetd test CA"],
        ["req", *key, "-keyout", "server.key", "-out", "server.csr",
         "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", "server.csr", "-CA", "trust/ca.pem",
         "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
         "-extfile", "server.ext", "-out", "server.pem"],
    ]:  # fmt: skip
        subprocess.run(
            [openssl, *command], cwd=where, check=True, capture_output=True, timeout=60
        )
    return Certificates(
        trust / "ca.pem", trust, where / "server.key", where / "server.pem"
    )


def sClient(
    certificates: Certificates, port: int, data: bytes
) -> subprocess.CompletedProcess[bytes]:
    """
    Run C{openssl s_client}, verifying the server against the authority,
    send it C{data}, and return once the server closes the connection.
    """
    command = [requireTool("openssl"), "s_client", "-quiet", "-verify_return_error"]
    command += ["-CAfile", str(certificates.authority), "-servername", "localhost"]
    command += ["-connect", f"127.0.0.1:{port}"]
    return subprocess.run(
        command,
        input=data,
        capture_output=True,
        timeout=TIMEOUT,
    )


def tlsConnection(certificates: Certificates, port: int) -> ssl.SSLSocket:
    """
    A TLS connection to the daemon with Python's C{ssl}, verified.
    """
    context = ssl.create_default_context(cafile=str(certificates.authority))
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return context.wrap_socket(raw, server_hostname="localhost")


def tlsExchange(certificates: Certificates, port: int, name: bytes) -> None:
    """
    An honest client's whole session over TLS, which must succeed.
    """
    with tlsConnection(certificates, port) as client:
        converse(client, name)


@pytest.mark.parametrize("kind", ["ssl", "tls"])
def test_sClient(spawnGreetd: Any, certificates: Certificates, kind: str) -> None:
    """
    The real C{openssl s_client} verifies the daemon's certificate, gets
    the banner and a reply, and C{exit} closes the connection: over
    C{ssl:}, and over Twisted's newer C{tls:} server endpoint.
    """
    if kind == "tls" and not hasattr(endpoints, "_TLSServerEndpointParser"):
        pytest.skip("this Twisted has no tls: server endpoint")
    listener = certificates.listener() if kind == "ssl" else certificates.sniListener()
    daemon = spawnGreetd("--no-udp", "--tcp", listener)
    port = daemon.tcp[0][1]
    result = sClient(certificates, port, b"M\nexit\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"WelcomeHello, M!\n"
    daemon.waitFor(r"closed \([\w-]+\) after [\d.]+s: 1 message,")


@pytest.mark.parametrize("kind", ["tls", "ssl"])
def test_greet(spawnGreetd: Any, certificates: Certificates, kind: str) -> None:
    """
    C{greet --connect tls:...} (trusting C{trustRoots=}) and C{ssl:...}
    (trusting C{caCertsDir=}, checking C{hostname=}) print what they print
    over TCP.
    """
    daemon = spawnGreetd("--no-udp", "--tcp", certificates.listener())
    port = daemon.tcp[0][1]
    connect = {
        "tls": f"tls:host=127.0.0.1:port={port}:trustRoots={certificates.trust}",
        "ssl": f"ssl:host=127.0.0.1:port={port}:caCertsDir={certificates.trust}"
        ":hostname=localhost",
    }[kind]
    run = greet("--connect", connect, *NAMES)
    assert (run.status, run.stdout, run.stderr) == (0, SEED_TCP_OUTPUT, "")


def test_greetUntrusted(spawnGreetd: Any, certificates: Certificates) -> None:
    """
    C{tls:} without the authority among its trust roots refuses the
    daemon's certificate, in one line; the daemon is unharmed.
    """
    daemon = spawnGreetd("--no-udp", "--tcp", certificates.listener())
    port = daemon.tcp[0][1]
    connect = f"tls:host=127.0.0.1:port={port}"
    run = greet("--connect", connect, "--timeout", "20", "M", timed=True)
    run.failedWith(f"greet: {connect}: TLS failed: certificate verify failed", 5)
    tlsExchange(certificates, port, b"after")


def test_silentClient(spawnGreetd: Any, certificates: Certificates) -> None:
    """
    A TCP client that never starts its handshake is cut at the idle
    timeout, like any idle client.
    """
    daemon = spawnGreetd(
        "--no-udp", "--idle-timeout", "1", "--tcp", certificates.listener()
    )
    port = daemon.tcp[0][1]
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as silent:
        source = silent.getsockname()[1]
        with contextlib.suppress(ConnectionResetError):
            assert silent.recv(1024) == b""
    # The daemon's own figure, from its accept: the idle timeout's second
    # at least, and well short of any other deadline (the write timeout's
    # 60 s); not the test's clock, which a busy machine stretches.
    closed = daemon.waitFor(
        rf"Connection from 127\.0\.0\.1:{source} closed \(idle-timeout\) "
        r"after ([\d.]+)s"
    )
    assert 1 <= float(closed.group(1)) < 5, closed.group(0)


def test_backpressure(spawnGreetd: Any, certificates: Certificates) -> None:
    """
    A TLS client that sends lines without end and never reads is paused
    as a TCP one is: it cannot push its tens of MiB, the daemon's memory
    stays flat, and another TLS client is served the whole time, with
    another process keeping one core busy: what a connection holds is
    bounded in bytes whatever the scheduling.
    """
    daemon = spawnGreetd(
        "--no-udp", "--rate-per-ip", "0", "--tcp", certificates.listener()
    )
    port = daemon.tcp[0][1]

    def exchange(n: int) -> None:
        tlsExchange(certificates, port, b"honest%d" % n)

    with tlsConnection(certificates, port) as reader:
        warmUp(reader, exchange, 2000)
    before = rss(daemon.process.pid)
    flooder = tlsConnection(certificates, port)
    with cpuBurner():
        pushed, served = floodWhileServing(flooder, b"flood\n" * 2000, exchange)
    growth = rss(daemon.process.pid) - before
    flooder.close()
    assert served > 0
    assert pushed < FLOOD / 2, f"pushed {pushed} bytes: reading never paused"
    # On PyPy, Twisted's TLS grows the heap by tens of KB for every
    # connection and more for every read, garbage its GC is slow to return
    # (a plain Twisted TLS echo server does the same): RSS there says
    # nothing of what one connection holds.
    if platform.python_implementation() != "PyPy":
        assert growth < 30 * 1024 * 1024, f"RSS grew by {growth} bytes"
    tlsExchange(certificates, port, b"last")


def test_nonReadersCut(spawnGreetd: Any, certificates: Certificates) -> None:
    """
    TLS clients that never read their replies, open or closing, are cut as
    TCP ones are, and their places under C{--max-per-ip} are free again.
    """
    daemon = spawnGreetd(
        "--no-udp", "--idle-timeout", "2", "--write-timeout", "1",
        "--max-per-ip", "3", "--rate-per-ip", "0", "--tcp", certificates.listener(),
    )  # fmt: skip
    port = daemon.tcp[0][1]
    context = ssl.create_default_context(cafile=str(certificates.authority))

    def wrap(client: socket.socket) -> socket.socket:
        return context.wrap_socket(client, server_hostname="localhost")

    def honest() -> None:
        with wrap(connectFrom("127.0.0.5", port)) as client:
            converse(client, b"honest")

    nonReadersCut(daemon, port, wrap, honest)


def test_workers(spawnGreetd: Any, certificates: Certificates) -> None:
    """
    With C{--workers}, the parent binds the C{ssl:} socket and the workers
    serve its TLS, with the options of the description (here
    C{extraCertChain}).
    """
    listener = certificates.listener(f":extraCertChain={certificates.authority}")
    daemon = spawnGreetd("--workers", "2", "--no-udp", "--tcp", listener)
    port = daemon.tcp[0][1]
    for _ in range(6):
        result = sClient(certificates, port, b"M\nexit\n")
        assert (result.returncode, result.stdout) == (0, b"WelcomeHello, M!\n")
    daemon.waitFor(
        r"\[worker \d pid \d+ greetd\.access#info\] "
        r"Connection from 127.0.0.1:\d+ closed"
    )


def test_behindHAProxy(
    spawnGreetd: Any, certificates: Certificates, tmp_path: Path
) -> None:
    """
    The real HAProxy, speaking TLS to greetd (verifying its certificate)
    with the PROXY header before the handshake, as C{send-proxy} does:
    the client is served, and greetd sees its own address.
    """
    daemon = spawnGreetd("--no-udp", "--tcp", f"haproxy:{certificates.listener()}")
    tls = f"ssl verify required ca-file {certificates.authority} verifyhost localhost"
    process, frontend = startHAProxy(tmp_path, [daemon.tcp[0][1]], tls)
    try:
        honestExchange(frontend, b"proxied", source="127.0.0.9")
    finally:
        process.terminate()
        process.wait(TIMEOUT)
    daemon.waitFor(
        r"Connection from 127\.0\.0\.9:\d+ via 127\.0\.0\.1:\d+ closed \([\w-]+\) "
        r"after [\d.]+s: 1 message,"
    )


def test_badCertificate(tmp_path: Path) -> None:
    """
    A certificate that cannot be read is a usage error naming it.
    """
    missing = tmp_path / "missing.pem"
    result = runTwistd("--tcp", f"ssl:0:privateKey={missing}", cwd=tmp_path)
    assert result.returncode == 1
    assert str(missing) in result.stderr
    assert "Traceback" not in result.stderr
