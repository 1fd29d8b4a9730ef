"""
C{twistd greetd}: the command-line options and the service they describe.
"""

from __future__ import annotations

import sys
from collections import Counter
from functools import partial
from typing import Any, Callable, ClassVar, Sequence

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.python import usage

from greetd.core.access import AccessPolicy, parseNetwork
from greetd.core.framing import FRAMINGS
from greetd.core.limits import ConnectionLimiter
from greetd.core.template import DEFAULT_TEMPLATE, ReplyTemplate
from greetd.daemon.endpoints import datagramServerFromString
from greetd.daemon.listening import ListeningService
from greetd.daemon.pool import (
    checkShareable,
    checkShareableDatagram,
    workerPoolService,
)
from greetd.daemon.shutdown import DEFAULT_SHUTDOWN_TIMEOUT, DrainService
from greetd.ops.metrics import CountsCollector, metricsSite, readCounts
from greetd.ops.notify import notifyServiceFromEnvironment
from greetd.protocols.datagram import DEFAULT_GLOBAL_RATE, DEFAULT_RATE, ReplyProtocol
from greetd.protocols.greeting import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_LENGTH,
    DEFAULT_WELCOME,
    GreetingFactory,
)
from greetd.protocols.proxy import MAX_HEADER, PREFIX, streamServerFromString

#: Where the seed's TCP server listens.
DEFAULT_TCP = "tcp:9999:interface=127.0.0.1"

#: Where the seed's UDP server listens.
DEFAULT_UDP = "udp:9999:interface=127.0.0.1"

#: Connections open at once, from everyone.
DEFAULT_MAX_CONNECTIONS = 10000

#: Connections open at once from one address: room for a NAT's users.
DEFAULT_MAX_PER_IP = 64

#: New connections per second from one address (xinetd's cps).
DEFAULT_RATE_PER_IP = 20


def numericOption(
    options: usage.Options, name: str, minimum: float = 1, kind: type = int
) -> Any:
    """
    Check the numeric option C{name}, naming it in the error.
    """
    value = options[name]
    try:
        number = kind(value)
    except ValueError:
        description = "a whole number" if kind is int else "a number"
        raise usage.UsageError(f"--{name}: {value!r} is not {description}") from None
    if not number >= minimum:
        raise usage.UsageError(f"--{name}: {number} is less than {minimum}")
    return number


class Options(usage.Options):
    """
    The options of C{twistd greetd}.

    After parsing, C{self["tcp"]} and C{self["udp"]} hold the endpoint
    descriptions to listen on (the defaults unless given or disabled) and
    C{self["template"]} the checked L{ReplyTemplate}.

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
        "Both may be repeated."
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
            "Seconds a TCP connection may complete no message (0: no limit).",
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
            "haproxy:tcp... and udp: only). Limits apply per worker: with N "
            "workers a per-address limit of L admits up to N*L.",
        ],
    ]

    optFlags: ClassVar[list[Any]] = [
        ["no-tcp", None, "Do not serve TCP."],
        ["no-udp", None, "Do not serve UDP."],
        [
            "udp-allow-low-ports",
            None,
            "Answer datagrams from source ports below 1024 (refused by "
            "default: they are the services a spoofed loop would target).",
        ],
    ]

    compData = usage.Completions(optActions={"framing": usage.CompleteList(FRAMINGS)})

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self["tcp"] = []
        self["udp"] = []
        self["allow"] = []
        self["deny"] = []

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """
        Parse C{options}; a bad one raises L{usage.UsageError}, except under
        twistd, where it ends the process with one line on standard error
        and status 1.  twistd itself would print the whole usage first, and
        before Twisted 26.10 exit with status 0.
        """
        self.arguments = list(sys.argv[1:] if options is None else options)
        try:
            super().parseOptions(options)  # type: ignore[no-untyped-call]
        except usage.UsageError as error:
            if getattr(self, "parent", None) is None:
                raise
            sys.stderr.write(f"twistd greetd: {error} (see twistd greetd --help)\n")
            raise SystemExit(1) from None

    def opt_tcp(self, description: str) -> None:
        """A Twisted server endpoint for TCP greetings (repeatable)."""
        self["tcp"].append(description)

    def opt_udp(self, description: str) -> None:
        """udp:PORT[:interface=ADDRESS] or systemd:domain=...:name=... (repeatable)."""
        self["udp"].append(description)

    def opt_allow(self, network: str) -> None:
        """Serve only this CIDR (repeatable; TCP and UDP)."""
        self["allow"].append(network)

    def opt_deny(self, network: str) -> None:
        """Refuse this CIDR (repeatable; TCP and UDP; wins over --allow)."""
        self["deny"].append(network)

    def postOptions(self) -> None:
        self["max-length"] = numericOption(self, "max-length")
        self["workers"] = numericOption(self, "workers")
        for name in ("max-connections", "max-per-ip", "rate-per-ip"):
            self[name] = numericOption(self, name, minimum=0)
        for name in ("idle-timeout", "udp-rate", "udp-global-rate"):
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
        checkEndpoints(self["tcp"], "--tcp", partial(streamServerFromString, reactor))
        if self["metrics"] is not None:
            checkEndpoints(
                [self["metrics"]], "--metrics", partial(serverFromString, reactor)
            )
        checkEndpoints(self["udp"], "--udp", partial(datagramServerFromString, reactor))
        if self["workers"] > 1:
            checkEndpoints(self["tcp"], "--tcp", checkShareable)
            shareable = partial(checkShareableDatagram, reactor)
            checkEndpoints(self["udp"], "--udp", shareable)


def checkEndpoints(descriptions: Sequence[str], option: str, parse: Any) -> None:
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


class Servers:
    """
    What answers clients, as the options describe it, before it listens
    anywhere: built once per process, by L{makeService} for the listeners
    it binds and by a worker (L{greetd.daemon.worker}) for the sockets it inherits.

    @ivar factory: The one L{GreetingFactory} every TCP listener shares, so
        that connection limits count across them; C{None} without TCP.
    @ivar replies: A L{ReplyProtocol} for each C{--udp} listener, in order
        (a datagram port owns its protocol).
    @ivar maxPacketSize: The receive buffer of a UDP port: one more than the
        longest datagram answered, so a longer one is seen to be too long
        (and room for a PROXY header when a listener expects one).
    """

    def __init__(
        self,
        factory: GreetingFactory | None,
        replies: list[ReplyProtocol],
        maxPacketSize: int,
    ) -> None:
        self.factory = factory
        self.replies = replies
        self.maxPacketSize = maxPacketSize

    def counts(self) -> Counter[str]:
        """
        The counters of every server, for metrics.
        """
        return readCounts(self.factory, self.replies)


def buildServers(options: Options, reactor: Any) -> Servers:
    """
    The factory and protocols that serve C{options}.

    @param options: Parsed L{Options}.
    @param reactor: The clock for timeouts and rates.
    """
    template: ReplyTemplate = options["template"]
    maxLength: int = options["max-length"]
    access: AccessPolicy = options["access"]
    factory = None
    if options["tcp"]:
        factory = GreetingFactory(
            welcome=options["welcome"].encode("utf-8"),
            template=template,
            framing=options["framing"],
            maxLength=maxLength,
            clock=reactor,
            idleTimeout=options["idle-timeout"],
            limiter=ConnectionLimiter(
                options["max-connections"],
                options["max-per-ip"],
                options["rate-per-ip"],
            ),
            access=access,
        )
    replies = [
        ReplyProtocol(
            template,
            maxLength,
            clock=reactor,
            rate=options["udp-rate"],
            globalRate=options["udp-global-rate"],
            access=access,
            allowLowPorts=options["udp-allow-low-ports"],
            proxied=description.startswith(PREFIX),
        )
        for description in options["udp"]
    ]
    proxied = any(reply.proxied for reply in replies)
    return Servers(factory, replies, maxLength + 1 + (MAX_HEADER if proxied else 0))


#: Listens for TCP: C{(index, description, factory)} to the listening port,
#: where C{index} is the description's place among the C{--tcp} options.
ListenStream = Callable[[int, str, IProtocolFactory], "Deferred[IListeningPort]"]

#: Listens for UDP, likewise: C{(index, description, protocol, maxPacketSize)}.
ListenDatagram = Callable[[int, str, ReplyProtocol, int], "Deferred[IListeningPort]"]


def serve(
    options: Options,
    servers: Servers,
    listenStream: ListenStream,
    listenDatagram: ListenDatagram,
) -> MultiService:
    """
    The services that serve C{servers} on every listener of C{options}: a
    L{DrainService} for TCP, then a L{ListeningService} for each listener,
    listening through C{listenStream} and C{listenDatagram}.
    """
    services = MultiService()
    factory = servers.factory
    if factory is not None:
        raiseFileLimit(options["max-connections"])
        drain = DrainService(factory, options["shutdown-timeout"])
        drain.setServiceParent(services)  # type: ignore[no-untyped-call]
        for index, description in enumerate(options["tcp"]):
            listen = partial(listenStream, index, description, factory)
            _serve(services, "TCP", description, listen)
    for index, (description, protocol) in enumerate(
        zip(options["udp"], servers.replies)
    ):
        listen = partial(
            listenDatagram, index, description, protocol, servers.maxPacketSize
        )
        _serve(services, "UDP", description, listen)
    return services


def makeService(options: Options, reactor: Any = None) -> MultiService:
    """
    Build the greetd service: a L{ListeningService} for each TCP endpoint,
    all sharing one L{GreetingFactory}, and one for each UDP endpoint, each
    with its own L{ReplyProtocol}; or, with C{--workers} above 1, the
    listening sockets and the L{WorkerPool} that serves them.

    @param options: Parsed L{Options}.
    @param reactor: The reactor to listen with; the global one by default.
    """
    if reactor is None:
        reactor = _defaultReactor()
    workers = None
    if options["workers"] > 1:
        services, pool = workerPoolService(options, reactor)
        counts, workers = pool.counts, pool.alive
    else:
        servers = buildServers(options, reactor)
        services = serve(
            options,
            servers,
            partial(_listenStream, reactor),
            partial(_listenDatagram, reactor),
        )
        counts = servers.counts
    if options["metrics"] is not None:
        served = bool(options["tcp"]), bool(options["udp"])
        collector = CountsCollector(counts, *served, workers=workers)
        metrics = serverFromString(reactor, options["metrics"])
        site = metricsSite(collector)
        _serve(services, "metrics", options["metrics"], partial(metrics.listen, site))
    listeners = [child for child in services if isinstance(child, ListeningService)]
    notifier = notifyServiceFromEnvironment(listeners, reactor)
    if notifier is not None:
        notifier.setServiceParent(services)  # type: ignore[no-untyped-call]
    return services


def _listenStream(
    reactor: Any, index: int, description: str, factory: IProtocolFactory
) -> Deferred[IListeningPort]:
    endpoint = streamServerFromString(reactor, description)
    return endpoint.listen(factory)


def _listenDatagram(
    reactor: Any,
    index: int,
    description: str,
    protocol: ReplyProtocol,
    maxPacketSize: int,
) -> Deferred[IListeningPort]:
    endpoint = datagramServerFromString(reactor, description, maxPacketSize)
    return endpoint.listen(protocol)


def _serve(
    services: MultiService,
    kind: str,
    description: str,
    listen: Callable[[], Deferred[IListeningPort]],
) -> None:
    service = ListeningService(kind, description, listen)
    service.setServiceParent(services)  # type: ignore[no-untyped-call]


def raiseFileLimit(connections: int) -> None:
    """
    Raise the soft limit on open files to fit C{connections} and some to
    spare, as far as the hard limit allows: the usual soft limit of 1024
    would refuse connections long before C{--max-connections} does.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover (not on POSIX)
        return
    infinity = resource.RLIM_INFINITY
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = None if hard == infinity else hard
    wanted = connections + 256 if connections else ceiling
    if soft == infinity or wanted is None:
        return
    if ceiling is not None:
        wanted = min(wanted, ceiling)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
