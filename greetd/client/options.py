"""
The options of C{greet}, and parsing its command line.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any, ClassVar, Sequence

from twisted.python import usage

from greetd.client.endpoint import parseEndpoint
from greetd.client.names import checkName
from greetd.client.status import OK, USAGE
from greetd.client.udp import DEFAULT_RETRIES
from greetd.client.waiting import DEFAULT_TIMEOUT
from greetd.core.checks import checkEndpoints, numericOption
from greetd.core.framing import DEFAULT_MAX_LENGTH
from greetd.core.template import DEFAULT_TEMPLATE, ReplyTemplate

#: The seed's server address.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9999


class Options(usage.Options):
    """
    The options of C{greet}.  After parsing, C{self["names"]} holds the
    names as bytes and C{self["template"]} the L{ReplyTemplate}.
    """

    synopsis = (
        "Usage: greet [-H HOST] [-p PORT] [--udp] [--timeout SECONDS] "
        "[--retries N] [--connect ENDPOINT] [--reply TEMPLATE] "
        "[--max-length BYTES] [NAME ...]"
    )
    longdesc = (
        "Greet each NAME with the greetd daemon and print the replies, one a "
        "line; over TCP the banner (if any) comes first, and 'exit' ends the "
        "session. "
        "With no NAME, names are read from standard input, one a line, until "
        "its end or a line 'exit'. Each wait for the server (connecting, the "
        "banner, each reply) lasts at most --timeout seconds. A reply must be "
        "the one --reply gives for the name: any other fails the session. "
        "Over UDP a name that gets no reply is sent again within its "
        "--timeout, at growing intervals, up to --retries more times (so "
        "--retries 3 sends it at most 4 times), each time from a new source "
        "port; an empty datagram from a balancer is no reply. On a terminal, "
        "control characters the server sends are printed escaped. Exit "
        "status: 0 when every name got its reply, 1 when not, 2 for a usage "
        "error, 130 when interrupted."
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
            "max-length",
            None,
            str(DEFAULT_MAX_LENGTH),
            "The most bytes kept of a line from the server (a banner, or "
            "beyond the reply awaited); a longer one fails the session.",
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
        self["max-length"] = numericOption(self, "max-length", minimum=1)
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


def parse(argv: Sequence[str], stdout: IO[str], stderr: IO[str]) -> Options | int:
    """
    Parse C{argv}: the L{Options}, or the exit status after C{--help} (0)
    or a usage error (2, with one line on C{stderr}).
    """
    options = Options()
    try:
        options.parseOptions(list(argv))  # type: ignore[no-untyped-call]
        if options["connect"] is not None:
            checkEndpoints([options["connect"]], "--connect", parseEndpoint)
    except usage.UsageError as problem:
        stderr.write(f"greet: {problem} (see greet --help)\n")
        return USAGE
    except SystemExit:  # --help, which printed the usage
        return OK
    return options
