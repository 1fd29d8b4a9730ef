"""
Tests for L{greetd.daemon.reactor}: Twisted's own reactor tests run against
L{GreetdReactor}, then what it changes (dispatch without the log context)
and how it is installed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from typing import Any

from twisted.internet import unix
from twisted.internet.abstract import FileDescriptor
from twisted.internet.error import ConnectionDone, UnsupportedAddressFamily
from twisted.internet.protocol import DatagramProtocol, Factory
from twisted.internet.test.test_core import SystemEventTestsBuilder
from twisted.internet.test.test_fdset import ReactorFDSetTestsBuilder
from twisted.internet.test.test_process import ProcessTestsBuilder
from twisted.internet.test.test_tcp import (
    AbortConnectionTests,
    TCP4ClientTestsBuilder,
    TCPConnectionTestsBuilder,
    TCPPortTestsBuilder,
)
from twisted.internet.test.test_threads import ThreadTestsBuilder
from twisted.internet.test.test_time import TimeTestsBuilder
from twisted.logger import formatEvent
from twisted.python import context
from twisted.python.log import ILogContext
from twisted.trial.unittest import SynchronousTestCase

from greetd.daemon.reactor import GreetdReactor, installUnlessChosen
from greetd.protocols.datagramport import DatagramPort
from greetd.protocols.streamport import StreamPort
from tests.helpers import captureLogs

try:
    from twisted.internet.test.test_udp import UDPServerTestsBuilder
except ImportError as error:
    # Twisted's UDP tests import socket.if_nameindex, which PyPy 3.9 lacks.
    _noUDPSuite: str | None = f"Twisted's UDP reactor tests do not load: {error}"
    _udpSuite: tuple[type, ...] = ()
else:
    _noUDPSuite = None
    _udpSuite = (UDPServerTestsBuilder,)

#: Twisted's reactor conformance suites that exercise what greetd uses: the
#: event loop, descriptors, timers, threads, TCP, UDP and child processes
#: (a pool's workers).
_CONFORMANCE = (
    SystemEventTestsBuilder,
    ReactorFDSetTestsBuilder,
    TimeTestsBuilder,
    ThreadTestsBuilder,
    TCPPortTestsBuilder,
    TCP4ClientTestsBuilder,
    TCPConnectionTestsBuilder,
    AbortConnectionTests,
    *_udpSuite,
    ProcessTestsBuilder,
)

#: The tests of those suites that do not hold for L{GreetdReactor}, and why.
_DIFFERENCES = {
    "test_logPrefix": "no log context is pushed around an event: the one "
    "difference GreetdReactor exists for",
    "test_lostFileDescriptor": "epoll cannot see a descriptor closed under it; "
    "Twisted skips this test for its EPollReactor by class name",
    "test_changeUID": "runs this interpreter as user 1, which fails for "
    "Twisted's EPollReactor too where that user cannot read it (under /root)",
}


def _mktemp(self: SynchronousTestCase) -> str:
    """
    A path to create, in a directory of its own outside the source tree
    (trial's C{mktemp} is relative to the working directory, which under
    pytest is the checkout).
    """
    where = tempfile.mkdtemp(prefix="greetd-reactor-test-")
    self.addCleanup(shutil.rmtree, where, True)
    return os.path.join(where, "temp")


def _skipped(reason: str) -> Any:
    def test(self: object) -> None:
        pass

    test.skip = reason  # type: ignore[attr-defined]
    return test


for _builder in _CONFORMANCE:
    _namespace: dict[str, Any] = {
        "_reactors": ["greetd.daemon.reactor.GreetdReactor"],
        "__module__": __name__,
        "mktemp": _mktemp,
    }
    for _name, _reason in _DIFFERENCES.items():
        if hasattr(_builder, _name):
            _namespace[_name] = _skipped(_reason)
    _onGreetd = type("Greetd" + _builder.__name__, (_builder,), _namespace)
    globals().update(_onGreetd.makeTestCaseClasses())
del _builder, _onGreetd, _namespace, _name, _reason


class UDPSuiteTests(SynchronousTestCase):
    def test_loaded(self) -> None:
        """
        Twisted's UDP reactor tests run against L{GreetdReactor} above.
        """
        self.assertEqual(len(_udpSuite), 1)

    if _noUDPSuite is not None:
        test_loaded.skip = _noUDPSuite  # type: ignore[attr-defined]


class Readable(FileDescriptor):
    """
    One end of a socket pair with a byte waiting, recording its reads.
    """

    def __init__(self, case: SynchronousTestCase, reactor: GreetdReactor) -> None:
        super().__init__(reactor)
        self.socket, other = socket.socketpair()
        other.send(b"x")
        case.addCleanup(self.socket.close)
        case.addCleanup(other.close)
        self.reads: list[Any] = []
        self.read: Any = lambda: None

    def fileno(self) -> int:
        return self.socket.fileno()

    def doRead(self) -> Any:
        self.reads.append(context.get(ILogContext))
        return self.read()


class DispatchTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = GreetdReactor()
        self.addCleanup(self.reactor._poller.close)
        self.addCleanup(self.reactor.waker.connectionLost, None)

    def readables(self, count: int) -> list[Readable]:
        readables = [Readable(self, self.reactor) for _ in range(count)]
        for readable in readables:
            self.reactor.addReader(readable)
        return readables

    def test_noLogContext(self) -> None:
        """
        A read runs without a log context pushed for it: a legacy log
        event made then names the default system.
        """
        [readable] = self.readables(1)
        self.reactor.doIteration(0)
        self.assertEqual(readable.reads, [{"system": "-"}])

    def test_removedEarlierInThePoll(self) -> None:
        """
        A descriptor that an earlier event of the same poll removed is not
        dispatched to.
        """
        first, second = self.readables(2)

        def removeTheOther() -> None:
            other = second if first.reads else first
            self.reactor.removeReader(other)

        first.read = second.read = removeTheOther
        self.reactor.doIteration(0)
        self.assertEqual(len(first.reads) + len(second.reads), 1)

    def test_escapingErrorLoggedLoopGoesOn(self) -> None:
        """
        An exception escaping an event's handling (here from
        C{connectionLost}, after C{doRead} said the connection is done) is
        logged, and the other ready descriptors are still served.
        """
        first, second = self.readables(2)

        def broken(reason: object) -> None:
            raise RuntimeError("broken connectionLost")

        for readable in (first, second):
            readable.read = lambda: ConnectionDone()
            readable.connectionLost = broken  # type: ignore[method-assign]
        events = captureLogs(self, GreetdReactor)
        self.reactor.doIteration(0)
        self.assertEqual((len(first.reads), len(second.reads)), (1, 1))
        failures = [event for event in events if "log_failure" in event]
        self.assertEqual(len(failures), 2)
        self.assertIn("Unhandled error handling an event", formatEvent(failures[0]))
        self.assertTrue(failures[0]["log_failure"].check(RuntimeError))

    def test_keyboardInterruptStops(self) -> None:
        """
        C{KeyboardInterrupt} escaping an event's handling is not logged
        away: it ends the loop, as Twisted's dispatch lets it.
        """
        [readable] = self.readables(1)

        def interrupted(reason: object) -> None:
            raise KeyboardInterrupt()

        readable.read = lambda: ConnectionDone()
        readable.connectionLost = interrupted  # type: ignore[method-assign]
        self.assertRaises(KeyboardInterrupt, self.reactor.doIteration, 0)


class PortTests(SynchronousTestCase):
    """
    L{GreetdReactor}'s TCP ports are L{StreamPort}s, its UDP ports
    L{DatagramPort}s, bound and adopted.
    """

    def setUp(self) -> None:
        self.reactor = GreetdReactor()
        self.addCleanup(self.reactor._poller.close)
        self.addCleanup(self.reactor.waker.connectionLost, None)

    def test_listenTCP(self) -> None:
        port = self.reactor.listenTCP(0, Factory(), 10, "127.0.0.1")
        self.addCleanup(port.stopListening)
        self.assertIsInstance(port, StreamPort)
        self.assertEqual(port.getHost().host, "127.0.0.1")

    def test_adoptStreamPort(self) -> None:
        bound = socket.socket()
        self.addCleanup(bound.close)
        bound.bind(("127.0.0.1", 0))
        bound.listen(1)
        bound.setblocking(False)
        port = self.reactor.adoptStreamPort(bound.fileno(), socket.AF_INET, Factory())
        self.addCleanup(port.stopListening)
        self.assertIsInstance(port, StreamPort)
        self.assertEqual(port.getHost().port, bound.getsockname()[1])

    def test_adoptUNIXStreamPort(self) -> None:
        """
        An inherited UNIX socket is adopted as Twisted adopts it.
        """
        bound = socket.socket(socket.AF_UNIX)
        self.addCleanup(bound.close)
        bound.bind(_mktemp(self))
        bound.listen(1)
        bound.setblocking(False)
        port = self.reactor.adoptStreamPort(bound.fileno(), socket.AF_UNIX, Factory())
        self.addCleanup(port.stopListening)
        self.assertIsInstance(port, unix.Port)

    def test_listenUDP(self) -> None:
        port = self.reactor.listenUDP(0, DatagramProtocol(), "127.0.0.1", 100)
        self.addCleanup(port.stopListening)
        self.assertIsInstance(port, DatagramPort)
        self.assertEqual(port.maxPacketSize, 100)
        self.assertEqual(port.getHost().host, "127.0.0.1")

    def test_adoptDatagramPort(self) -> None:
        bound = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(bound.close)
        bound.bind(("127.0.0.1", 0))
        bound.setblocking(False)
        port = self.reactor.adoptDatagramPort(
            bound.fileno(), socket.AF_INET, DatagramProtocol(), 100
        )
        self.addCleanup(port.stopListening)
        self.assertIsInstance(port, DatagramPort)
        self.assertEqual(port.getHost().port, bound.getsockname()[1])

    def test_adoptUnsupportedFamily(self) -> None:
        self.assertRaises(
            UnsupportedAddressFamily,
            self.reactor.adoptDatagramPort,
            0,
            socket.AF_UNIX,
            DatagramProtocol(),
        )


class InstallTests(SynchronousTestCase):
    def test_notOverAnInstalledReactor(self) -> None:
        """
        With a reactor installed already (this test runner's), nothing is
        installed.
        """
        from twisted.internet import reactor

        self.assertFalse(installUnlessChosen())
        from twisted.internet import reactor as after

        self.assertIs(after, reactor)

    def python(self, code: str) -> str:
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()

    def test_installedWhenNoneChosen(self) -> None:
        code = (
            "from greetd.daemon.reactor import installUnlessChosen\n"
            "print(installUnlessChosen())\n"
            "from twisted.internet import reactor\n"
            "print(type(reactor).__name__)\n"
        )
        self.assertEqual(self.python(code).split(), ["True", "GreetdReactor"])

    def test_workerInstallsTheNamedReactor(self) -> None:
        """
        A pool's worker installs the reactor its parent names, while its
        options are parsed and before the greetd options import one.
        """
        code = (
            "from greetd.daemon.worker import WorkerOptions\n"
            "options = WorkerOptions()\n"
            "options.parseOptions(['--slot=1', '--inherited=tcp=3',"
            " '--reactor={}', '--', '--no-udp'])\n"
            "from twisted.internet import reactor\n"
            "print(type(reactor).__name__)\n"
        )
        self.assertEqual(self.python(code.format("greetd")), "GreetdReactor")
        self.assertEqual(self.python(code.format("poll")), "PollReactor")
