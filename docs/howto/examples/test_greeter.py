"""
Tests for the greeter application, in memory: no socket, no reactor running.
"""

from __future__ import annotations

from greeter import TEMPLATE, makeFactory
from twisted.internet.endpoints import connectProtocol
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from greetd import GreetingClientProtocol, greetOverTCP
from greetd.inmemory import InMemoryGreetd


class GreeterTests(TestCase):
    def test_greets(self) -> None:
        """
        A client gets the application's banner and its reply to each name.
        """
        greetd = InMemoryGreetd(makeFactory())
        greeting = greetOverTCP(
            greetd.endpoint(), [b"Ann", b"Bob"], template=TEMPLATE, clock=greetd.clock
        )
        greetd.flush()
        result = self.successResultOf(greeting)
        self.assertEqual(result.banner, b"Greeter")
        self.assertEqual(result.replies, [b"Good morning, Ann.", b"Good morning, Bob."])

    def test_idleClientCut(self) -> None:
        """
        A client that says nothing is cut after the idle timeout: time moves
        only when the test moves it.
        """
        clock = Clock()
        greetd = InMemoryGreetd(makeFactory(clock), clock=clock)
        client = GreetingClientProtocol(TEMPLATE, timeout=600, clock=clock)
        connectProtocol(greetd.endpoint(), client)
        greetd.flush()
        self.assertEqual(self.successResultOf(client.banner), b"Greeter")
        greetd.advance(299)
        self.assertEqual(len(greetd.factory.connections), 1)
        greetd.advance(1)
        self.assertEqual(greetd.factory.connections, set())
        self.assertEqual(greetd.factory.errors["idle-timeout"], 1)
