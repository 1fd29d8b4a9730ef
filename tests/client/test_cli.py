"""
Tests for L{greetd.client.cli}, the command line; the whole command runs against
the real daemon in C{tests/integration/test_greet.py}.
"""

from __future__ import annotations

import io
import sys
from unittest import mock

from twisted.internet import error
from twisted.internet.endpoints import TCP6ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import (
    MemoryReactor,
    MemoryReactorClock,
    StringTransport,
)
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from greetd.client.api import GreetTimeout, NoReply
from greetd.client.cli import (
    FAILED,
    OK,
    USAGE,
    InputError,
    LineNames,
    Options,
    Session,
    clientEndpoint,
    describeFailure,
    finish,
    parse,
)
from tests.certificates import temporaryCredentials


def parsed(*argv: str) -> Options:
    options = parse(argv, io.StringIO(), io.StringIO())
    assert isinstance(options, Options), options
    return options


class OptionsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        options = parsed("Michael", "Tracy")
        self.assertEqual(
            (options["host"], options["port"], options["udp"], options["timeout"]),
            ("127.0.0.1", 9999, False, 5.0),
        )
        self.assertEqual(options["retries"], 3)
        self.assertEqual(options["names"], [b"Michael", b"Tracy"])
        self.assertEqual(options["template"].text, "Hello, %s!")

    def test_values(self) -> None:
        options = parsed(
            "-H", "::1", "-p", "7", "--udp", "--timeout", "0.5", "--retries", "0"
        )
        self.assertEqual(
            (options["host"], options["port"], options["udp"]), ("::1", 7, True)
        )
        self.assertEqual((options["timeout"], options["retries"]), (0.5, 0))
        self.assertEqual(options["names"], [])

    def test_address(self) -> None:
        """
        Error lines name the server as C{host:port}, or the endpoint string.
        """
        for argv, address in [
            ((), "127.0.0.1:9999"),
            (("-H", "::1"), "[::1]:9999"),
            (("--connect", "unix:path=/run/g"), "unix:path=/run/g"),
            (("--connect", "tcp6:host=\\:\\:1:port=1"), "tcp6:host=\\:\\:1:port=1"),
            (("--connect", "unix:path=/run/\u00e9"), "unix:path=/run/\\xc3\\xa9"),
        ]:
            self.assertEqual(Session(parsed(*argv), print, []).address, address)

    def test_usageErrors(self) -> None:
        """
        Every bad command line is one line on standard error and status 2.
        """
        for argv, message in [
            (["-p", "x"], "--port: 'x' is not a whole number"),
            (["-p", "70000"], "--port: 70000 is not a port"),
            (["--timeout", "0"], "--timeout must be more than 0 seconds"),
            (["--timeout", "soon"], "--timeout: 'soon' is not a number"),
            (["--retries", "-1"], "--retries: -1 is less than 0"),
            (["--reply", "Hi"], "--reply: reply template 'Hi' must contain"),
            (["--udp", "--connect", "tcp:h:1"], "--connect is for TCP, not --udp"),
            (["-p", "1", "--connect", "tcp:h:1"], "--connect replaces --host"),
            (["--connect", "nope:x"], "--connect 'nope:x': Unknown endpoint type"),
            (["--connect", "tcp6:h"], "--connect 'tcp6:h': tcp6 needs a host and"),
            (["--connect", "tcp6:h:x"], "--connect 'tcp6:h:x': port 'x' is not a"),
            (["--connect", "tcp6:h:1:timeout=x"], "--connect 'tcp6:h:1:timeout=x'"),
            (
                ["--connect", "tls:host=h:port=1:trustRoots=/nonexistent/ca.pem"],
                "--connect 'tls:host=h:port=1:trustRoots=/nonexistent/ca.pem': "
                "trustRoots=/nonexistent/ca.pem is not a directory",
            ),
            (
                ["--connect", "ssl:host=h:port=1:caCertsDir=/nonexistent"],
                "--connect 'ssl:host=h:port=1:caCertsDir=/nonexistent': "
                "caCertsDir=/nonexistent is not a directory",
            ),
            ([""], "a name cannot be empty"),
            (["a\nb"], "a name cannot contain CR or LF: 'a\\nb'"),
            (["--bogus"], "option --bogus not recognized"),
        ]:
            stderr = io.StringIO()
            self.assertEqual(parse(argv, io.StringIO(), stderr), USAGE, argv)
            lines = stderr.getvalue().splitlines()
            self.assertEqual(len(lines), 1, lines)
            self.assertTrue(lines[0].startswith(f"greet: {message}"), lines)
            self.assertTrue(lines[0].endswith("(see greet --help)"), lines)

    def test_help(self) -> None:
        stdout = io.StringIO()
        self.patch(__import__("sys"), "stdout", stdout)
        self.assertEqual(parse(["--help"], stdout, io.StringIO()), OK)
        self.assertIn("--retries 3 sends it at most 4 times", stdout.getvalue())
        self.assertTrue(stdout.getvalue().startswith("Usage: greet [-H HOST]"))

    def test_usageNamesEveryOption(self) -> None:
        """
        The usage line lists every option but C{--help} and C{--version}, by
        its short name where it has one.
        """
        usageLine = Options.synopsis
        for long, short, *_ in Options.optParameters + Options.optFlags:
            names = [f"[--{long}"] + ([f"[-{short} "] if short else [])
            self.assertTrue(any(name in usageLine for name in names), long)


class ClientEndpointTests(SynchronousTestCase):
    def test_tcp6(self) -> None:
        """
        C{tcp6:} connects over IPv6, with Twisted's endpoint syntax.
        """
        reactor = MemoryReactor()
        for description in (
            "tcp6:host=\\:\\:1:port=7:timeout=2",
            "tcp6:\\:\\:1:7:timeout=2",
        ):
            endpoint = clientEndpoint(reactor, description)
            self.assertIsInstance(endpoint, TCP6ClientEndpoint)
            endpoint.connect(Factory.forProtocol(Protocol))
        self.assertEqual(
            [(host, port, timeout) for host, port, _, timeout, _ in reactor.tcpClients],
            [("::1", 7, 2.0)] * 2,
        )

    def test_others(self) -> None:
        """
        Other descriptions are Twisted's.
        """
        reactor = MemoryReactor()
        clientEndpoint(reactor, "unix:path=/run/g").connect(
            Factory.forProtocol(Protocol)
        )
        self.assertEqual(reactor.unixClients[0][0], "/run/g")

    def test_tls(self) -> None:
        """
        C{tls:} is Twisted's, trusting the authorities in C{trustRoots=}.
        """
        authority, _, _ = temporaryCredentials(self)
        reactor = MemoryReactorClock()
        clientEndpoint(
            reactor, f"tls:host=127.0.0.1:port=7:trustRoots={authority.parent}"
        ).connect(Factory.forProtocol(Protocol))
        reactor.advance(0)
        self.assertEqual(reactor.tcpClients[0][:2], ("127.0.0.1", 7))

    def test_tlsNotInstalled(self) -> None:
        """
        Without pyOpenSSL, C{tls:} and C{ssl:} say what to install.
        """
        for description in ("tls:host=h:port=1", "ssl:host=h:port=1"):
            stderr = io.StringIO()
            with mock.patch.dict(sys.modules, {"OpenSSL": None}):
                status = parse(["--connect", description], io.StringIO(), stderr)
            self.assertEqual(status, USAGE)
            self.assertIn("pip install 'greetd[tls]'", stderr.getvalue())


class DescribeFailureTests(SynchronousTestCase):
    def test_descriptions(self) -> None:
        for exception, text in [
            (
                GreetTimeout("the banner", 1),
                "timed out after 1s waiting for the banner",
            ),
            (NoReply(b"Sarah", 4), "no reply to 'Sarah' after 4 tries"),
            (
                NoReply(b"Tracy", 4, 3),
                "no reply to 'Tracy' after 4 tries"
                " (3 datagrams that were not the reply)",
            ),
            (error.ConnectionRefusedError(), "connection refused"),
            (error.DNSLookupError("x"), "cannot resolve the host name"),
            (error.TimeoutError(), "timed out connecting"),
            (error.ConnectionLost(), "connection reset"),
            (error.NoRouteError(), "No route to host."),
            (RuntimeError("one\ntwo\x1b"), "two\\x1b"),
            (RuntimeError(), "RuntimeError"),
        ]:
            self.assertEqual(describeFailure(Failure(exception)), text)

    def test_finish(self) -> None:
        stderr = io.StringIO()
        self.assertEqual(finish(None, "h:1", stderr), OK)
        self.assertEqual(stderr.getvalue(), "")
        failure = Failure(error.ConnectionRefusedError())
        self.assertEqual(finish(failure, "h:1", stderr), FAILED)
        self.assertEqual(stderr.getvalue(), "greet: h:1: connection refused\n")

    def test_finishInputError(self) -> None:
        stderr = io.StringIO()
        failure = Failure(InputError("standard input: bad"))
        self.assertEqual(finish(failure, "h:1", stderr), USAGE)
        self.assertEqual(
            stderr.getvalue(), "greet: standard input: bad (see greet --help)\n"
        )


class LineNamesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.names = LineNames(maxLength=10)
        self.transport = StringTransport()
        self.names.makeConnection(self.transport)

    def take(self, count: int) -> list[bytes | None]:
        """
        The next C{count} names, which must be available now.
        """
        return [self.successResultOf(self.names.nextName()) for _ in range(count)]

    def test_lines(self) -> None:
        """
        Lines end at LF with an optional CR; blank lines are skipped; a last
        line without LF counts.
        """
        self.names.dataReceived(b"Ann\r\n\nBo")
        self.assertEqual(self.take(1), [b"Ann"])
        waiting = self.names.nextName()
        self.assertNoResult(waiting)
        self.names.dataReceived(b"b\nCid")
        self.assertEqual(self.successResultOf(waiting), b"Bob")
        self.names.readConnectionLost()
        self.assertEqual(self.take(2), [b"Cid", None])

    def test_waitsForTyping(self) -> None:
        waiting = self.names.nextName()
        self.assertNoResult(waiting)
        self.names.dataReceived(b"Ann\n")
        self.assertEqual(self.successResultOf(waiting), b"Ann")

    def test_exitEnds(self) -> None:
        self.names.dataReceived(b"Ann\nexit\nBob\n")
        self.assertEqual(self.take(3), [b"Ann", b"exit", None])

    def test_pausesReading(self) -> None:
        """
        Reading pauses while names wait, and resumes once they are taken.
        """
        self.names.dataReceived(b"Ann\nBob\n")
        self.assertEqual(self.transport.producerState, "paused")
        self.take(2)
        self.assertEqual(self.transport.producerState, "producing")

    def test_badLines(self) -> None:
        for data, message in [
            (b"a\rb\n", "a name cannot contain CR or LF: 'a\\rb'"),
            (b"12345678901", "a line is longer than 10 bytes"),
        ]:
            names = LineNames(maxLength=10)
            names.makeConnection(StringTransport())
            names.dataReceived(b"Ann\n" + data)
            self.assertEqual(self.successResultOf(names.nextName()), b"Ann")
            failure = self.failureResultOf(names.nextName(), ValueError)
            self.assertEqual(str(failure.value), message)

    def test_close(self) -> None:
        closed = self.names.close()
        self.assertTrue(self.transport.disconnecting)
        self.assertNoResult(closed)
        self.names.connectionLost()
        self.successResultOf(closed)
        self.successResultOf(self.names.close())
