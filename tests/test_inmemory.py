"""
Tests for L{greetd.inmemory}: clients of both services, connected in memory.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from greetd import (
    GreetingClientProtocol,
    GreetingFactory,
    NoReply,
    ReplyClientProtocol,
    greetOverTCP,
    greetOverUDP,
)
from greetd.inmemory import CLIENT_HOST, MAX_ROUNDS, SERVER, InMemoryGreetd
from greetd.protocols.datagram import ReplyProtocol


class TCPTests(TestCase):
    """
    TCP clients reach the factory through the in-memory endpoint.  (A trial
    L{TestCase}: it fails a test that leaves anything on the global reactor.)
    """

    def test_greetOverTCP(self) -> None:
        greetd = InMemoryGreetd()
        greeting = greetOverTCP(greetd.endpoint(), [b"Ann", b"Bob"], clock=greetd.clock)
        self.assertNoResult(greeting)
        greetd.flush()
        result = self.successResultOf(greeting)
        self.assertEqual(
            (result.banner, result.replies),
            (b"Welcome", [b"Hello, Ann!", b"Hello, Bob!"]),
        )
        self.assertEqual(greetd.factory.connectionsTotal, 1)
        self.assertEqual(greetd.factory.connections, set())

    def test_ownFactoryAndProtocol(self) -> None:
        """
        A factory of one's own, on the given clock, and a client protocol
        driven name by name.
        """
        clock = Clock()
        factory = GreetingFactory(welcome=b"Hi", framing="line", clock=clock)
        greetd = InMemoryGreetd(factory, clock=clock)
        client = GreetingClientProtocol(clock=clock)
        greetd.endpoint().connect(_Once(client))
        greetd.flush()
        self.assertEqual(self.successResultOf(client.banner), b"Hi")
        reply = client.greet(b"Ann")
        greetd.flush()
        self.assertEqual(self.successResultOf(reply), b"Hello, Ann!")
        self.assertTrue(client.lineMode)

    def test_peer(self) -> None:
        """
        Each connection comes from a new port of L{CLIENT_HOST}, or from the
        address given.
        """
        greetd = InMemoryGreetd()
        peers = []
        for endpoint in (greetd.endpoint(), greetd.endpoint()):
            endpoint.connect(_Once(GreetingClientProtocol(clock=greetd.clock)))
        given = IPv4Address("TCP", "198.51.100.7", 5555)
        greetd.endpoint(given).connect(
            _Once(GreetingClientProtocol(clock=greetd.clock))
        )
        for pump in greetd.pumps:
            peers.append(pump.server.transport.getPeer())
        self.assertEqual([peer.host for peer in peers[:2]], [CLIENT_HOST] * 2)
        self.assertNotEqual(peers[0].port, peers[1].port)
        self.assertEqual(peers[2], given)

    def test_idleTimeout(self) -> None:
        """
        Time moves only by L{InMemoryGreetd.advance}: a silent client is cut
        at the factory's idle timeout, the client's own timeout not passed.
        """
        clock = Clock()
        greetd = InMemoryGreetd(
            GreetingFactory(clock=clock, idleTimeout=10), clock=clock
        )
        client = GreetingClientProtocol(timeout=60, clock=clock)
        greetd.endpoint().connect(_Once(client))
        greetd.flush()
        self.successResultOf(client.banner)
        greetd.advance(9)
        self.assertEqual(len(greetd.factory.connections), 1)
        greetd.advance(1)
        self.assertEqual(greetd.factory.connections, set())
        self.assertEqual(greetd.factory.errors["idle-timeout"], 1)


class UDPTests(TestCase):
    def test_greetOverUDP(self) -> None:
        greetd = InMemoryGreetd()
        replies = greetOverUDP(greetd.reactor, *SERVER, [b"Ann", b"Bob"])
        greetd.flush()
        self.assertEqual(
            self.successResultOf(replies), [b"Hello, Ann!", b"Hello, Bob!"]
        )
        self.assertEqual(greetd.replies.replies, 2)
        self.assertEqual(list(greetd.ports), [SERVER])

    def test_resend(self) -> None:
        """
        A datagram the service drops (over its rate) is resent from a new
        port when the clock reaches the client's first resend (a third of
        its timeout, with one retry: see L{greetd.client.udp.sendTimes}).
        """
        clock = Clock()
        greetd = InMemoryGreetd(replies=ReplyProtocol(clock=clock, rate=1), clock=clock)
        client = ReplyClientProtocol(
            *SERVER,
            timeout=3,
            retries=1,
            clock=greetd.reactor,
            listen=lambda resend: greetd.reactor.listenUDP(0, resend),
        )
        greetd.reactor.listenUDP(0, client)
        first = client.greet(b"Ann")
        greetd.flush()
        self.successResultOf(first)
        second = client.greet(b"Bob")
        greetd.flush()
        self.assertNoResult(second)
        self.assertEqual(greetd.replies.dropped["rate"], 1)
        greetd.advance(1)
        self.assertEqual(self.successResultOf(second), b"Hello, Bob!")

    def test_noServer(self) -> None:
        """
        A datagram to an address nothing listens on is lost.
        """
        greetd = InMemoryGreetd()
        replies = greetOverUDP(greetd.reactor, "127.0.0.1", 1, [b"Ann"], retries=0)
        greetd.flush()
        greetd.advance(5)
        self.failureResultOf(replies, NoReply)


class FlushTests(TestCase):
    def test_bounded(self) -> None:
        """
        Two peers that answer each other forever stop L{InMemoryGreetd.flush}
        after L{MAX_ROUNDS} rounds, with an error.
        """
        greetd = InMemoryGreetd()
        a, b = _Echo(), _Echo()
        greetd.reactor.listenUDP(1, a)
        greetd.reactor.listenUDP(2, b)
        a.transport.write(b"x", (CLIENT_HOST, 2))
        self.assertRaises(RuntimeError, greetd.flush)
        self.assertGreaterEqual(a.received + b.received, MAX_ROUNDS)


class _Echo(DatagramProtocol):
    received = 0

    def datagramReceived(self, datagram: bytes, addr: object) -> None:
        self.received += 1
        self.transport.write(datagram, addr)


class _Once:
    """
    A client factory handing out one given protocol.
    """

    def __init__(self, protocol: object) -> None:
        self.protocol = protocol

    def buildProtocol(self, addr: object) -> object:
        return self.protocol
