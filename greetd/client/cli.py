"""
C{greet}: the command-line client for both greetd services.

Exit status: 0 when every name got its reply, 1 when the session failed
(one line on standard error: the server's address and what happened), 2
for a usage error, 130 when a signal (SIGINT, SIGTERM) interrupted it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections import deque
from typing import IO, Any, Callable, ClassVar, Sequence

from twisted.internet import error
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP6ClientEndpoint,
    clientFromString,
)
from twisted.internet.interfaces import IHalfCloseableProtocol, IStreamClientEndpoint
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import react
from twisted.python import usage
from twisted.python.failure import Failure
from zope.interface import implementer

from greetd.client.api import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    GreetError,
    Names,
    checkName,
    greetOverTCP,
    greetOverUDP,
)
from greetd.core.checks import checkEndpoints, numericOption
from greetd.core.description import parsePort, splitDescription
from greetd.core.escaping import escape, formatAddress
from greetd.core.framing import EXIT
from greetd.core.template import DEFAULT_TEMPLATE, ReplyTemplate
from greetd.core.tls import TLS_KINDS, requireTLS

#: The seed's server address.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9999

#: The longest line read from standard input as one name.
MAX_NAME_LENGTH = 65536

#: Exit statuses; a signal (SIGINT, SIGTERM) gives the shells' 128 + 2.
OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130


class Options(usage.Options):
    """
    The options of C{greet}.  After parsing, C{self["names"]} holds the
    names as bytes and C{self["template"]} the L{ReplyTemplate}.
    """

    synopsis = (
        "Usage: greet [-H HOST] [-p PORT] [--udp] [--timeout SECONDS] "
        "[--retries N] [--connect ENDPOINT] [--reply TEMPLATE] [NAME ...]"
    )
    longdesc = (
        "Greet each NAME with the greetd daemon and print the replies, one a "
        "line; over TCP the banner (if any) comes first, and 'exit' ends the "
        "session. "
        "With no NAME, names are read from standard input, one a line, until "
        "its end or a line 'exit'. Each wait for the server (connecting, the "
        "banner, each reply) lasts at most --timeout seconds. Over UDP a name "
        "that gets no reply is sent again, up to --retries more times (so "
        "--retries 3 sends it at most 4 times), each time from a new source "
        "port; only the reply --reply gives for the name counts as one (an "
        "empty datagram from a balancer does not). Exit status: 0 when every "
        "name got its reply, 1 when not, 2 for a usage error, 130 when "
        "interrupted."
    )

    optParameters: ClassVar[list[Any]] = [
        ["host", "H", None, f"The server's host. [default: {DEFAULT_HOST}]"],
        ["port", "p", None, f"The server's port. [default: {DEFAULT_PORT}]"],
        [
            "timeout",
            None,
            str(DEFAULT_TIMEOUT),
            "The longest wait for the server, in seconds.",
        ],
        [
            "retries",
            None,
            str(DEFAULT_RETRIES),
            "With --udp, how many times to resend a name that gets no reply.",
        ],
        [
            "connect",
            None,
            None,
            "A Twisted client endpoint string for TCP, instead of -H and -p "
            "(tcp6:host=\\:\\:1:port=9999, unix:path=..., tls:...).",
        ],
        [
            "reply",
            None,
            DEFAULT_TEMPLATE,
            "The daemon's reply template (as its --reply), to recognise replies.",
        ],
    ]

    optFlags: ClassVar[list[Any]] = [["udp", "u", "Use the UDP reply service."]]

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self["names"] = []

    def opt_version(self) -> None:
        """Display the version and exit."""
        from greetd import __version__

        print(f"greet (greetd) {__version__}")
        sys.exit(0)

    def parseArgs(self, *names: str) -> None:
        self["names"] = [os.fsencode(name) for name in names]

    def postOptions(self) -> None:
        if self["connect"] is not None:
            if self["udp"]:
                raise usage.UsageError("--connect is for TCP, not --udp")
            if self["host"] is not None or self["port"] is not None:
                raise usage.UsageError("--connect replaces --host and --port")
        self["host"] = self["host"] or DEFAULT_HOST
        self["port"] = self["port"] or str(DEFAULT_PORT)
        self["port"] = numericOption(self, "port")
        if self["port"] > 65535:
            raise usage.UsageError(f"--port: {self['port']} is not a port")
        self["retries"] = numericOption(self, "retries", minimum=0)
        try:
            self["timeout"] = float(self["timeout"])
        except ValueError:
            raise usage.UsageError(
                f"--timeout: {self['timeout']!r} is not a number"
            ) from None
        if not 0 < self["timeout"] < float("inf"):
            raise usage.UsageError("--timeout must be more than 0 seconds")
        try:
            self["template"] = ReplyTemplate(self["reply"])
        except ValueError as problem:
            raise usage.UsageError(f"--reply: {problem}") from None
        for name in self["names"]:
            try:
                checkName(name)
            except ValueError as problem:
                raise usage.UsageError(str(problem)) from None


def describeFailure(failure: Failure) -> str:
    """
    What went wrong, in the words that follow the address on the one line
    C{greet} prints.
    """
    value = failure.value
    if isinstance(value, GreetError):
        return str(value)
    if isinstance(value, error.ConnectionRefusedError):
        return "connection refused"
    if isinstance(value, error.DNSLookupError):
        return "cannot resolve the host name"
    if isinstance(value, error.TimeoutError):
        return "timed out connecting"
    if isinstance(value, (error.ConnectionLost, ConnectionResetError)):
        return "connection reset"
    detail = str(value).strip().splitlines()
    return escape(detail[-1] if detail else type(value).__name__)


@implementer(IHalfCloseableProtocol)
class LineNames(Protocol):
    """
    Names read from a stream (standard input), one a line, handed out one
    at a time by L{nextName}; reading pauses while names wait unused.

    A CR before the LF is dropped, blank lines are skipped, a last line
    without a LF still counts, and the end of input ends the names.

    @ivar problem: Why reading stopped early, if it did: an error for
        L{nextName} to raise.
    """

    def __init__(self, maxLength: int = MAX_NAME_LENGTH) -> None:
        self.maxLength = maxLength
        self._buffer = b""
        self._names: deque[bytes] = deque()
        self._ended = False
        self._waiting: Deferred[bytes | None] | None = None
        self._closedWaiters: list[Deferred[None]] = []
        self._closed = False
        self.problem: ValueError | None = None

    def dataReceived(self, data: bytes) -> None:
        *lines, self._buffer = (self._buffer + data).split(b"\n")
        for line in lines:
            self._addLine(line)
        if len(self._buffer) > self.maxLength:
            self._stop(ValueError(f"a line is longer than {self.maxLength} bytes"))
        elif self._names and self.transport is not None:
            self.transport.pauseProducing()  # type: ignore[attr-defined]
        self._deliver()

    def _addLine(self, line: bytes) -> None:
        if self._ended:
            return
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            return
        try:
            checkName(line)
        except ValueError as problem:
            self._stop(problem)
            return
        self._names.append(line)
        if line == EXIT:
            self._ended = True

    def _stop(self, problem: ValueError) -> None:
        # The names before the bad line are still greeted.
        self.problem = problem
        self._ended = True

    def readConnectionLost(self) -> None:
        self._addLine(self._buffer)
        self._buffer = b""
        self._ended = True
        self._deliver()

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.readConnectionLost()
        self._closed = True
        waiters, self._closedWaiters = self._closedWaiters, []
        for closed in waiters:
            closed.callback(None)

    def close(self) -> Deferred[None]:
        """
        Stop reading, write out what is buffered for output, and close.

        @return: A L{Deferred} firing once that is done.
        """
        if self._closed or self.transport is None:
            return succeed(None)
        closed: Deferred[None] = Deferred()
        self._closedWaiters.append(closed)
        self.transport.loseConnection()
        return closed

    def nextName(self) -> Deferred[bytes | None]:
        """
        The next name, or L{None} at the end of the names.

        @raise ValueError: When reading stopped at a line that is no name.
        """
        if self._waiting is not None:
            raise ValueError("one name at a time")
        waiting: Deferred[bytes | None] = Deferred()
        self._waiting = waiting
        self._deliver()
        return waiting

    def _deliver(self) -> None:
        waiting = self._waiting
        if waiting is None:
            return
        if self._names:
            self._waiting = None
            waiting.callback(self._names.popleft())
            if not self._names and not self._ended and self.transport is not None:
                self.transport.resumeProducing()  # type: ignore[attr-defined]
        elif self._ended:
            self._waiting = None
            if self.problem is not None:
                waiting.errback(self.problem)
            else:
                waiting.callback(None)


class InputError(Exception):
    """
    Standard input held a line that cannot be a name: a usage error.
    """


def _readLine(names: LineNames) -> Callable[[], Deferred[bytes | None]]:
    def nextName() -> Deferred[bytes | None]:
        def checked(failure: Failure) -> Failure:
            failure.trap(ValueError)
            return Failure(InputError(f"standard input: {failure.value}"))

        return names.nextName().addErrback(checked)

    return nextName


class Session:
    """
    One run of C{greet}: which service, where, and what to print.

    @ivar options: The parsed L{Options}.
    @ivar address: The server's address, as error lines show it.
    @ivar write: Prints one line of output (the line ending is added).
    @ivar names: Where the names come from.
    """

    def __init__(
        self,
        options: Options,
        write: Callable[[bytes], None],
        names: Names,
    ) -> None:
        self.options = options
        self.write = write
        self.names = names
        description = options["connect"]
        if description is not None:
            printable = description.isascii() and description.isprintable()
            self.address = description if printable else escape(description)
        else:
            self.address = formatAddress((options["host"], options["port"]))

    def endpoint(self, reactor: Any) -> IStreamClientEndpoint:
        """
        The TCP endpoint the options describe.
        """
        options = self.options
        if options["connect"] is not None:
            return clientEndpoint(reactor, options["connect"])
        return HostnameEndpoint(
            reactor, options["host"], options["port"], timeout=options["timeout"]
        )

    def run(self, reactor: Any) -> Deferred[Any]:
        """
        Greet every name, printing each reply as it comes.
        """
        options = self.options

        def printReply(name: bytes, reply: bytes) -> None:
            self.write(reply)

        def printBanner(banner: bytes) -> None:
            # A daemon run with --welcome '' sends none: print no blank line.
            if banner:
                self.write(banner)

        if options["udp"]:
            return greetOverUDP(
                reactor,
                options["host"],
                options["port"],
                self.names,
                timeout=options["timeout"],
                retries=options["retries"],
                template=options["template"],
                onReply=printReply,
            )
        return greetOverTCP(
            self.endpoint(reactor),
            self.names,
            template=options["template"],
            timeout=options["timeout"],
            clock=reactor,
            onBanner=printBanner,
            onReply=printReply,
        )


def parse(argv: Sequence[str], stdout: IO[str], stderr: IO[str]) -> Options | int:
    """
    Parse C{argv}: the L{Options}, or the exit status after C{--help} (0)
    or a usage error (2, with one line on C{stderr}).
    """
    options = Options()
    try:
        options.parseOptions(list(argv))  # type: ignore[no-untyped-call]
        if options["connect"] is not None:
            checkEndpoints([options["connect"]], "--connect", _parseEndpoint)
    except usage.UsageError as problem:
        stderr.write(f"greet: {problem} (see greet --help)\n")
        return USAGE
    except SystemExit:  # --help, which printed the usage
        return OK
    return options


def clientEndpoint(reactor: Any, description: str) -> IStreamClientEndpoint:
    """
    The client endpoint C{description} names: anything Twisted's
    C{clientFromString} knows, and C{tcp6:host=ADDRESS:port=PORT} (or
    C{tcp6:ADDRESS:PORT}, with an optional C{timeout=SECONDS}), which
    Twisted has as a server endpoint only.  C{tls:} and C{ssl:} are
    checked first for the TLS libraries and for trust roots that are a
    directory, as Twisted wants them.

    @raise ValueError: (and whatever C{clientFromString} raises) for a
        description that is not valid.
    """
    kind = description.split(":", 1)[0]
    if kind in TLS_KINDS:
        requireTLS()
        _checkTrustRoots(description)
    if kind != "tcp6":
        endpoint: IStreamClientEndpoint = clientFromString(reactor, description)
        return endpoint
    args, kwargs = splitDescription(description)
    return _tcp6(reactor, *args[1:], **kwargs)


def _checkTrustRoots(description: str) -> None:
    """
    Twisted reads C{trustRoots=} (C{tls:}) and C{caCertsDir=} (C{ssl:}) as
    a directory of C{*.pem} files, and fails without a word on anything
    else: say so.
    """
    _, kwargs = splitDescription(description)
    for key in ("trustRoots", "caCertsDir"):
        path = kwargs.get(key)
        if path is not None and not os.path.isdir(path):
            raise ValueError(
                f"{key}={path} is not a directory: name a directory of "
                "certificate authorities' *.pem files"
            )


def _tcp6(
    reactor: Any,
    host: str | None = None,
    port: str | None = None,
    timeout: str = "30",
) -> TCP6ClientEndpoint:
    if host is None or port is None:
        raise ValueError("tcp6 needs a host and a port: tcp6:host=\\:\\:1:port=9999")
    try:
        seconds = float(timeout)
    except ValueError:
        raise ValueError(f"timeout {timeout!r} is not a number") from None
    return TCP6ClientEndpoint(reactor, host, parsePort(port), seconds)


def _parseEndpoint(description: str) -> object:
    from twisted.internet import reactor

    return clientEndpoint(reactor, description)


def finish(result: Failure | object, address: str, stderr: IO[str]) -> int:
    """
    The exit status for a session's C{result}, saying why on C{stderr}
    when it failed.
    """
    if not isinstance(result, Failure):
        return OK
    if result.check(InputError):
        stderr.write(f"greet: {result.value} (see greet --help)\n")
        return USAGE
    if result.check(CancelledError):
        stderr.write(f"greet: {address}: interrupted\n")
        return INTERRUPTED
    stderr.write(f"greet: {address}: {describeFailure(result)}\n")
    return FAILED


def _keepFlags(*fds: int) -> Callable[[], None]:
    """
    Note the flags of C{fds} now; the returned callable puts them back.
    Reading standard input the Twisted way makes it non-blocking, which a
    terminal shared with the shell must not be left in.
    """
    saved = []
    for fd in fds:
        with contextlib.suppress(OSError):
            saved.append((fd, fcntl.fcntl(fd, fcntl.F_GETFL)))

    def restore() -> None:
        for fd, flags in saved:
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, fcntl.F_SETFL, flags)

    return restore


class _Output:
    """
    Where C{greet} prints: C{sys.stdout} when the names are on the command
    line; otherwise standard input and output both go through Twisted's
    C{StandardIO} (which makes them non-blocking, so printing must go
    through it too), and the names come from a L{LineNames}.
    """

    def __init__(self, reactor: Any, names: list[bytes]) -> None:
        self.names: Names = names
        self._lines: LineNames | None = None
        if not names:
            from twisted.internet.stdio import StandardIO

            self._lines = LineNames()
            self._stdio = StandardIO(self._lines, reactor=reactor)
            self.names = _readLine(self._lines)

    def write(self, line: bytes) -> None:
        """
        Print one line.
        """
        if self._lines is None:
            sys.stdout.buffer.write(line + b"\n")
            sys.stdout.buffer.flush()
        else:
            self._stdio.write(line + b"\n")

    def close(self) -> Deferred[None]:
        """
        Finish writing.
        """
        if self._lines is None:
            return succeed(None)
        return self._lines.close()


def _exit(status: int) -> None:
    # react() exits with 0 after any result, and with the code of a
    # SystemExit failure.
    if status != OK:
        raise SystemExit(status)


def _run(reactor: Any, argv: Sequence[str]) -> Deferred[None]:
    parsed = parse(argv, sys.stdout, sys.stderr)
    if isinstance(parsed, int):
        return succeed(parsed).addCallback(_exit)
    output = _Output(reactor, parsed["names"])
    session = Session(parsed, output.write, output.names)

    running = session.run(reactor)
    finished = False

    def done(result: object) -> Deferred[None]:
        nonlocal finished
        finished = True
        status = finish(result, session.address, sys.stderr)
        return output.close().addCallback(lambda _: _exit(status))

    def interrupted() -> Deferred[None] | None:
        # A signal stops the reactor under a session: end it (dropping the
        # connection), say so and exit non-zero, rather than exit 0.
        if finished:
            return None
        running.cancel()
        return closing

    closing: Deferred[None] = running.addBoth(done)
    reactor.addSystemEventTrigger("before", "shutdown", interrupted)
    return closing


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run C{greet} with C{argv} (the command line by default) and return its
    exit status.
    """
    if argv is None:
        argv = sys.argv[1:]
    restore = _keepFlags(0, 1)
    try:
        react(_run, (argv,))
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else FAILED
    finally:
        restore()
    return OK
