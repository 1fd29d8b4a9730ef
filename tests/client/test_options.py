"""
Tests for L{greetd.client.options}; the whole command runs against the real
daemon in C{tests/integration/test_greet.py}.
"""

from __future__ import annotations

import io

from twisted.trial.unittest import SynchronousTestCase

from greetd.client.options import Options, parse
from greetd.client.status import OK, USAGE
from greetd.core.framing import DEFAULT_MAX_LENGTH
from tests.helpers import parsed


class OptionsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        options = parsed("Michael", "Tracy")
        self.assertEqual(
            (options["host"], options["port"], options["udp"], options["timeout"]),
            ("127.0.0.1", 9999, False, 5.0),
        )
        self.assertEqual(options["retries"], 3)
        self.assertEqual(options["max-length"], DEFAULT_MAX_LENGTH)
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
            (["--max-length", "0"], "--max-length: 0 is less than 1"),
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
        text = " ".join(stdout.getvalue().split())
        self.assertIn("--retries 3 sends it at most 4 times", text)
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
