"""
The options of C{twistd greetd}: every value checked, and every listener
parsed into the L{Plan}, before anything is built or bound.
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar, Sequence

from twisted.python import usage

from greetd.core.access import LOOPBACK, AccessPolicy, parseNetwork
from greetd.core.checks import numericOption
from greetd.core.framing import DEFAULT_MAX_LENGTH, FRAMINGS
from greetd.core.sources import DEFAULT_IPV6_PREFIX
from greetd.core.template import DEFAULT_TEMPLATE, ReplyTemplate
from greetd.daemon.plan import TCP, PlanError, makePlan
from greetd.daemon.shutdown import DEFAULT_SHUTDOWN_TIMEOUT
from greetd.ops.log import LOG_FORMATS, LogOutput
from greetd.ops.loglevel import DEFAULT_LOG_LEVEL, LOG_LEVELS, parseLogLevel
from greetd.protocols.admission import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_PER_IP,
    DEFAULT_RATE_PER_IP,
)
from greetd.protocols.datagram import DEFAULT_GLOBAL_RATE, DEFAULT_RATE
from greetd.protocols.greeting import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_WELCOME,
    DEFAULT_WRITE_TIMEOUT,
)

#: Where the seed's TCP server listens.
DEFAULT_TCP = "tcp:9999:interface=127.0.0.1"

#: Where the seed's UDP server listens.
DEFAULT_UDP = "udp:9999:interface=127.0.0.1"


class Options(usage.Options):
    """
    The options of C{twistd greetd}.

    After parsing, C{self["plan"]} is the L{Plan} of every listener (the
    defaults unless given or disabled), C{self["template"]} the checked
    L{ReplyTemplate}, C{self["access"]} the L{AccessPolicy} and
    C{self["log"]} the L{LogOutput} of C{--log-level} and C{--log-format};
    every other value is checked and of its type.  C{self["reactor"]} names the reactor
    plugin a pool's workers install (C{twistd greetd} sets it to its own),
    or is C{None} for Twisted's default.

    @ivar arguments: The arguments as given, which worker processes parse
        again (L{greetd.daemon.pool}).
    """

    synopsis = "[options]"
    longdesc = (
        "greetd serves the greeting protocol: over TCP, a banner on connect, "
        "'Hello, M!' for every message M, and a close on 'exit'; over UDP, "
        "'Hello, D!' for every datagram D. --tcp takes any Twisted server "
        "endpoint string (default tcp:9999:interface=127.0.0.1; haproxy: in "
        "front for the PROXY protocol); --udp takes udp:PORT[:interface=ADDRESS] "
        "or systemd:domain=...:name=... (default udp:9999:interface=127.0.0.1; "
        "haproxy: in front for a PROXY header on each datagram, as nginx sends). "
        "Both may be repeated. Logs go where twistd's would (stdout with "
        "--nodaemon, else twistd's --logfile), as text or JSON (--log-format); "
        "the file is opened for appending and never rotated by greetd: SIGHUP "
        "and SIGUSR1 reopen it by name, for logrotate. SIGTERM and SIGINT "
        "drain and stop."
    )

    optParameters: ClassVar[list[Any]] = [
        ["welcome", None, DEFAULT_WELCOME.decode(), "The banner sent on connect."],
        [
            "reply",
            None,
            DEFAULT_TEMPLATE,
            "The reply template: exactly one %s, where the message goes "
            "(%% for a literal %).",
        ],
        [
            "framing",
            None,
            "auto",
            "How TCP messages are delimited: raw (each read is a message), "
            "line (LF-terminated), or auto (raw until the first LF).",
        ],
        [
            "max-length",
            None,
            DEFAULT_MAX_LENGTH,
            "The longest message or datagram answered, in bytes.",
        ],
        [
            "max-connections",
            None,
            DEFAULT_MAX_CONNECTIONS,
            "TCP connections open at once (0: no limit).",
        ],
        [
            "max-per-ip",
            None,
            DEFAULT_MAX_PER_IP,
            "TCP connections open at once from one address (0: no limit).",
        ],
        [
            "rate-per-ip",
            None,
            DEFAULT_RATE_PER_IP,
            "New TCP connections per second from one address (0: no limit).",
        ],
        [
            "idle-timeout",
            None,
            DEFAULT_IDLE_TIMEOUT,
            "Seconds a TCP connection may complete no message, and may take "
            "to close (0: no limit).",
        ],
        [
            "write-timeout",
            None,
            DEFAULT_WRITE_TIMEOUT,
            "Seconds a TCP client may read none of the replies it is owed "
            "before it is cut (0: no limit).",
        ],
        [
            "udp-rate",
            None,
            DEFAULT_RATE,
            "UDP replies per second to one address (0: no limit).",
        ],
        [
            "udp-global-rate",
            None,
            DEFAULT_GLOBAL_RATE,
            "UDP replies per second in all (0: no limit).",
        ],
        [
            "ipv6-prefix",
            None,
            DEFAULT_IPV6_PREFIX,
            "Leading bits of an IPv6 address that name one source for the "
            "per-address limits (0 to 128; 128: each address apart).",
        ],
        [
            "metrics",
            None,
            None,
            "A Twisted server endpoint for Prometheus metrics at /metrics "
            "(e.g. tcp:9100:interface=127.0.0.1); none by default.",
        ],
        [
            "shutdown-timeout",
            None,
            DEFAULT_SHUTDOWN_TIMEOUT,
            "Seconds to finish writing replies on SIGTERM before cutting.",
        ],
        [
            "workers",
            None,
            1,
            "Worker processes serving the same listening sockets (tcp:, tcp6:, "
            "ssl:, haproxy: before those, and udp: only). Limits apply per "
            "worker: with N workers a per-address limit of L admits up to N*L. "
            "SIGHUP replaces the workers one at a time, with the code on disk.",
        ],
        [
            "log-level",
            None,
            DEFAULT_LOG_LEVEL,
            f"The least severe log lines written: {', '.join(LOG_LEVELS)} "
            "(debug adds dropped datagrams and Twisted's own port lines).",
        ],
        [
            "log-format",
            None,
            None,
            "How log lines are written: text (as twistd writes them; the "
            "default) or json (one JSON object a line).",
        ],
    ]

    optFlags: ClassVar[list[Any]] = [
        ["no-tcp", None, "Do not serve TCP."],
        [
            "no-access-log",
            None,
            "Write no line per connection (the access log); metrics still count them.",
        ],
        ["no-udp", None, "Do not serve UDP."],
        [
            "udp-allow-low-ports",
            None,
            "Answer datagrams from source ports below 1024 (refused by "
            "default: they are the services a spoofed loop would target).",
        ],
    ]

    compData = usage.Completions(
        optActions={
            "framing": usage.CompleteList(FRAMINGS),
            "log-level": usage.CompleteList(LOG_LEVELS),
            "log-format": usage.CompleteList(LOG_FORMATS),
        }
    )

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self["tcp"] = []
        self["udp"] = []
        self["allow"] = []
        self["deny"] = []
        self["health-check-from"] = []
        self["proxy-from"] = []
        self["reactor"] = None

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """
        Parse C{options}, keeping them for worker processes; a bad one
        raises L{UsageError <twisted.python.usage.UsageError>}, embedded or not.
        """
        self.arguments = list(sys.argv[1:] if options is None else options)
        super().parseOptions(options)  # type: ignore[no-untyped-call]

    def opt_tcp(self, description: str) -> None:
        """A Twisted server endpoint for TCP greetings (repeatable)."""
        self["tcp"].append(description)

    def opt_udp(self, description: str) -> None:
        """udp:PORT[:interface=ADDRESS] or systemd:domain=...:name=... (repeatable)."""
        self["udp"].append(description)

    def opt_allow(self, network: str) -> None:
        """Serve only this CIDR (repeatable; TCP and UDP)."""
        self["allow"].append(network)

    def opt_health_check_from(self, network: str) -> None:
        """Treat connections from this CIDR as health checks (repeatable)."""
        self["health-check-from"].append(network)

    def opt_proxy_from(self, network: str) -> None:
        """Believe haproxy: listeners' PROXY headers from this CIDR alone (repeatable; default loopback)."""  # noqa: E501
        self["proxy-from"].append(network)

    def opt_deny(self, network: str) -> None:
        """Refuse this CIDR (repeatable; TCP and UDP; wins over --allow)."""
        self["deny"].append(network)

    def postOptions(self) -> None:
        try:
            self["log-level"] = parseLogLevel(self["log-level"])
        except ValueError as error:
            raise usage.UsageError(f"--log-level: {error}") from None
        self["log-format"] = self["log-format"] or "text"
        if self["log-format"] not in LOG_FORMATS:
            raise usage.UsageError(
                f"--log-format must be one of {', '.join(LOG_FORMATS)}, "
                f"not {self['log-format']!r}"
            )
        self["log"] = LogOutput(self["log-level"], self["log-format"] == "json")
        self["max-length"] = numericOption(self, "max-length")
        self["workers"] = numericOption(self, "workers")
        for name in ("max-connections", "max-per-ip", "rate-per-ip", "ipv6-prefix"):
            self[name] = numericOption(self, name, minimum=0)
        if self["ipv6-prefix"] > 128:
            raise usage.UsageError("--ipv6-prefix: an IPv6 prefix is at most 128")
        for name in ("idle-timeout", "write-timeout", "udp-rate", "udp-global-rate"):
            self[name] = numericOption(self, name, minimum=0, kind=float)
        self["shutdown-timeout"] = numericOption(
            self, "shutdown-timeout", minimum=0, kind=float
        )
        try:
            self["access"] = AccessPolicy(
                [parseNetwork(network) for network in self["allow"]],
                [parseNetwork(network) for network in self["deny"]],
            )
        except ValueError as error:
            raise usage.UsageError(f"--allow/--deny: {error}") from None
        try:
            self["health-check-from"] = [
                parseNetwork(network) for network in self["health-check-from"]
            ]
        except ValueError as error:
            raise usage.UsageError(f"--health-check-from: {error}") from None
        try:
            self["proxy-from"] = [
                parseNetwork(network) for network in self["proxy-from"]
            ] or list(LOOPBACK)
        except ValueError as error:
            raise usage.UsageError(f"--proxy-from: {error}") from None
        if self["framing"] not in FRAMINGS:
            raise usage.UsageError(
                f"--framing must be one of {', '.join(FRAMINGS)}, "
                f"not {self['framing']!r}"
            )
        try:
            self["template"] = ReplyTemplate(self["reply"])
        except ValueError as error:
            raise usage.UsageError(f"--reply: {error}") from None
        for name in ("tcp", "udp"):
            if self[f"no-{name}"]:
                if self[name]:
                    raise usage.UsageError(f"--no-{name} contradicts --{name}")
            elif not self[name]:
                self[name] = [DEFAULT_TCP if name == "tcp" else DEFAULT_UDP]
        if not (self["tcp"] or self["udp"]):
            raise usage.UsageError("--no-tcp and --no-udp leave nothing to serve")
        try:
            self["plan"] = makePlan(
                _defaultReactor(), self["tcp"], self["udp"], self["metrics"]
            )
        except PlanError as error:
            raise usage.UsageError(str(error)) from None
        unshareable = self["plan"].notShareable()
        if self["workers"] > 1 and unshareable is not None:
            option = "--tcp" if unshareable.kind == TCP else "--udp"
            raise usage.UsageError(
                f"{option} {unshareable.description!r}: {unshareable.notShareable}"
            )


def _defaultReactor() -> Any:
    from twisted.internet import reactor

    return reactor
