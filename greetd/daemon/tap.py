"""
C{twistd greetd}: the options and the service they describe, in one
process or, with C{--workers}, a pool of worker processes.
"""

from __future__ import annotations

import select
import sys
from contextlib import suppress
from typing import Any, Callable, Mapping, MutableMapping, Sequence

from twisted.application.service import MultiService
from twisted.internet.error import ReactorNotRunning
from twisted.logger import ILogObserver
from twisted.python import log as legacy_log
from twisted.python import usage
from twisted.python.components import Componentized
from twisted.python.failure import Failure

from greetd.daemon.exitstatus import ExitStatus, StartupFailed
from greetd.daemon.listening import ListenFailed, ListeningService
from greetd.daemon.options import DEFAULT_TCP, DEFAULT_UDP, _defaultReactor
from greetd.daemon.options import Options as GreetdOptions
from greetd.daemon.pool.service import workerPoolService
from greetd.daemon.single import singleProcessService
from greetd.ops.log import LogOutput, loggerAsFormat
from greetd.ops.logfile import ReopenOnSignalService
from greetd.ops.metrics import CountsCollector, metricsSite
from greetd.ops.notify import notifyServiceFromEnvironment

__all__ = ["DEFAULT_TCP", "DEFAULT_UDP", "GreetdServices", "Options", "makeService"]


class Options(GreetdOptions):
    """
    L{greetd.daemon.options.Options} as twistd's subcommand.

    A bad option ends the process with one line on standard error and
    status 1 (twistd itself would print the whole usage first and, before
    Twisted 26.10, exit with status 0); C{--version} prints greetd's
    version; and greetd's log (C{self["log"]}) goes where twistd's options
    say (L{LogOutput.followTwistd}), its files reopened on SIGHUP and
    SIGUSR1 (L{makeService}).  twistd's C{--logger} naming greetd's JSON
    logger is C{--log-format json} (L{loggerAsFormat}); any other
    C{--logger} is twistd's to call, and greetd's log stays out of its way.
    Unless the runner's C{--reactor} (twistd's or twist's) chose one, it
    runs on greetd's reactor (L{greetd.daemon.reactor}), and a pool's
    workers run on the parent's.  Its C{exit} is the L{ExitStatus} twistd
    greetd exits with.
    """

    longdesc = (
        GreetdOptions.longdesc
        + " It runs on greetd's reactor (epoll without a log context around"
        " every event) unless twistd's --reactor chooses another."
    )

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
            self["exit"] = ExitStatus()
            # Before the plan imports the reactor: the runner has installed
            # the one --reactor named, if any; otherwise greetd's.
            self["reactor"] = chosenReactor(parent) or installGreetdReactor()
        formatGiven = self["log-format"] is not None
        super().postOptions()
        if parent is not None:
            self.followTwistd(parent, formatGiven)

    def followTwistd(self, twistd: MutableMapping[str, Any], formatGiven: bool) -> None:
        """
        Make greetd's log follow twistd's options (C{twistd}, this
        subcommand's parent), before twistd's own C{postOptions} resolves
        its C{--logger}.

        @param formatGiven: Whether C{--log-format} was given.
        """
        log: LogOutput = self["log"]
        logger = twistd.get("logger")
        if logger is not None and loggerAsFormat(logger):
            if formatGiven and self["log-format"] != "json":
                raise usage.UsageError(
                    f"--logger {logger} contradicts --log-format {self['log-format']}"
                )
            self["log-format"], log.json = "json", True
            twistd["logger"] = None
        log.followTwistd(twistd)


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


def makeService(options: GreetdOptions, reactor: Any = None) -> GreetdServices:
    """
    Build the greetd service: a L{ListeningService} for each TCP listener,
    all sharing one L{GreetingFactory <greetd.protocols.greeting.GreetingFactory>},
    and one for each UDP listener, each with its own
    L{ReplyProtocol <greetd.protocols.datagram.ReplyProtocol>}; or, with
    C{--workers} above 1, the listening sockets and the
    L{WorkerPool <greetd.daemon.pool.service.WorkerPool>} that serves them.  Then
    the metrics listener, if asked for; under twistd (L{Options}), the
    service that reopens the log on SIGHUP and SIGUSR1 (and, for a pool,
    has the workers reopen theirs, and replaces them on SIGHUP); and under a service
    manager the L{NotifyService <greetd.ops.notify.NotifyService>}, last.
    All in L{GreetdServices}, which log as the options say once given to
    an application.

    @param options: Parsed L{Options}.
    @param reactor: The reactor to listen with; the global one by default.
    """
    if reactor is None:
        reactor = _defaultReactor()
    plan = options["plan"]
    workers = reload = forward = None
    if options["workers"] > 1:
        services, pool = workerPoolService(options, reactor)
        counts, workers, reload = pool.counts, pool.alive, pool.reload
        forward = pool.reopenLogs
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
    log: LogOutput = options["log"]
    if log.twistd:
        reopen = ReopenOnSignalService(
            log.files, reactor, reload=reload, forward=forward
        )
        reopen.setServiceParent(services)  # type: ignore[no-untyped-call]
    listeners = [child for child in services if isinstance(child, ListeningService)]
    notifier = notifyServiceFromEnvironment(listeners, reactor)
    if notifier is not None:
        notifier.setServiceParent(services)  # type: ignore[no-untyped-call]
    return GreetdServices(log, services, reactor, options.get("exit"))


class GreetdServices(MultiService):
    """
    greetd's services, as L{makeService} returns them: given to a twistd
    application, they also give it greetd's log observer
    (L{LogOutput.observer}) as its L{ILogObserver} component, which
    twistd's logger uses unless its C{--logger} names a factory.  An
    application that has an observer of its own keeps it.

    A listener that cannot listen (L{ListeningService}, which logs why)
    ends the daemon: as it starts, with L{StartupFailed}; later, by
    stopping the reactor, so that twistd shuts down as usual, with
    C{exitStatus} set to 1.

    @ivar log: The log the options describe.
    @ivar exitStatus: The status twistd greetd exits with, or C{None}
        (a C{.tac}, whose process exits as twistd does).
    """

    _watching = False

    def __init__(
        self,
        log: LogOutput,
        services: MultiService,
        reactor: Any = None,
        exitStatus: ExitStatus | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.log = log
        self._reactor = reactor if reactor is not None else _defaultReactor()
        self.exitStatus = exitStatus
        for service in list(services):
            services.removeService(service)
            self.addService(service)  # type: ignore[no-untyped-call]

    def setServiceParent(self, parent: Any) -> None:
        super().setServiceParent(parent)  # type: ignore[no-untyped-call]
        if not isinstance(parent, Componentized):
            return
        for interface in (ILogObserver, legacy_log.ILogObserver):
            if parent.getComponent(interface) is not None:
                return
        observer = self.log.observer()
        if observer is not None:
            parent.setComponent(ILogObserver, observer)

    def privilegedStartService(self) -> None:
        self._start(super().privilegedStartService)

    def startService(self) -> None:
        self._start(super().startService)

    def _start(self, start: Callable[[], object]) -> None:
        """
        Call C{start}, having asked every listener to say if it fails once
        started; one that cannot listen as it starts is L{StartupFailed}.
        """
        if not self._watching:
            self._watching = True
            for service in self:
                if isinstance(service, ListeningService):
                    service.whenListening().addErrback(self._listenerFailed)
        try:
            start()
        except ListenFailed as failed:
            raise StartupFailed(str(failed)) from None

    def _listenerFailed(self, failure: Failure) -> None:
        if self.exitStatus is not None:
            self.exitStatus.fail(1)
        with suppress(ReactorNotRunning):
            self._reactor.stop()
