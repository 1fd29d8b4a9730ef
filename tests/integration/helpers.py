"""
Helpers that several test modules import.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

from prometheus_client.parser import text_string_to_metric_families

from greetd.testing import (
    TIMEOUT,
    Daemon,
    defaultSignals,
    logText,
)
from tests.documents import blocks
from tests.integration.conftest import requireTool
from tests.integration.seed import clientSource

#: The greet installed beside the interpreter running the tests.
GREET = str(Path(sys.executable).with_name("greet"))


#: How long a failing run may take beyond its --timeout, in starts of
#: C{greet --help} timed right before and right after it (L{startupSeconds}):
#: starting Python and Twisted is most of it, and takes longer on a busy
#: machine.
MARGIN = 4


def startupSeconds() -> float:
    """
    How long C{greet --help} takes here and now: starting the interpreter
    and importing the client, the baseline for how long a run may take.
    Timed afresh for each run, never cached: a figure taken while the
    machine was quieter than during the run would fail a run that is
    only slowed down.
    """
    started = time.monotonic()
    subprocess.run([GREET, "--help"], capture_output=True, check=True, timeout=TIMEOUT)
    return time.monotonic() - started


NAMES = ("Michael", "Tracy", "Sarah")


class Run:
    """
    A finished C{greet}: its status, output and how long it took.

    @ivar startup: Given C{timed}, the longer of two starts of the client
        (L{startupSeconds}) timed right before and right after the run: how
        busy the machine was around it.
    """

    def __init__(
        self, args: tuple[str, ...], stdin: bytes, timed: bool = False
    ) -> None:
        before = startupSeconds() if timed else None
        started = time.monotonic()
        result = subprocess.run(
            [GREET, *args],
            input=stdin,
            capture_output=True,
            timeout=TIMEOUT,
            preexec_fn=defaultSignals,
        )
        self.elapsed = time.monotonic() - started
        self.status = result.returncode
        self.stdout = result.stdout.decode("utf-8", "backslashreplace")
        self.stderr = result.stderr.decode("utf-8", "backslashreplace")
        self.startup = None if before is None else max(before, startupSeconds())

    def failedWith(self, line: str, within: float) -> None:
        """
        Check that the run failed with exactly C{line} on standard error,
        no traceback, within C{within} seconds (plus L{MARGIN} starts of
        the client timed around the run, and at least a second).  The run
        must have been C{timed}.
        """
        assert "Traceback" not in self.stderr, self.stderr
        assert (self.status, self.stderr) == (1, line + "\n"), self.stderr
        assert self.startup is not None, "greet(..., timed=True) for failedWith"
        margin = max(1.0, MARGIN * self.startup)
        assert self.elapsed < within + margin, (self.elapsed, margin)


def greet(*args: str, stdin: bytes = b"", timed: bool = False) -> Run:
    """
    Run C{greet} with C{args} and C{stdin}; given C{timed}, time the
    client's start right before and after it, for L{Run.failedWith}.
    """
    return Run(args, stdin, timed)


CONFIG = """\
global
    maxconn 256
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend greet
    bind 127.0.0.1:{frontend}
    default_backend greetd
backend greetd
{servers}
"""


def startHAProxy(
    where: Path, backends: list[int], extra: str = ""
) -> tuple[subprocess.Popen[bytes], int]:
    """
    Run haproxy in the foreground in front of C{backends}; return it and
    its frontend port once that accepts connections.
    """
    frontend = freePort()
    servers = "\n".join(
        f"    server g{index} 127.0.0.1:{port} send-proxy {extra}"
        for index, port in enumerate(backends)
    )
    text = CONFIG.format(frontend=frontend, servers=servers)
    return runHAProxy(where, text, frontend), frontend


def runHAProxy(where: Path, text: str, frontend: int) -> subprocess.Popen[bytes]:
    """
    Run haproxy in the foreground with the configuration C{text}; return
    it once its C{frontend} port accepts connections.
    """
    config = where / "haproxy.cfg"
    config.write_text(text)
    process = subprocess.Popen(
        [requireTool("haproxy"), "-db", "-f", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", frontend), timeout=1).close()
            return process
        except OSError:
            assert process.poll() is None, process.communicate()[0]
            time.sleep(0.05)
    process.kill()
    raise AssertionError("haproxy did not start")


def connectFrom(source: str, port: int) -> socket.socket:
    """
    A TCP connection to the daemon from the loopback address C{source}.
    """
    client = socket.socket()
    client.settimeout(TIMEOUT)
    client.bind((source, 0))
    client.connect(("127.0.0.1", port))
    return client


def udpFrom(source: str) -> socket.socket:
    """
    A UDP socket on the loopback address C{source}.
    """
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(TIMEOUT)
    client.bind((source, 0))
    return client


def pacedFlood(
    client: socket.socket,
    target: tuple[str, int],
    datagram: bytes,
    count: int,
    settle: float,
) -> tuple[int, float]:
    """
    Send C{datagram} C{count} times from C{client} to C{target}, 50 every
    10 ms (paced, so that the daemon's receive buffer loses none), then wait
    C{settle} seconds for late answers.

    @return: How many answers came, and the seconds the sending took plus
        C{settle}.
    """
    answers = 0
    started = time.monotonic()
    for index in range(count):
        client.sendto(datagram, target)
        if index % 50 == 49:
            time.sleep(0.01)
            answers += waiting(client)
    elapsed = time.monotonic() - started
    time.sleep(settle)
    answers += waiting(client)
    return answers, elapsed + settle


def refusalAnswersBound(seconds: float) -> float:
    """
    The most answers to refused datagrams in C{seconds} under
    C{--udp-rate 10 --udp-global-rate 100}: each rate's burst and refill.
    """
    return (10 + 10 * seconds) + (100 + 100 * seconds)


def waiting(client: socket.socket) -> int:
    """
    How many datagrams are waiting on C{client}, read without blocking.
    """
    count = 0
    client.setblocking(False)
    try:
        while True:
            client.recv(65536)
            count += 1
    except BlockingIOError:
        return count
    finally:
        client.settimeout(TIMEOUT)


def receiveUntilClosed(client: socket.socket) -> bytes:
    received = b""
    while True:
        data = client.recv(65536)
        if not data:
            return received
        received += data


def honestExchange(
    port: int, name: bytes = b"honest", source: str = "127.0.0.9"
) -> None:
    """
    An honest client's whole session, which must succeed.
    """
    with connectFrom(source, port) as client:
        converse(client, name)


def converse(client: socket.socket, name: bytes) -> None:
    """
    A whole session on the connection C{client}: the banner, C{name}'s
    reply, and C{exit}, which closes.
    """
    client.sendall(name + b"\n")
    expected = b"Welcome" + b"Hello, " + name + b"!\n"
    received = b""
    while len(received) < len(expected):
        data = client.recv(1024)
        assert data, f"closed after {received!r}"
        received += data
    assert received == expected
    client.sendall(b"exit\n")
    assert receiveUntilClosed(client) == b""


def rss(pid: int) -> int:
    """
    The resident set size of process C{pid}, in bytes.
    """
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@contextlib.contextmanager
def cpuBurner() -> Iterator[None]:
    """
    Keep one core busy with another process for as long as the context
    lasts (at most a minute), as another job on the machine would: the
    daemon's scheduling then differs from a quiet machine's.
    """
    burner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nend = time.monotonic() + 60\n"
            "while time.monotonic() < end: pass",
        ]
    )
    try:
        yield
    finally:
        burner.kill()
        burner.wait(TIMEOUT)


def warmUp(
    client: socket.socket, exchange: Callable[[int], None], lines: int = 10000
) -> None:
    """
    Send 30 batches of C{lines} lines on C{client}, reading every reply,
    then run 100 honest sessions (C{exchange(n)}): PyPy's JIT compiles and
    its heap grows on the first floods and sessions, which is warm-up, not
    what a client that never reads can make greetd keep.
    """
    client.recv(7)
    for _ in range(30):
        client.sendall(b"warm\n" * lines)
        expected = len(b"Hello, warm!\n") * lines
        received = 0
        while received < expected:
            received += len(client.recv(65536))
    for n in range(100):
        exchange(n)


#: What a flooding client tries to push, in bytes, within L{FLOOD_SECONDS}.
FLOOD = 40 * 1024 * 1024


#: How long a flooding client goes on at most.
FLOOD_SECONDS = 6.0


def floodWhileServing(
    flooder: socket.socket, chunk: bytes, exchange: Callable[[int], None]
) -> tuple[int, int]:
    """
    Send C{chunk} on C{flooder} again and again, never reading, in a
    thread, until L{FLOOD} bytes or L{FLOOD_SECONDS} seconds, while this
    thread runs honest sessions, C{exchange(n)} for the nth, which must
    succeed.

    @return: How many bytes were pushed and how many sessions served.
    """
    pushed = 0
    flooder.settimeout(1.0)
    stop = threading.Event()

    def flood() -> None:
        nonlocal pushed
        deadline = time.monotonic() + FLOOD_SECONDS
        while pushed < FLOOD and time.monotonic() < deadline and not stop.is_set():
            try:
                pushed += flooder.send(chunk)
            except (socket.timeout, ssl.SSLWantWriteError):
                continue
            except OSError:
                return

    thread = threading.Thread(target=flood)
    thread.start()
    served = 0
    try:
        while thread.is_alive():
            exchange(served)
            served += 1
    finally:
        stop.set()
        thread.join(TIMEOUT)
    return pushed, served


def pushUnread(client: socket.socket, payload: bytes, last: bytes = b"") -> None:
    """
    Send C{payload} on C{client} again and again, never reading, until the
    daemon stops taking it (it has stopped reading: its replies are stuck),
    then C{last}; at most L{FLOOD} bytes.
    """
    client.settimeout(0.5)
    pushed = 0
    with contextlib.suppress(OSError, ssl.SSLWantWriteError):
        while pushed < FLOOD:
            pushed += client.send(payload)
    if last:
        with contextlib.suppress(OSError, ssl.SSLWantWriteError):
            client.send(last)


def nonReader(
    source: str, port: int, wrap: Callable[[socket.socket], socket.socket]
) -> socket.socket:
    """
    A connection from C{source} with a small receive buffer, wrapped by
    C{wrap} (TLS, or as it is).
    """
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.settimeout(TIMEOUT)
    client.bind((source, 0))
    client.connect(("127.0.0.1", port))
    return wrap(client)


def nonReadersCut(
    daemon: Any,
    port: int,
    wrap: Callable[[socket.socket], socket.socket],
    exchange: Callable[[], None],
) -> None:
    """
    Three clients from one address fill its C{--max-per-ip} 3 and never
    read: one floods lines, one floods then says C{exit}, one floods then
    sends a message too long.  Each is cut for not reading, within the
    write timeout and the idle timeout of its close, and then an honest
    client from that address (C{exchange}) is admitted.
    """
    clients = []
    for last in [b"", b"exit\n", b"x" * 2000]:
        clients.append(nonReader("127.0.0.5", port, wrap))
        pushUnread(clients[-1], b"flood\n" * 2000, last)
    durations = [
        float(
            daemon.waitFor(
                rf"127\.0\.0\.5:{client.getsockname()[1]} closed "
                r"\(write-timeout\) after ([\d.]+)s"
            ).group(1)
        )
        for client in clients
    ]
    # The daemon's own figures, from each accept: the write timeout (1 s)
    # at least, so it is what cut them; pushing takes a moment, then at
    # most one sweep's interval, or the idle timeout (2 s) after the close
    # began.
    assert 1 <= min(durations) <= max(durations) < 6, durations
    exchange()
    for client in clients:
        client.close()


#: Installing pulls Twisted from the package index: give it time.
INSTALL_TIMEOUT = 600


JSON_LOGGER = ("--logger", "greetd.ops.log.jsonLogger")


_CLOSED = re.compile(r"Connection from 127\.0\.0\.1:(\d+) closed")


_SERVING = re.compile(r"Serving TCP on 127\.0\.0\.1:(\d+)")


def waitUntil(daemon: Daemon, condition: Callable[[], object], what: str) -> Any:
    """
    Poll C{condition} until it is true (at most L{TIMEOUT} seconds, while
    the daemon runs), and return it.
    """
    deadline = time.monotonic() + TIMEOUT
    while True:
        result = condition()
        if result:
            return result
        assert daemon.process.poll() is None, f"greetd exited:\n{daemon.output}"
        assert time.monotonic() < deadline, f"no {what} within {TIMEOUT}s"
        time.sleep(0.05)


def series(path: Path) -> list[Path]:
    """
    C{path} and its rotations (C{path.1}, C{path.2.gz}...), oldest first.
    """
    rotated = []
    for candidate in path.parent.iterdir():
        match = re.fullmatch(re.escape(path.name) + r"\.(\d+)(\.gz)?", candidate.name)
        if match:
            rotated.append((int(match.group(1)), candidate))
    return [candidate for _, candidate in sorted(rotated, reverse=True)] + (
        [path] if path.exists() else []
    )


def readLog(path: Path) -> bytes:
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes())
    return path.read_bytes()


def logLines(path: Path) -> list[str]:
    """
    The text of every line of C{path} and its rotations, oldest first.
    """
    return [
        logText(line)
        for part in series(path)
        for line in readLog(part).decode("utf-8").splitlines()
    ]


def startLogging(
    spawnGreetd: Any, tmp_path: Path, logger: tuple[str, ...] = (), *args: str
) -> tuple[Daemon, Path, Path, int]:
    """
    Start greetd logging to C{greetd.log} with a pidfile, and return it,
    the log's path, the pidfile's and its TCP port.
    """
    log, pidfile = tmp_path / "greetd.log", tmp_path / "greetd.pid"
    daemon = spawnGreetd(
        "--no-udp",
        "--rate-per-ip",
        "0",
        "--log-level",
        "debug",
        *args,
        # A daemon's umask (twistd's when it daemonizes): the log file is
        # opened before it applies, and reopened after.
        twistdArgs=(
            *logger,
            f"--logfile={log}",
            f"--pidfile={pidfile}",
            "--umask=077",
        ),
        listeners=0,
    )

    def port() -> int | None:
        for line in logLines(log) if log.exists() else []:
            match = _SERVING.search(line)
            if match:
                return int(match.group(1))
        return None

    return daemon, log, pidfile, waitUntil(daemon, port, "listener")


def loggedConversation(port: int, name: str) -> int:
    """
    One whole conversation (banner, one message, exit) from a new local
    port, which is returned: each is logged twice, on open and on close.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
        received = b""
        expected = f"WelcomeHello, {name}!\n".encode()
        client.sendall(f"{name}\n".encode())
        while len(received) < len(expected):
            chunk = client.recv(4096)
            assert chunk, received
            received += chunk
        assert received == expected
        client.sendall(b"exit\n")
        assert client.recv(4096) == b""
        return int(client.getsockname()[1])


def closedPorts(log: Path) -> list[int]:
    return [int(m.group(1)) for m in map(_CLOSED.search, logLines(log)) if m]


def waitForClosed(daemon: Daemon, log: Path, count: int) -> None:
    """
    Wait until the log and its rotations hold C{count} connections' closes.
    """
    waitUntil(daemon, lambda: len(closedPorts(log)) >= count, "lines")


def freePort() -> int:
    """
    A loopback port free for TCP and UDP alike right now.
    """
    while True:
        with socket.socket() as tcp, socket.socket(type=socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


#: Each page, by its path under man/ and share/man/, and the command whose
#: --help it documents.
PAGES = {
    "man8/twisted-greetd.8": ["twistd", "greetd"],
    "man1/greet.1": ["greet"],
}


def helpOptions(command: list[str]) -> set[str]:
    """
    The long options C{command --help} lists, in the virtualenv running the
    tests.
    """
    executable = str(Path(sys.executable).with_name(command[0]))
    output = subprocess.run(
        [executable, *command[1:], "--help"],
        check=True,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    ).stdout
    options = set(re.findall(r"^\s+(?:-\w, )?(--[\w-]+)", output, re.MULTILINE))
    assert "--help" in options, output
    return options


def render(page: Path) -> str:
    """
    C{page} as C{man -l} shows it, in ASCII, one line for each paragraph.
    """
    requireTool("man")
    return subprocess.run(
        ["man", "-l", str(page)],
        check=True,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "LC_ALL": "C", "MANWIDTH": "1000", "MANPAGER": "cat"},
    ).stdout


def missingOptions(page: Path, command: list[str]) -> set[str]:
    """
    The options of C{command --help} that the rendered C{page} does not name.
    """
    rendered = render(page)
    return {
        option
        for option in helpOptions(command)
        if not re.search(re.escape(option) + r"\b", rendered)
    }


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


def status(response: bytes) -> int:
    """
    The status code of an HTTP C{response}.
    """
    return int(response.split(b" ", 2)[1])


RUNNABLE = ".. code-block:: console\n    :class: runnable\n"


#: Separates the output of one command from the next's.
MARK = "--- greetd readme example ---"


class Example:
    """
    A shell command of a document and the output it shows.
    """

    def __init__(self, command: str, output: str, source: str = "") -> None:
        self.command = command
        self.output = output
        self.source = source

    def __repr__(self) -> str:
        return f"Example({self.command!r}, in {self.source})"


def runnableExamples(
    text: str, source: str = "", header: str = RUNNABLE
) -> list[Example]:
    """
    The commands (C{$ ...} lines) of every runnable console block in
    C{text} (or every block with another C{header}), in order, each with
    the lines that follow it.  A command ending in a backslash goes on on
    the next line, as in the shell.
    """
    examples: list[Example] = []
    for block in blocks(text, header):
        for line in block.strip("\n").splitlines():
            if line.startswith("$ "):
                examples.append(Example(line[2:], "", source))
            elif examples[-1].command.endswith("\\") and not examples[-1].output:
                examples[-1].command += "\n" + line
            else:
                examples[-1].output += line + "\n"
    return examples


def withoutVirtualenv() -> dict[str, str]:
    """
    This process's environment with no virtualenv on C{PATH}, as a new
    terminal has it.
    """
    bin = str(Path(sys.prefix) / "bin")
    path = os.pathsep.join(
        entry for entry in os.environ["PATH"].split(os.pathsep) if entry != bin
    )
    env = {**os.environ, "PATH": path}
    env.pop("VIRTUAL_ENV", None)
    return env


def scriptOf(examples: list[Example]) -> str:
    """
    A bash script running C{examples} in order, each one's output (its
    standard error included) after a line L{MARK}.
    """
    return "".join(
        f"printf '\\n%s\\n' '{MARK}'\n{example.command} 2>&1\n" for example in examples
    )


def checkOutputs(examples: list[Example], printed: str) -> None:
    """
    Each of C{examples} printed what its document shows, in C{printed}, the
    output of L{scriptOf}.
    """
    outputs = printed.split(f"\n{MARK}\n")[1:]
    assert len(outputs) == len(examples), printed
    for example, output in zip(examples, outputs):
        assert output.strip("\n") == example.output.strip("\n"), (example, output)


SEED_TCP_OUTPUT = "Welcome\nHello, Michael!\nHello, Tracy!\nHello, Sarah!\n"


SEED_UDP_OUTPUT = "Hello, Michael!\nHello, Tracy!\nHello, Sarah!\n"


def runSeedClient(name: str, port: int) -> str:
    result = subprocess.run(
        [sys.executable, "-c", clientSource(name, port)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    return result.stdout


def exchange(family: socket.AddressFamily, address: Any, data: bytes) -> bytes:
    """
    Connect, read the banner, send C{data} and read the reply.
    """
    with socket.socket(family, socket.SOCK_STREAM) as client:
        client.settimeout(TIMEOUT)
        client.connect(address)
        banner = client.recv(1024)
        client.sendall(data)
        return banner + client.recv(1024)


def forgedDatagram(
    source: tuple[str, int], target: tuple[str, int], payload: bytes
) -> bytes:
    """
    An IPv4 packet carrying a UDP datagram from C{source}, which we do not
    own, to C{target}.  The kernel fills in the IP checksum; a UDP checksum
    of 0 means none.
    """
    udpPart = struct.pack("!HHHH", source[1], target[1], 8 + len(payload), 0)
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udpPart) + len(payload),
        0x4242,
        0,
        64,
        socket.IPPROTO_UDP,
        0,
        socket.inet_aton(source[0]),
        socket.inet_aton(target[0]),
    )
    return header + udpPart + payload


#: Options that let one host's load through: limits are tested elsewhere.
UNLIMITED = ("--rate-per-ip", "0", "--max-per-ip", "0")


#: The namespace and level a worker's text lines give after its mark, as
#: the parent's give them: its listeners' and its access lines.
SERVING = r"greetd\.daemon\.listening\.ListeningService#info"


#: One whole exchange: C{(port, name, source address)} to what it saw.
Exchange = Callable[[int, bytes, str], object]


class Load:
    """
    C{clients} threads, each running whole exchanges (by default honest
    ones: banner, message, reply, exit) in a loop against C{port} until
    stopped, each from its own loopback address.

    @ivar results: C{(startedAt, error or None, what the exchange
        returned)} for each exchange.
    """

    def __init__(
        self, port: int, clients: int = 20, exchange: Exchange = honestExchange
    ) -> None:
        self.port = port
        self.exchange = exchange
        self.results: list[tuple[float, BaseException | None, object]] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(f"127.0.0.{10 + n}",), daemon=True)
            for n in range(clients)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(TIMEOUT)

    def _run(self, source: str) -> None:
        deadline = time.monotonic() + 60
        while not self._stop.is_set() and time.monotonic() < deadline:
            startedAt = time.monotonic()
            try:
                seen = self.exchange(self.port, source.encode(), source)
            except (OSError, AssertionError) as error:
                self.results.append((startedAt, error, None))
            else:
                self.results.append((startedAt, None, seen))

    def waitForExchanges(self, count: int, since: float = 0.0) -> None:
        """
        Wait until C{count} exchanges started after C{since} have ended.
        """
        deadline = time.monotonic() + TIMEOUT
        while self.completedSince(since) < count:
            assert time.monotonic() < deadline, f"only {self.completedSince(since)}"
            time.sleep(0.05)

    def completedSince(self, since: float) -> int:
        return sum(1 for startedAt, _, _ in list(self.results) if startedAt >= since)

    def failuresSince(self, since: float) -> list[BaseException]:
        return [
            error
            for startedAt, error, _ in list(self.results)
            if error is not None and startedAt >= since
        ]

    def seenSince(self, since: float) -> list[object]:
        """
        What the successful exchanges started after C{since} returned.
        """
        return [
            seen
            for startedAt, error, seen in list(self.results)
            if error is None and startedAt >= since
        ]


def startedWorkers(daemon: Daemon, count: int) -> dict[int, int]:
    """
    Wait until workers 1 to C{count} serve, and return their pids by slot.
    """
    pids = {}
    for slot in range(1, count + 1):
        match = daemon.waitFor(rf"Started worker {slot} \(pid (\d+)\)")
        pids[slot] = int(match.group(1))
        daemon.waitFor(rf"\[worker {slot} pid {pids[slot]} {SERVING}\] Serving")
    return pids


def children(pid: int) -> set[int]:
    """
    The pids of the children of process C{pid}.
    """
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return {int(child) for child in listing.read().split()}


def alive(pid: int) -> bool:
    """
    Whether process C{pid} exists and is not a zombie.
    """
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
