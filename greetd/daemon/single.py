"""
Serving in one process: a L{ListeningService} for each listener of the
plan, with the factory and protocols of L{greetd.daemon.build}, and
connections drained on shutdown.  A worker process serves the same way,
listening on inherited sockets instead.
"""

from __future__ import annotations

from typing import Any, Callable, Union, cast

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IProtocolFactory

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
        raiseFileLimit(maxConnections)
        drain = DrainService(factory, shutdownTimeout)
        drain.setServiceParent(services)  # type: ignore[no-untyped-call]
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
