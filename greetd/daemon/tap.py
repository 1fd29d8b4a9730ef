"""
C{twistd greetd}: the options and the service they describe, in one
process or, with C{--workers}, a pool of worker processes.
"""

from __future__ import annotations

import select
import sys
from typing import Any, Mapping, Sequence

from twisted.application.service import MultiService
from twisted.python import usage

from greetd.daemon.listening import ListeningService
from greetd.daemon.options import DEFAULT_TCP, DEFAULT_UDP, _defaultReactor
from greetd.daemon.options import Options as GreetdOptions
from greetd.daemon.pool.service import workerPoolService
from greetd.daemon.single import singleProcessService
from greetd.ops.log import installLogger
from greetd.ops.logfile import LogFiles, ReopenOnSignalService
from greetd.ops.metrics import CountsCollector, metricsSite
from greetd.ops.notify import notifyServiceFromEnvironment

__all__ = ["DEFAULT_TCP", "DEFAULT_UDP", "Options", "makeService"]


class Options(GreetdOptions):
    """
    L{greetd.daemon.options.Options} as twistd's subcommand.

    A bad option ends the process with one line on standard error and
    status 1 (twistd itself would print the whole usage first and, before
    Twisted 26.10, exit with status 0); C{--version} prints greetd's
    version; and once the options are good, twistd logs through greetd's
    logger (L{installLogger}), whose files L{makeService} reopens on
    SIGHUP and SIGUSR1.  Unless the runner's C{--reactor} (twistd's or
    twist's) chose one, it runs on greetd's reactor
    (L{greetd.daemon.reactor}), and a pool's workers run on the parent's.

    @ivar logFiles: The log files twistd opens through greetd's logger.
    """

    longdesc = (
        GreetdOptions.longdesc
        + " It runs on greetd's reactor (epoll without a log context around"
        " every event) unless twistd's --reactor chooses another."
    )

    def __init__(self) -> None:
        super().__init__()
        self.logFiles = LogFiles()

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        try:
            super().parseOptions(options)
        except usage.UsageError as error:
            sys.stderr.write(f"twistd greetd: {error} (see twistd greetd --help)\n")
            raise SystemExit(1) from None

    def opt_version(self) -> None:
        """Display greetd's version and Twisted's, and exit."""
        from greetd import __version__
        from twisted import copyright

        print(f"greetd {__version__} (Twisted {copyright.version})")
        sys.exit(0)

    def postOptions(self) -> None:
        parent = getattr(self, "parent", None)
        if parent is not None:
            # Before the plan imports the reactor: the runner has installed
            # the one --reactor named, if any; otherwise greetd's.
            self["reactor"] = chosenReactor(parent) or installGreetdReactor()
        super().postOptions()
        if parent is not None:
            installLogger(parent, self["log-level"], self.logFiles)


def chosenReactor(runner: Mapping[str, Any]) -> str | None:
    """
    The name of the reactor plugin the runner's C{--reactor} installed, if
    any: twistd keeps it as C{reactor}; twist keeps the reactor itself
    there and the name, C{default} unless chosen, as C{reactorName}.
    """
    name = runner.get("reactorName", runner.get("reactor"))
    return name if isinstance(name, str) and name != "default" else None


def installGreetdReactor() -> str | None:
    """
    Install greetd's reactor unless one is installed already, and return
    its plugin name if it was.  It is epoll's: where there is none (not
    Linux), Twisted's default stays, and L{greetd.daemon.reactor}, which
    cannot be imported there, is not.
    """
    if not hasattr(select, "epoll"):
        return None
    from greetd.daemon.reactor import REACTOR_NAME, installUnlessChosen

    return REACTOR_NAME if installUnlessChosen() else None


def makeService(options: GreetdOptions, reactor: Any = None) -> MultiService:
    """
    Build the greetd service: a L{ListeningService} for each TCP listener,
    all sharing one L{GreetingFactory <greetd.protocols.greeting.GreetingFactory>},
    and one for each UDP listener, each with its own
    L{ReplyProtocol <greetd.protocols.datagram.ReplyProtocol>}; or, with
    C{--workers} above 1, the listening sockets and the
    L{WorkerPool <greetd.daemon.pool.service.WorkerPool>} that serves them.  Then
    the metrics listener, if asked for; under twistd (L{Options}), the
    service that reopens the log on SIGHUP and SIGUSR1 (and, for a pool,
    replaces the workers on SIGHUP); and under a service
    manager the L{NotifyService <greetd.ops.notify.NotifyService>}, last.

    @param options: Parsed L{Options}.
    @param reactor: The reactor to listen with; the global one by default.
    """
    if reactor is None:
        reactor = _defaultReactor()
    plan = options["plan"]
    workers = reload = None
    if options["workers"] > 1:
        services, pool = workerPoolService(options, reactor)
        counts, workers, reload = pool.counts, pool.alive, pool.reload
    else:
        services, servers = singleProcessService(options, reactor)
        counts = servers.counts
    if plan.metrics is not None:
        collector = CountsCollector(
            counts, bool(plan.tcp), bool(plan.udp), workers=workers
        )
        site = metricsSite(collector)
        endpoint = plan.metrics.streamEndpoint(reactor)
        metrics = ListeningService(
            plan.metrics.kind, plan.metrics.description, lambda: endpoint.listen(site)
        )
        metrics.setServiceParent(services)  # type: ignore[no-untyped-call]
    logFiles = getattr(options, "logFiles", None)
    if logFiles is not None:
        reopen = ReopenOnSignalService(logFiles, reactor, reload=reload)
        reopen.setServiceParent(services)  # type: ignore[no-untyped-call]
    listeners = [child for child in services if isinstance(child, ListeningService)]
    notifier = notifyServiceFromEnvironment(listeners, reactor)
    if notifier is not None:
        notifier.setServiceParent(services)  # type: ignore[no-untyped-call]
    return services
