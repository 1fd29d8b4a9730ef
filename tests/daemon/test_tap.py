"""
Tests for L{greetd.daemon.tap}.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
from functools import partial
from io import StringIO
from typing import Any

from twisted.application.service import Application, MultiService
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import CannotListenError
from twisted.logger import ILogObserver, LogLevel, textFileLogObserver
from twisted.python import usage
from twisted.python.log import ILogObserver as LegacyILogObserver
from twisted.scripts.twistd import ServerOptions
from twisted.trial.unittest import SynchronousTestCase

from greetd import __version__
from greetd.core.proxyheader import MAX_DATAGRAM_HEADER as MAX_HEADER
from greetd.daemon.exitstatus import ExitStatus, StartupFailed
from greetd.daemon.listening import ListeningService
from greetd.daemon.options import DEFAULT_TCP, DEFAULT_UDP, Options
from greetd.daemon.pool import WorkerPool
from greetd.daemon.shutdown import DrainService
from greetd.daemon.tap import GreetdServices, chosenReactor, makeService
from greetd.daemon.tap import Options as TwistdOptions
from greetd.ops.accesslog import FastAccessLog
from greetd.ops.log import LogOutput
from greetd.ops.logfile import ReopenOnSignalService
from greetd.ops.notify import NotifyService
from greetd.protocols.accesslog import NoAccessLog
from greetd.protocols.datagram import ReplyProtocol
from greetd.protocols.greeting import GreetingFactory
from tests.helpers import MemoryUDPReactor, captureLogs, closeEvent, daemonOptions
from twisted import copyright


def underTwistd(*argv: str) -> TwistdOptions:
    """
    greetd's options as twistd parses them from its command line C{argv}.
    """
    config = ServerOptions()
    config.parseOptions(list(argv))
    options = config.subOptions
    assert isinstance(options, TwistdOptions)
    return options


class OptionsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        options = daemonOptions()
        self.assertEqual(options["tcp"], [DEFAULT_TCP])
        self.assertEqual(options["udp"], [DEFAULT_UDP])
        self.assertEqual(options["max-length"], 1024)
        self.assertEqual(options["framing"], "auto")
        self.assertEqual(options["template"].format(b"M"), b"Hello, M!")

    def test_safeDefaults(self) -> None:
        options = daemonOptions()
        self.assertEqual(
            [
                options[name]
                for name in (
                    "max-connections",
                    "max-per-ip",
                    "rate-per-ip",
                    "idle-timeout",
                    "write-timeout",
                    "udp-rate",
                    "udp-global-rate",
                    "shutdown-timeout",
                    "udp-allow-low-ports",
                )
            ],
            [10000, 64, 20, 300.0, 60.0, 10.0, 1000.0, 5.0, False],
        )
        self.assertFalse(options["access"])

    def test_access(self) -> None:
        options = daemonOptions(
            "--allow", "127.0.0.0/8", "--allow", "::1", "--deny", "127.0.0.2"
        )  # fmt: skip
        access = options["access"]
        self.assertEqual([str(net) for net in access.allow], ["127.0.0.0/8", "::1/128"])
        self.assertFalse(access.permits("127.0.0.2"))

    def test_repeatable(self) -> None:
        options = daemonOptions(
            "--tcp", "tcp:1", "--tcp", r"tcp6:2:interface=\:\:1",
            "--udp", "udp:3", "--udp", r"udp:4:interface=\:\:1",
        )  # fmt: skip
        self.assertEqual(options["tcp"], ["tcp:1", r"tcp6:2:interface=\:\:1"])
        self.assertEqual(options["udp"], ["udp:3", r"udp:4:interface=\:\:1"])

    def test_disable(self) -> None:
        self.assertEqual(daemonOptions("--no-tcp")["tcp"], [])
        self.assertEqual(daemonOptions("--no-udp")["udp"], [])

    def test_usageErrors(self) -> None:
        """
        Every bad value is a usage error naming the option.
        """
        for argv, message in [
            (["--framing", "words"], "--framing must be one of auto, line, raw"),
            (["--reply", "no placeholder"], "--reply: reply template"),
            (["--reply", "%s %s"], "exactly one %s"),
            (["--max-length", "0"], "--max-length: 0 is less than 1"),
            (["--max-length", "x"], "--max-length: 'x' is not a whole number"),
            (["--tcp", "tcp:abc"], "--tcp 'tcp:abc'"),
            (["--tcp", "nosuch:1"], "--tcp 'nosuch:1'"),
            (["--udp", "udp:1:interface=x"], "not an IPv4 or IPv6 address"),
            (["--no-tcp", "--tcp", "tcp:1"], "--no-tcp contradicts --tcp"),
            (["--no-udp", "--udp", "udp:1"], "--no-udp contradicts --udp"),
            (["--no-tcp", "--no-udp"], "nothing to serve"),
            (["--bogus"], "--bogus"),
            (["--max-per-ip", "-1"], "--max-per-ip: -1 is less than 0"),
            (["--idle-timeout", "soon"], "--idle-timeout: 'soon' is not a number"),
            (["--udp-rate", "nan"], "--udp-rate: nan is less than 0"),
            (["--allow", "10.0.0.0/33"], "--allow/--deny: '10.0.0.0/33'"),
            (["--deny", "example.com"], "is not an IPv4 or IPv6 network"),
            (["--health-check-from", "x"], "--health-check-from: 'x' is not"),
            (["--proxy-from", "lb"], "--proxy-from: 'lb' is not"),
            (["--ipv6-prefix", "129"], "--ipv6-prefix: an IPv6 prefix is at most 128"),
            (["--ipv6-prefix", "-1"], "--ipv6-prefix: -1 is less than 0"),
            (
                ["--log-level", "verbose"],
                "--log-level: 'verbose' is not one of debug, info, warn, error, "
                "critical",
            ),
        ]:
            options = Options()
            error = self.assertRaises(usage.UsageError, options.parseOptions, argv)
            self.assertIn(message, str(error), argv)

    def test_usageErrorUnderTwistd(self) -> None:
        """
        As twistd's subcommand, a bad option is one line on standard error
        and exit status 1, whatever twistd's own handling.
        """
        stderr = StringIO()
        self.patch(sys, "stderr", stderr)
        error = self.assertRaises(
            SystemExit, ServerOptions().parseOptions, ["greetd", "--framing", "x"]
        )
        self.assertEqual(error.code, 1)
        self.assertEqual(
            stderr.getvalue(),
            "twistd greetd: --framing must be one of auto, line, raw, not 'x' "
            "(see twistd greetd --help)\n",
        )

    def test_embeddedRaisesEvenWithAParent(self) -> None:
        """
        Embedded, a bad option is a L{usage.UsageError} whether or not the
        options have a parent: only twistd's subcommand exits.
        """
        options = Options()
        options.parent = ServerOptions()  # type: ignore[attr-defined]
        self.assertRaises(usage.UsageError, options.parseOptions, ["--framing", "x"])

    def test_reactorForWorkers(self) -> None:
        """
        Under twistd, the options name the reactor twistd's C{--reactor}
        installed, for a pool's workers to install too, and leave twistd's
        options alone; embedded, none.
        """
        options = TwistdOptions()
        options.parent = ServerOptions()  # type: ignore[attr-defined]
        options.parent["reactor"] = "poll"  # type: ignore[attr-defined]
        options.parseOptions(["--no-udp"])
        self.assertEqual(options["reactor"], "poll")
        self.assertEqual(options.parent["reactor"], "poll")  # type: ignore[attr-defined]
        self.assertIsNone(daemonOptions()["reactor"])

    def test_reactorUnderTwist(self) -> None:
        """
        twist keeps the reactor itself as C{reactor} and its name apart
        (C{default} unless chosen): the name is what workers are told.
        """
        self.assertEqual(
            chosenReactor({"reactor": object(), "reactorName": "poll"}), "poll"
        )
        self.assertIsNone(chosenReactor({"reactorName": "default"}))
        self.assertEqual(chosenReactor({"reactor": "epoll"}), "epoll")
        self.assertIsNone(chosenReactor({}))

    def test_logLevel(self) -> None:
        self.assertIs(daemonOptions()["log-level"], LogLevel.info)
        self.assertIs(
            daemonOptions("--log-level", "debug")["log-level"], LogLevel.debug
        )
        self.assertIs(
            daemonOptions("--log-level=critical")["log-level"], LogLevel.critical
        )

    def test_logFormat(self) -> None:
        """
        C{--log-format}: text by default, or json; the log it describes is
        C{options["log"]}, at C{--log-level}.
        """
        for argv, json in [((), False), (("--log-format", "text"), False)]:
            self.assertEqual(daemonOptions(*argv)["log-format"], "text")
            self.assertIs(daemonOptions(*argv)["log"].json, json)
        options = daemonOptions("--log-format=json", "--log-level", "warn")
        self.assertEqual(options["log-format"], "json")
        self.assertEqual(
            (options["log"].json, options["log"].level), (True, LogLevel.warn)
        )
        error = self.assertRaises(
            usage.UsageError, daemonOptions, "--log-format", "xml"
        )
        self.assertIn("--log-format must be one of text, json", str(error))

    def test_version(self) -> None:
        """
        C{twistd greetd --version} prints greetd's version and Twisted's.
        """
        stdout = StringIO()
        self.patch(sys, "stdout", stdout)
        error = self.assertRaises(
            SystemExit, ServerOptions().parseOptions, ["greetd", "--version"]
        )
        self.assertEqual(error.code, 0)
        self.assertEqual(
            stdout.getvalue(), f"greetd {__version__} (Twisted {copyright.version})\n"
        )

    def test_fullUsage(self) -> None:
        usageText = Options().getUsage()
        for option in ("--tcp", "--udp", "--framing", "--max-length", "--reply"):
            self.assertIn(option, usageText)
        for text in ("--log-level", "SIGHUP and SIGUSR1 reopen", "--version"):
            self.assertIn(text, " ".join(usageText.split()))


class TwistdLogTests(SynchronousTestCase):
    """
    Under twistd, greetd's log follows twistd's options, and twistd's
    C{--logger} naming greetd's JSON logger means C{--log-format json}.
    """

    def setUp(self) -> None:
        self.stdout = StringIO()
        self.patch(sys, "stdout", self.stdout)

    def test_followsTwistd(self) -> None:
        options = underTwistd("--logfile", "x.log", "greetd", "--log-level", "warn")
        log = options["log"]
        self.assertEqual(
            (log.where, log.json, log.level), ("x.log", False, LogLevel.warn)
        )
        self.assertTrue(log.twistd)

    def test_jsonLogger(self) -> None:
        """
        C{--logger greetd.ops.log.jsonLogger}, or greetd 0.1's
        C{greetd.log.jsonLogger} (deprecated), is C{--log-format json}:
        twistd is left no factory to call, and uses the application's
        observer, greetd's.
        """
        for name in ["greetd.ops.log.jsonLogger", "greetd.log.jsonLogger"]:
            config = ServerOptions()
            config.parseOptions(["--nodaemon", "--logger", name, "greetd"])
            self.assertIsNone(config["logger"])
            self.assertEqual(config.subOptions["log-format"], "json")
            self.assertEqual(config.subOptions["log"].where, "-")
            self.assertTrue(config.subOptions["log"].json)
        [deprecated] = self.flushWarnings()
        self.assertIn("greetd.log.jsonLogger is deprecated", deprecated["message"])
        self.assertEqual(deprecated["filename"], "twistd --logger")

    def test_jsonLoggerContradictsText(self) -> None:
        self.assertRaises(
            SystemExit,
            underTwistd,
            "--logger",
            "greetd.ops.log.jsonLogger",
            "greetd",
            "--log-format",
            "text",
        )
        config = underTwistd(
            "--logger", "greetd.ops.log.jsonLogger", "greetd", "--log-format", "json"
        )
        self.assertTrue(config["log"].json)

    def test_otherLoggerLeftAlone(self) -> None:
        """
        Any other C{--logger} is twistd's to call: greetd's log writes
        nothing of its own.
        """
        config = ServerOptions()
        config.parseOptions(
            ["--logger", "twisted.logger.textFileLogObserver", "greetd"]
        )
        self.assertIs(config["logger"], textFileLogObserver)
        self.assertIsNone(config.subOptions["log"].observer())

    def test_applicationObserver(self) -> None:
        """
        Given to a twistd application, greetd's services become its log
        observer, which twistd's logger uses; an application that has an
        observer of its own keeps it.
        """
        options = underTwistd("--nodaemon", "greetd", "--log-level", "warn")
        application = Application("greetd")
        makeService(options, MemoryUDPReactor()).setServiceParent(application)
        observer = application.getComponent(ILogObserver)
        self.assertIsNotNone(observer)
        observer(closeEvent(log_level=LogLevel.info))
        observer(closeEvent(log_level=LogLevel.error))
        options["log"].stream.drain()
        [line] = self.stdout.getvalue().splitlines()
        self.assertIn("#error] Connection from 192.0.2.7:40001 closed", line)
        for interface in [ILogObserver, LegacyILogObserver]:
            application = Application("mine")
            mine = object()
            application.setComponent(interface, mine)
            makeService(daemonOptions(), MemoryUDPReactor()).setServiceParent(
                application
            )
            self.assertIs(application.getComponent(interface), mine)
        self.assertIsNone(application.getComponent(ILogObserver))

    def test_daemonToStdout(self) -> None:
        """
        A daemon told to log to standard output gets no observer of
        greetd's: twistd's own logger refuses, in its own words.
        """
        options = underTwistd("--logfile", "-", "greetd")
        application = Application("greetd")
        makeService(options, MemoryUDPReactor()).setServiceParent(application)
        self.assertIsNone(application.getComponent(ILogObserver))


class MakeServiceTests(SynchronousTestCase):
    def test_bothServices(self) -> None:
        reactor = MemoryUDPReactor()
        options = daemonOptions(
            "--tcp", "tcp:1111:interface=127.0.0.1", "--tcp", "tcp:2222",
            "--udp", "udp:3333", "--max-length", "10", "--framing", "line",
            "--welcome", "Hi", "--reply", "Yo %s",
        )  # fmt: skip
        service = makeService(options, reactor)
        drain, *listeners = list(service)
        assert isinstance(drain, DrainService)
        self.assertEqual(drain.timeout, 5.0)
        self.assertEqual(
            [
                (child.kind, child.description)
                for child in listeners
                if isinstance(child, ListeningService)
            ],
            [
                ("TCP", "tcp:1111:interface=127.0.0.1"),
                ("TCP", "tcp:2222"),
                ("UDP", "udp:3333"),
            ],
        )
        service.privilegedStartService()
        factories = [server[1] for server in reactor.tcpServers]
        self.assertEqual([server[0] for server in reactor.tcpServers], [1111, 2222])
        self.assertIs(factories[0], factories[1])
        factory = factories[0]
        assert isinstance(factory, GreetingFactory)
        self.assertIs(drain.factory, factory)
        self.assertEqual(
            (factory.welcome, factory.framing, factory.maxLength, factory.clock),
            (b"Hi", "line", 10, reactor),
        )
        self.assertEqual(factory.template.format(b"x"), b"Yo x")
        [(port, protocol, interface, maxPacketSize)] = reactor.udpServers
        assert isinstance(protocol, ReplyProtocol)
        self.assertEqual((port, interface, maxPacketSize), (3333, "", 11))
        self.assertEqual(protocol.maxLength, 10)
        self.assertEqual(protocol.template.format(b"x"), b"Yo x")

    def test_limitsReachProtocols(self) -> None:
        reactor = MemoryUDPReactor()
        options = daemonOptions(
            "--max-connections", "5", "--max-per-ip", "2", "--rate-per-ip", "3",
            "--idle-timeout", "7.5", "--write-timeout", "2", "--udp-rate", "4",
            "--udp-global-rate", "0",
            "--udp-allow-low-ports", "--deny", "192.0.2.0/24", "--tcp", "tcp:1",
            "--health-check-from", "10.1.0.0/16",
            "--udp", "udp:2", "--shutdown-timeout", "1", "--ipv6-prefix", "56",
        )  # fmt: skip
        service = makeService(options, reactor)
        service.privilegedStartService()
        factory = reactor.tcpServers[0][1]
        protocol = reactor.udpServers[0][1]
        assert isinstance(factory, GreetingFactory)
        assert isinstance(protocol, ReplyProtocol)
        limiter = factory.admission.limiter
        self.assertEqual(
            (limiter.maxConnections, limiter.maxPerHost, limiter.perHostRate),
            (5, 2, 3),
        )
        self.assertEqual((factory.idle.timeout, factory.idle.writeTimeout), (7.5, 2.0))
        self.assertFalse(factory.admission.access.permits("192.0.2.1"))
        self.assertTrue(factory.admission.isHealthCheck("10.1.2.3"))
        self.assertFalse(factory.admission.isHealthCheck("10.2.0.1"))
        self.assertIs(protocol.access, factory.admission.access)
        self.assertEqual(protocol.perSource.rate, 4)
        self.assertEqual((limiter.ipv6Prefix, protocol.ipv6Prefix), (56, 56))
        self.assertIsNone(protocol.overall)
        self.assertTrue(protocol.allowLowPorts)
        self.assertEqual(next(iter(service)).timeout, 1.0)  # type: ignore[attr-defined]

    def test_proxyFrom(self) -> None:
        """
        C{--proxy-from} (repeatable) names the peers whose PROXY headers are
        believed, by TCP and UDP alike; loopback alone unless given.
        """
        for argv, trusted, untrusted in [
            ((), ["127.0.0.1", "127.9.9.9", "::1"], ["10.0.0.5", "::2"]),
            (
                ("--proxy-from", "10.0.0.0/8", "--proxy-from", "2001:db8::1"),
                ["10.0.0.5", "2001:db8::1"],
                ["127.0.0.1", "::1"],
            ),
            (
                ("--proxy-from", "::ffff:127.0.0.3/128"),
                ["127.0.0.3", "::ffff:127.0.0.3"],
                ["127.0.0.1", "::1"],
            ),
        ]:
            reactor = MemoryUDPReactor()
            options = daemonOptions("--tcp", "tcp:1", "--udp", "haproxy:udp:2", *argv)
            makeService(options, reactor).privilegedStartService()
            factory = reactor.tcpServers[0][1]
            protocol = reactor.udpServers[0][1]
            assert isinstance(factory, GreetingFactory)
            assert isinstance(protocol, ReplyProtocol)
            for policy in (factory.admission.proxyFrom, protocol.proxyFrom):
                for host in trusted:
                    self.assertTrue(policy.trusts(host), (argv, host))
                for host in untrusted:
                    self.assertFalse(policy.trusts(host), (argv, host))

    def test_eachUDPPortHasItsProtocol(self) -> None:
        reactor = MemoryUDPReactor()
        self.patch(signal, "signal", lambda signum, handler: None)
        service = makeService(
            daemonOptions("--udp", "udp:1", "--udp", "udp:2"), reactor
        )
        service.startService()
        self.addCleanup(service.stopService)
        first, second = (server[1] for server in reactor.udpServers)
        self.assertIsNot(first, second)

    def test_proxiedUDP(self) -> None:
        """
        C{haproxy:udp:} listens as C{udp:} does, with a protocol that reads
        a PROXY header from each datagram and a buffer with room for one.
        """
        reactor = MemoryUDPReactor()
        options = daemonOptions(
            "--udp", "haproxy:udp:1:interface=127.0.0.1", "--udp", "udp:2",
            "--max-length", "10",
        )  # fmt: skip
        makeService(options, reactor).startService()
        servers = [
            (port, interface, size) for port, _, interface, size in reactor.udpServers
        ]
        self.assertEqual(
            servers, [(1, "127.0.0.1", 11 + MAX_HEADER), (2, "", 11 + MAX_HEADER)]
        )
        proxied = [server[1] for server in reactor.udpServers]
        self.assertEqual([protocol.proxied for protocol in proxied], [True, False])

    def test_notifyServiceLast(self) -> None:
        """
        Under a service manager (C{NOTIFY_SOCKET}), a L{NotifyService}
        watching every listener is added last, so it starts after them and
        stops before them.
        """
        self.patch(os, "environ", {"NOTIFY_SOCKET": "@greetd-test-tap"})
        service = makeService(daemonOptions("--tcp", "tcp:1", "--udp", "udp:2"))
        children = list(service)
        notifier = children[-1]
        assert isinstance(notifier, NotifyService)
        self.addCleanup(notifier._sender._socket.close)  # type: ignore[attr-defined]
        listeners = [c for c in children if isinstance(c, ListeningService)]
        self.assertEqual(notifier.listeners, listeners)
        self.assertEqual([child.kind for child in notifier.listeners], ["TCP", "UDP"])
        self.assertIsNone(notifier.interval)

    def test_reopenService(self) -> None:
        """
        Under twistd, the service reopens greetd's log files on SIGUSR1 and
        SIGHUP.
        """
        options = underTwistd("--nodaemon", "greetd")
        service = makeService(options, MemoryUDPReactor())
        [reopen] = [c for c in service if isinstance(c, ReopenOnSignalService)]
        self.assertIs(reopen.logFiles, options["log"].files)
        self.assertIsNone(reopen._reload)

    def test_sighupReloadsPool(self) -> None:
        """
        With C{--workers}, the same service also reloads the pool on SIGHUP.
        """
        options = underTwistd(
            "--nodaemon", "greetd", "--workers", "2", "--tcp", "tcp:0"
        )
        service = makeService(options, MemoryUDPReactor())
        [reopen] = [c for c in service if isinstance(c, ReopenOnSignalService)]
        [pool] = [c for c in service if isinstance(c, WorkerPool)]
        self.assertEqual(reopen._reload, pool.reload)

    def test_accessLog(self) -> None:
        """
        The daemon's access log writes straight to the log's stream;
        C{--no-access-log} writes none.
        """
        reactor = MemoryUDPReactor()
        for argv, kind in [([], FastAccessLog), (["--no-access-log"], NoAccessLog)]:
            service = makeService(
                daemonOptions("--no-udp", "--tcp", "tcp:1", *argv), reactor
            )
            service.privilegedStartService()
            factory = reactor.tcpServers[-1][1]
            assert isinstance(factory, GreetingFactory)
            self.assertIsInstance(factory.accessLog, kind)
        self.assertFalse(NoAccessLog().wantsOpened())

    def test_noSignalHandlersEmbedded(self) -> None:
        """
        Embedded (L{greetd.Options}), the service installs no signal
        handlers: those are twistd's business.
        """
        service = makeService(daemonOptions(), MemoryUDPReactor())
        self.assertFalse(any(isinstance(c, ReopenOnSignalService) for c in service))

    def test_noNotifyServiceByDefault(self) -> None:
        self.patch(os, "environ", {})
        service = makeService(daemonOptions(), MemoryUDPReactor())
        self.assertFalse(any(isinstance(c, NotifyService) for c in service))


class StoppingReactor(MemoryUDPReactor):
    """
    A reactor that records how often it was stopped.
    """

    stops = 0

    def stop(self) -> None:
        self.stops += 1


class ExitTests(SynchronousTestCase):
    """
    A listener that fails ends twistd greetd with status 1: as it starts,
    by L{StartupFailed}; later, by stopping the reactor, with its
    L{ExitStatus} failed.
    """

    def setUp(self) -> None:
        self.hooks: list[Any] = []
        self.patch(atexit, "register", lambda hook, *args: self.hooks.append(hook))
        self.exits: list[int] = []
        captureLogs(self, ListeningService)

    def greetdServices(
        self, listen: Any, exitStatus: ExitStatus | None
    ) -> tuple[GreetdServices, StoppingReactor]:
        reactor = StoppingReactor()
        services = MultiService()
        listening = ListeningService("TCP", "pending:1", listen)
        listening.setServiceParent(services)  # type: ignore[no-untyped-call]
        return GreetdServices(LogOutput(), services, reactor, exitStatus), reactor

    def test_exitHookLast(self) -> None:
        """
        twistd greetd's exit hook is registered when a listener fails,
        after the log's drain and any other, so that it runs first
        (C{atexit} runs the last registered first) and runs them all.
        """
        self.patch(atexit, "unregister", lambda hook: None)
        log = self.mktemp()
        options = underTwistd("--nodaemon", "--logfile", log, "greetd", "--no-udp")
        application = Application("greetd")
        makeService(options, MemoryUDPReactor()).setServiceParent(application)
        exitStatus = options["exit"]
        self.assertIsInstance(exitStatus, ExitStatus)
        [writer] = options["log"].files.writers
        self.assertIn(writer.drain, self.hooks)
        self.assertNotIn(exitStatus._atExit, self.hooks)
        exitStatus.fail(1)
        self.assertEqual(self.hooks[-1], exitStatus._atExit)

    def test_lateFailure(self) -> None:
        """
        A listener that fails once started stops the reactor and sets the
        exit status to 1.
        """
        listening: Deferred[Any] = Deferred()
        exitStatus = ExitStatus(self.exits.append)
        services, reactor = self.greetdServices(lambda: listening, exitStatus)
        services.privilegedStartService()
        services.startService()
        self.assertEqual((reactor.stops, exitStatus.status), (0, 0))
        listening.errback(CannotListenError("", 1, OSError(98, "in use")))
        self.assertEqual((reactor.stops, exitStatus.status), (1, 1))
        self.assertEqual(self.exits, [])

    def test_lateFailureEmbedded(self) -> None:
        """
        Embedded (a C{.tac}), greetd's services stop the reactor all the
        same; the process exits as twistd does.
        """
        listening: Deferred[Any] = Deferred()
        services, reactor = self.greetdServices(lambda: listening, None)
        services.startService()
        listening.errback(CannotListenError("", 1, OSError(98, "in use")))
        self.assertEqual(reactor.stops, 1)

    def test_failureAsTheyStart(self) -> None:
        """
        A listener that fails as the services start raises L{StartupFailed},
        in the privileged start (twistd) or the plain one (embedded); the
        reactor is not stopped, it has not run.
        """
        failing = partial(fail, CannotListenError("", 1, OSError(98, "in use")))
        for start in ("privilegedStartService", "startService"):
            exitStatus = ExitStatus(self.exits.append)
            services, reactor = self.greetdServices(failing, exitStatus)
            error = self.assertRaises(StartupFailed, getattr(services, start))
            self.assertEqual(error.code, 1)
            self.assertEqual(str(error), "cannot listen for TCP on pending:1")
            self.assertEqual((reactor.stops, exitStatus.status), (0, 0))
