"""
Line clients, raw bytes and framings against the real daemon, driven by a
Twisted client in the test's own reactor (pytest-twisted).
"""

from __future__ import annotations

from typing import Any, Generator

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from tests.integration.conftest import TIMEOUT


class Recorder(Protocol):
    """
    Keeps what the daemon sends; L{receive} waits for an exact total.
    """

    def __init__(self) -> None:
        self.received = b""
        self.lost: Deferred[None] = Deferred()
        self._waiting: tuple[int, Deferred[bytes]] | None = None

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        self._check()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lost.callback(None)

    def receive(self, count: int) -> Deferred[bytes]:
        """
        Fire with everything received once at least C{count} bytes are in.
        """
        waiting: Deferred[bytes] = Deferred()
        self._waiting = (count, waiting)
        self._check()
        return waiting.addTimeout(TIMEOUT, reactor)

    def _check(self) -> None:
        if self._waiting and len(self.received) >= self._waiting[0]:
            _, waiting = self._waiting
            self._waiting = None
            waiting.callback(self.received)


def connect(port: int) -> Deferred[Recorder]:
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=TIMEOUT)
    return connectProtocol(endpoint, Recorder())


def pause() -> Deferred[None]:
    """
    Let one write reach the daemon before the next, so they arrive apart.
    """
    return deferLater(reactor, 0.05, lambda: None)


@pytest_twisted.inlineCallbacks
def test_pipelinedLines(spawnGreetd: Any) -> Generator[Deferred[Any], Any, None]:
    """
    Two lines in one write and one line in two writes get three replies,
    each with its own line ending; C{exit} then closes the connection.
    """
    daemon = spawnGreetd()
    client = yield connect(daemon.tcp[0][1])
    yield client.receive(len(b"Welcome"))
    client.transport.write(b"Michael\r\nTracy\r\n")
    yield pause()
    client.transport.write(b"Sar")
    yield pause()
    client.transport.write(b"ah\n")
    expected = b"WelcomeHello, Michael!\r\nHello, Tracy!\r\nHello, Sarah!\n"
    received = yield client.receive(len(expected))
    assert received == expected
    client.transport.write(b"exit\n")
    yield client.lost.addTimeout(TIMEOUT, reactor)
    assert client.received == expected


@pytest_twisted.inlineCallbacks
def test_rawBytes(spawnGreetd: Any) -> Generator[Deferred[Any], Any, None]:
    daemon = spawnGreetd()
    client = yield connect(daemon.tcp[0][1])
    yield client.receive(7)
    client.transport.write(b"\xff\xfe\x00z")
    received = yield client.receive(7 + 12)
    assert received == b"WelcomeHello, \xff\xfe\x00z!"


@pytest_twisted.inlineCallbacks
def test_lineFraming(spawnGreetd: Any) -> Generator[Deferred[Any], Any, None]:
    """
    With C{--framing line}, the banner is a line and a bare name waits for
    its line ending.
    """
    daemon = spawnGreetd("--framing", "line", "--welcome", "Hi")
    client = yield connect(daemon.tcp[0][1])
    client.transport.write(b"Ann")
    yield pause()
    assert client.received == b"Hi\r\n"
    client.transport.write(b"\n")
    received = yield client.receive(len(b"Hi\r\nHello, Ann!\n"))
    assert received == b"Hi\r\nHello, Ann!\n"


@pytest_twisted.inlineCallbacks
def test_tooLong(spawnGreetd: Any) -> Generator[Deferred[Any], Any, None]:
    """
    A message over C{--max-length} gets the error and a close, and the
    daemon goes on serving.
    """
    daemon = spawnGreetd("--max-length", "8")
    client = yield connect(daemon.tcp[0][1])
    yield client.receive(7)
    client.transport.write(b"123456789\n")
    yield client.lost.addTimeout(TIMEOUT, reactor)
    assert client.received == b"WelcomeError: message longer than 8 bytes\n"
    again = yield connect(daemon.tcp[0][1])
    again.transport.write(b"12345678\n")
    received = yield again.receive(len(b"WelcomeHello, 12345678!\n"))
    assert received == b"WelcomeHello, 12345678!\n"
