"""
C{twistd greetd}: the command-line options and the service they describe.
"""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar, Sequence

from twisted.application.service import MultiService
from twisted.python import usage

from greetd.datagram import ReplyProtocol
from greetd.endpoints import datagramServerFromString, streamServerFromString
from greetd.framing import FRAMINGS
from greetd.greeting import DEFAULT_MAX_LENGTH, DEFAULT_WELCOME, GreetingFactory
from greetd.notify import notifyServiceFromEnvironment
from greetd.service import ListeningService
from greetd.template import DEFAULT_TEMPLATE, ReplyTemplate

#: Where the seed's TCP server listens.
DEFAULT_TCP = "tcp:9999:interface=127.0.0.1"

#: Where the seed's UDP server listens.
DEFAULT_UDP = "udp:9999:interface=127.0.0.1"


def _number(options: usage.Options, name: str, minimum: int = 1) -> int:
    """
    Check the whole-number option C{name}, naming it in the error.
    """
    value = options[name]
    try:
        number = int(value)
    except ValueError:
        raise usage.UsageError(f"--{name}: {value!r} is not a whole number") from None
    if number < minimum:
        raise usage.UsageError(f"--{name}: {number} is less than {minimum}")
    return number


class Options(usage.Options):
    """
    The options of C{twistd greetd}.

    After parsing, C{self["tcp"]} and C{self["udp"]} hold the endpoint
    descriptions to listen on (the defaults unless given or disabled) and
    C{self["template"]} the checked L{ReplyTemplate}.
    """

    synopsis = "[options]"
    longdesc = (
        "greetd serves the greeting protocol: over TCP, a banner on connect, "
        "'Hello, M!' for every message M, and a close on 'exit'; over UDP, "
        "'Hello, D!' for every datagram D. --tcp takes any Twisted server "
        "endpoint string; --udp takes udp:PORT[:interface=ADDRESS]. Both "
        "may be repeated."
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
    ]

    optFlags: ClassVar[list[Any]] = [
        ["no-tcp", None, "Do not serve TCP."],
        ["no-udp", None, "Do not serve UDP."],
    ]

    compData = usage.Completions(optActions={"framing": usage.CompleteList(FRAMINGS)})

    _failed = False

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self["tcp"] = []
        self["udp"] = []

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        try:
            super().parseOptions(options)  # type: ignore[no-untyped-call]
        except usage.UsageError:
            self._failed = True
            raise

    def getUsage(self, width: int | None = None) -> str:
        """
        The full usage, or a pointer to it after a failed parse: twistd
        prints the usage before the error, and a bad value deserves one
        clear line rather than a screenful (C{--help} shows everything).
        """
        if self._failed:
            return "Run 'twistd greetd --help' for the options."
        return str(super().getUsage(width))

    def opt_tcp(self, description: str) -> None:
        """A Twisted server endpoint for TCP greetings (repeatable)."""
        self["tcp"].append(description)

    def opt_udp(self, description: str) -> None:
        """udp:PORT[:interface=ADDRESS] for UDP replies (repeatable)."""
        self["udp"].append(description)

    def postOptions(self) -> None:
        self["max-length"] = _number(self, "max-length")
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
        reactor = _defaultReactor()
        _check(self["tcp"], "--tcp", partial(streamServerFromString, reactor))
        _check(self["udp"], "--udp", partial(datagramServerFromString, reactor))


def _check(descriptions: Sequence[str], option: str, parse: Any) -> None:
    """
    Parse each endpoint description once, so a bad one is a usage error now
    rather than a traceback when the service starts.
    """
    for description in descriptions:
        try:
            parse(description)
        except Exception as error:
            # Endpoint parsers raise ValueError, TypeError, KeyError, OSError
            # (a missing certificate) and more; each is the operator's error.
            raise usage.UsageError(
                f"{option} {description!r}: {error or type(error).__name__}"
            ) from None


def _defaultReactor() -> Any:
    from twisted.internet import reactor

    return reactor


def makeService(options: Options, reactor: Any = None) -> MultiService:
    """
    Build the greetd service: a L{ListeningService} for each TCP endpoint,
    all sharing one L{GreetingFactory}, and one for each UDP endpoint, each
    with its own L{ReplyProtocol}; then, under a service manager that asks
    for them (C{NOTIFY_SOCKET}), a L{NotifyService} for readiness and
    watchdog notifications, last so that it starts after every listener.

    @param options: Parsed L{Options}.
    @param reactor: The reactor to listen with; the global one by default.
    """
    if reactor is None:
        reactor = _defaultReactor()

    services = MultiService()
    template: ReplyTemplate = options["template"]
    maxLength: int = options["max-length"]
    factory = GreetingFactory(
        welcome=options["welcome"].encode("utf-8"),
        template=template,
        framing=options["framing"],
        maxLength=maxLength,
        clock=reactor,
    )
    for description in options["tcp"]:
        endpoint = streamServerFromString(reactor, description)
        ListeningService(
            "TCP", description, partial(endpoint.listen, factory)
        ).setServiceParent(services)  # type: ignore[no-untyped-call]
    for description in options["udp"]:
        datagrams = datagramServerFromString(reactor, description, maxLength + 1)
        ListeningService(
            "UDP",
            description,
            partial(datagrams.listen, ReplyProtocol(template, maxLength)),
        ).setServiceParent(services)  # type: ignore[no-untyped-call]
    listeners = [child for child in services if isinstance(child, ListeningService)]
    notifier = notifyServiceFromEnvironment(listeners, reactor)
    if notifier is not None:
        notifier.setServiceParent(services)  # type: ignore[no-untyped-call]
    return services
