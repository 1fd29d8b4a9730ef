"""
Tests for L{greetd.daemon.plan}, the listener plan and the endpoint grammar.
"""

from __future__ import annotations

import socket

from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor, MemoryReactorClock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from greetd.daemon.endpoints import (
    MAX_DATAGRAM,
    IDatagramServerEndpoint,
    ProxiedServerEndpoint,
    UDPServerEndpoint,
)
from greetd.daemon.plan import (
    METRICS,
    SHARED_BACKLOG,
    TCP,
    UDP,
    Address,
    Inherited,
    Listener,
    PlanError,
    datagramListener,
    datagramServerFromString,
    makePlan,
    streamListener,
    streamServerFromString,
)
from greetd.protocols.greeting import GreetingFactory
from greetd.protocols.proxy import ProxyHeaderFactory
from tests.certificates import temporaryCredentials
from tests.helpers import MemoryUDPReactor, daemonOptions


class DatagramServerFromStringTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryUDPReactor()

    def parse(self, description: str) -> UDPServerEndpoint:
        endpoint = datagramServerFromString(self.reactor, description)
        assert isinstance(endpoint, UDPServerEndpoint)
        return endpoint

    def test_portOnly(self) -> None:
        endpoint = self.parse("udp:9999")
        self.assertEqual((endpoint.port, endpoint.interface), (9999, ""))
        self.assertEqual(endpoint.maxPacketSize, MAX_DATAGRAM)

    def test_ipv6Interface(self) -> None:
        endpoint = self.parse(r"udp:0:interface=\:\:1")
        self.assertEqual((endpoint.port, endpoint.interface), (0, "::1"))

    def test_keywords(self) -> None:
        endpoint = self.parse("udp:interface=127.0.0.2:port=53")
        self.assertEqual((endpoint.port, endpoint.interface), (53, "127.0.0.2"))

    def test_proxied(self) -> None:
        """
        C{haproxy:} in front is for the protocol: the endpoint is the same.
        """
        endpoint = self.parse("haproxy:udp:53:interface=127.0.0.2")
        self.assertEqual((endpoint.port, endpoint.interface), (53, "127.0.0.2"))

    def test_errors(self) -> None:
        for description, message in [
            ("udp", "port number is required"),
            ("udp:x", "'x' is not a number"),
            ("udp:70000", "out of range"),
            ("udp:1:interface=localhost", "not an IPv4 or IPv6 address"),
            ("udp:1:bogus=1", "unexpected keyword argument 'bogus'"),
            ("udp:1:2:3", "too many positional arguments"),
            ("tcp:1", "unknown datagram endpoint type 'tcp'"),
        ]:
            error = self.assertRaises(
                ValueError, datagramServerFromString, self.reactor, description
            )
            self.assertIn(message, str(error), description)

    def test_listen(self) -> None:
        endpoint = datagramServerFromString(
            self.reactor, "udp:9999:interface=127.0.0.1", maxPacketSize=1025
        )
        self.assertTrue(verifyObject(IDatagramServerEndpoint, endpoint))
        protocol = DatagramProtocol()
        port = self.successResultOf(endpoint.listen(protocol))
        self.assertEqual(self.reactor.udpServers, [(9999, protocol, "127.0.0.1", 1025)])
        self.assertEqual(port.getHost().port, 9999)


class StreamServerFromStringTests(SynchronousTestCase):
    def test_haproxyPrefix(self) -> None:
        reactor = MemoryReactor()
        endpoint = streamServerFromString(
            reactor, "haproxy:tcp:9999:interface=127.0.0.1"
        )
        assert isinstance(endpoint, ProxiedServerEndpoint)
        self.assertIsInstance(endpoint.endpoint, TCP4ServerEndpoint)
        factory = GreetingFactory(clock=Clock())
        self.successResultOf(endpoint.listen(factory))
        [(port, wrapper, _, interface)] = reactor.tcpServers
        self.assertEqual((port, interface), (9999, "127.0.0.1"))
        assert isinstance(wrapper, ProxyHeaderFactory)
        self.assertIs(wrapper.wrappedFactory, factory)

    def test_otherEndpoints(self) -> None:
        endpoint = streamServerFromString(MemoryReactor(), "tcp:9999")
        self.assertIsInstance(endpoint, TCP4ServerEndpoint)


class PlanCheckTests(SynchronousTestCase):
    """
    Every listener is checked when the options are, in the user's words,
    before anything is bound or logged as starting.
    """

    def assertPlanError(self, message: str, **descriptions: object) -> None:
        error = self.assertRaises(PlanError, makePlan, MemoryReactor(), **descriptions)
        self.assertEqual(str(error), message)

    def test_ports(self) -> None:
        self.assertPlanError(
            "--tcp 'tcp:99999': port 99999 is out of range 0-65535", tcp=["tcp:99999"]
        )
        self.assertPlanError(
            "--tcp 'tcp:notaport': port 'notaport' is not a number",
            tcp=["tcp:notaport"],
        )
        self.assertPlanError(
            "--udp 'udp:65536': port 65536 is out of range 0-65535", udp=["udp:65536"]
        )
        self.assertPlanError(
            "--metrics 'tcp:-1': port -1 is out of range 0-65535", metrics="tcp:-1"
        )
        self.assertPlanError(
            "--tcp 'tcp:1:backlog=x': backlog 'x' is not a number",
            tcp=["tcp:1:backlog=x"],
        )
        self.assertPlanError(
            "--tcp 'tcp6': a port number is required: tcp6:PORT", tcp=["tcp6"]
        )

    def test_unixDirectory(self) -> None:
        self.assertPlanError(
            "--tcp 'unix:/nonexistent/dir/sock': directory '/nonexistent/dir' "
            "does not exist",
            tcp=["unix:/nonexistent/dir/sock"],
        )

    def test_badArguments(self) -> None:
        self.assertPlanError(
            "--tcp 'haproxy:tcp:1:colour=red': bad arguments for tcp: "
            "got an unexpected keyword argument 'colour'",
            tcp=["haproxy:tcp:1:colour=red"],
        )
        self.assertPlanError(
            "--metrics 'haproxy:tcp:1': the metrics endpoint takes no PROXY header",
            metrics="haproxy:tcp:1",
        )

    def test_records(self) -> None:
        plan = makePlan(
            MemoryReactor(),
            tcp=["tcp:1", "haproxy:tcp6:2:interface=\\:\\:1"],
            udp=["udp:3:interface=127.0.0.1"],
            metrics="tcp:4",
        )
        first, second = plan.tcp
        self.assertEqual((first.kind, first.position, first.proxied), (TCP, 0, False))
        self.assertEqual(first.address, Address("", 1, SHARED_BACKLOG))
        self.assertEqual((second.position, second.proxied), (1, True))
        self.assertEqual(second.twistedDescription, "tcp6:2:interface=\\:\\:1")
        self.assertEqual(second.address, Address("::1", 2, SHARED_BACKLOG))
        [udp] = plan.udp
        self.assertEqual((udp.kind, udp.address), (UDP, Address("127.0.0.1", 3)))
        assert plan.metrics is not None
        self.assertEqual(plan.metrics.kind, METRICS)
        self.assertIsNone(plan.notShareable())
        unix = makePlan(MemoryReactor(), tcp=["unix:/tmp/greetd.sock"])
        self.assertEqual(unix.notShareable(), unix.tcp[0])


class ShareableTests(SynchronousTestCase):
    def address(self, description: str) -> Address | None:
        return streamListener(description, MemoryReactorClock()).address

    def test_tcp(self) -> None:
        self.assertEqual(self.address("tcp:99"), Address("", 99, 4096))
        self.assertEqual(
            self.address("tcp:99:interface=127.0.0.1:backlog=7"),
            Address("127.0.0.1", 99, 7),
        )
        self.assertEqual(self.address("tcp6:99"), Address("::", 99, 4096))
        self.assertEqual(
            self.address("haproxy:tcp6:port=99:interface=\\:\\:1"),
            Address("::1", 99, 4096),
        )

    def test_ssl(self) -> None:
        """
        The parent binds an C{ssl:} socket as a C{tcp:} one, from its port,
        interface and backlog alone; the workers serve its TLS.
        """
        _, key, certificate = temporaryCredentials(self)
        credentials = f"privateKey={key}:certKey={certificate}"
        self.assertEqual(
            self.address(f"haproxy:ssl:99:{credentials}:interface=127.0.0.1"),
            Address("127.0.0.1", 99, 4096),
        )
        self.assertEqual(
            self.address(f"ssl:port=99:backlog=7:{credentials}"), Address("", 99, 7)
        )

    def test_unsupported(self) -> None:
        for listener in (
            streamListener("unix:/tmp/x", MemoryReactorClock()),
            Listener(TCP, "tls:/etc/certs", tls=True, twistedDescription="tls:/"),
            Listener(TCP, "systemd:domain=INET:index=0"),
        ):
            self.assertFalse(listener.shareable)
            self.assertIn("not supported with --workers", listener.notShareable)

    def test_udp(self) -> None:
        self.assertEqual(
            datagramListener("udp:99:interface=127.0.0.1").address,
            Address("127.0.0.1", 99),
        )
        self.assertEqual(
            datagramListener("haproxy:udp:99:interface=127.0.0.1").address,
            Address("127.0.0.1", 99),
        )

    def test_unsupportedDatagram(self) -> None:
        """
        Only C{udp:} is bound by the parent: an inherited (C{systemd:})
        datagram socket is refused.
        """
        listener = Listener(
            UDP,
            "systemd:domain=INET:index=1",
            inherited=Inherited(3, socket.AF_INET),
        )
        self.assertIn("not supported with --workers", listener.notShareable)

    def test_usageError(self) -> None:
        error = self.assertRaises(
            usage.UsageError,
            daemonOptions,
            "--workers",
            "2",
            "--tcp",
            "unix:/tmp/greetd",
        )
        self.assertIn("not supported with --workers", str(error))
        daemonOptions("--workers", "1", "--tcp", "unix:/tmp/greetd")
        self.assertRaises(usage.UsageError, daemonOptions, "--workers", "0")
