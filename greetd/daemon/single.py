"""
Serving in one process: a L{ListeningService} for each listener of the
plan, with the factory and protocols of L{greetd.daemon.build}, and
connections drained on shutdown.  A worker process serves the same way,
listening on inherited sockets instead.
"""

from __future__ import annotations

from typing import Any, Callable, Union, cast

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.logger import Logger

from greetd.daemon.build import Servers, buildServers
from greetd.daemon.listening import ListeningService
from greetd.daemon.options import Options
from greetd.daemon.plan import TCP, Listener, Plan
from greetd.daemon.shutdown import DrainService
from greetd.protocols.datagram import ReplyProtocol

#: What a listener serves: the greeting factory (TCP) or a reply protocol.
Target = Union[IProtocolFactory, ReplyProtocol]

#: Listens for one listener of the plan: C{(listener, target,
#: maxPacketSize)} to the listening port.
Listen = Callable[[Listener, Target, int], "Deferred[IListeningPort]"]


def serve(
    plan: Plan,
    servers: Servers,
    listen: Listen,
    shutdownTimeout: float,
    maxConnections: int,
) -> MultiService:
    """
    The services that serve C{servers} on every greeting listener of
    C{plan}: a L{DrainService} for TCP, then a L{ListeningService} for each
    listener, listening through C{listen}.
    """
    services = MultiService()
    factory = servers.factory
    if factory is not None:
        drain = DrainService(factory, shutdownTimeout)
        drain.setServiceParent(services)  # type: ignore[no-untyped-call]
        files = FileLimitService(maxConnections)
        files.setServiceParent(services)  # type: ignore[no-untyped-call]
    targets: list[tuple[Listener, Target]] = []
    if factory is not None:
        targets += [(listener, factory) for listener in plan.tcp]
    targets += list(zip(plan.udp, servers.replies))
    for listener, target in targets:
        listening = ListeningService(
            listener.kind,
            listener.description,
            lambda listener=listener, target=target: listen(  # type: ignore[misc]
                listener, target, servers.maxPacketSize
            ),
        )
        listening.setServiceParent(services)  # type: ignore[no-untyped-call]
    return services


def listenOn(
    reactor: Any, listener: Listener, target: Target, maxPacketSize: int
) -> Deferred[IListeningPort]:
    """
    Listen on C{listener}'s own endpoint: how a single process listens.
    """
    if listener.kind == TCP:
        return listener.streamEndpoint(reactor).listen(target)  # type: ignore[arg-type]
    endpoint = listener.datagramEndpoint(reactor, maxPacketSize)
    return endpoint.listen(cast(ReplyProtocol, target))


def singleProcessService(
    options: Options, reactor: Any
) -> tuple[MultiService, Servers]:
    """
    The services of C{twistd greetd} without C{--workers}, and the servers
    they serve, for metrics.
    """
    servers = buildServers(options, reactor)
    services = serve(
        options["plan"],
        servers,
        lambda *args: listenOn(reactor, *args),
        options["shutdown-timeout"],
        options["max-connections"],
    )
    return services, servers


#: Descriptors kept beyond C{--max-connections}: listeners, logs, pipes.
SPARE_FILES = 256


def raiseFileLimit(connections: int) -> tuple[int, int] | None:
    """
    Raise the soft limit on open files to fit C{connections} and
    L{SPARE_FILES}, as far as the hard limit allows: the usual soft limit of
    1024 would refuse connections long before C{--max-connections} does.

    @return: C{(limit, wanted)} when the limit now in force is below what
        C{connections} needs; C{None} when it fits.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover (not on POSIX)
        return None
    infinity = resource.RLIM_INFINITY
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == infinity:
        return None
    ceiling = None if hard == infinity else hard
    wanted = connections + SPARE_FILES if connections else ceiling
    if wanted is None:
        return None
    reachable = wanted if ceiling is None else min(wanted, ceiling)
    if soft < reachable:
        resource.setrlimit(resource.RLIMIT_NOFILE, (reachable, hard))
        soft = reachable
    return (soft, wanted) if soft < wanted else None


class FileLimitService(Service):
    """
    Raises the open-file limit when the service starts, not when it is
    built, and warns when the limit cannot fit C{--max-connections}: the
    connections past it would be refused by the kernel, without their
    error line.

    @ivar connections: C{--max-connections}; 0 for no limit.
    """

    _log = Logger()

    def __init__(self, connections: int) -> None:
        self.connections = connections

    def startService(self) -> None:
        Service.startService(self)
        short = raiseFileLimit(self.connections)
        if short is not None and self.connections:
            limit, wanted = short
            self._log.warn(
                "The open-file limit is {limit}, below the {wanted} that "
                "--max-connections {connections} needs: raise the hard limit "
                "(LimitNOFILE=, ulimit -Hn) or lower --max-connections",
                limit=limit,
                wanted=wanted,
                connections=self.connections,
                greetdEvent="files.limit",
            )
