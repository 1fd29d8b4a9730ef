"""
The client of the TCP greeting service: L{GreetingClientProtocol} speaks
the protocol in any framing, and L{greetOverTCP} runs a whole session over
any client endpoint.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Generator, NamedTuple

from twisted.internet.defer import Deferred, fail, inlineCallbacks, succeed
from twisted.internet.endpoints import connectProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure

from greetd.client.errors import (
    ERROR_PREFIX,
    ConnectionClosed,
    GreetTimeout,
    ServerError,
    TLSFailed,
    quote,
)
from greetd.client.names import Names, OnReply, checkName, greetEach
from greetd.client.waiting import DEFAULT_TIMEOUT, Waiter, defaultClock
from greetd.core.framing import EXIT
from greetd.core.template import ReplyTemplate
from greetd.core.tls import tlsProblem


class GreetingClientProtocol(Protocol):
    """
    The client side of a TCP greeting session.

    The banner tells the client the daemon's framing: a banner ending in LF
    comes from a C{line} daemon, so names are sent as lines (pipelined) and
    each reply is a line.  Otherwise (C{auto} or C{raw}), names are sent
    bare and one at a time, as the seed's client sends them, and a reply is
    complete once the bytes received equal the expected reply, however the
    network split them.  If they stop being a prefix of it (a daemon with
    another template), the bytes received so far are the reply, the seed's
    rule.  The banner is the first chunk received (up to its LF): the daemon
    writes it in one small write, so a line banner split before its LF, which
    would be taken for a raw one, is not expected on any real network.

    A daemon with no banner (C{--welcome ''}) says nothing until asked.  So
    when nothing has come after L{bannerWait} seconds, the banner is empty
    and the first name is sent as a line (C{Ann\r\n}), which every framing
    answers: C{line} and C{auto} (switched to lines by the LF) with the
    reply and the same line ending, so the session goes on in lines; C{raw}
    by taking the line ending for part of the message (C{Hello, Ann\r\n!}),
    which tells the client to send the name again bare and go on as the
    seed does.  Which of the two came is told by the end of what arrived,
    so this needs the daemon's template; bytes before the reply (a banner
    that came later than L{bannerWait}) are dropped.

    @cvar bannerWait: How long to wait for a banner before deciding there is
        none, in seconds (at most the timeout).  The daemon writes its banner
        as soon as it accepts, so it comes within a round trip or two;
        waiting longer only delays every session with a banner-less daemon.
    @ivar template: The daemon's L{ReplyTemplate}, to recognise replies.
    @ivar timeout: How long each wait for the server may last, in seconds.
    @ivar banner: Fires with the banner (line ending removed), or fails.
    @ivar lineMode: Whether the daemon frames by lines; L{None} until the
        banner has come.
    """

    bannerWait = 0.5

    lineMode: bool | None = None

    def __init__(
        self,
        template: ReplyTemplate | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        clock: IReactorTime | None = None,
    ) -> None:
        self.template = template if template is not None else ReplyTemplate()
        self.timeout = timeout
        self.banner: Deferred[bytes] = Deferred()
        clock = defaultClock(clock)
        self._waiter = Waiter(clock, timeout)
        self._bannerWaiter = Waiter(clock, min(self.bannerWait, timeout))
        # Whether the first name went as a line to a daemon with no banner,
        # whose framing its reply will tell.
        self._probing = False
        # Names not yet answered, with their Deferreds; the first _sent of
        # them have been written.
        self._pending: deque[tuple[bytes, Deferred[bytes]]] = deque()
        self._sent = 0
        self._buffer = b""
        self._failure: Failure | None = None
        self._exitRequested = False
        self._exitSent = False
        self._connected = False
        self._closedWaiters: list[Deferred[None]] = []

    def connectionMade(self) -> None:
        self._connected = True
        self._bannerWaiter.start("the banner", self._noBanner)

    def _noBanner(self, timeout: GreetTimeout) -> None:
        # Nothing yet: ask in a line, which every framing answers.
        self.lineMode = True
        self._probing = True
        self.banner.callback(b"")
        self._sendPending()

    def greet(self, name: bytes) -> Deferred[bytes]:
        """
        Send C{name} once the banner is in and earlier names allow.

        @return: A L{Deferred} firing with the reply (without a line ending),
            or failing with a L{GreetError}.
        @raise ValueError: For a name L{checkName} refuses, or C{exit}
            (call L{exit} instead).
        """
        checkName(name)
        if name == EXIT:
            raise ValueError("call exit() to end the session")
        if self._failure is not None:
            return fail(self._failure)
        if self._exitRequested:
            raise ValueError("the session is ending")
        waiting: Deferred[bytes] = Deferred()
        self._pending.append((name, waiting))
        self._sendPending()
        return waiting

    def exit(self) -> Deferred[None]:
        """
        End the session: send C{exit} once every name has been answered,
        then close (aborting if the close takes longer than the timeout).

        @return: A L{Deferred} that fires when the connection is closed.
        """
        if not self._connected:
            return succeed(None)
        closed: Deferred[None] = Deferred()
        self._closedWaiters.append(closed)
        self._exitRequested = True
        self._sendPending()
        return closed

    def dataReceived(self, data: bytes) -> None:
        if self._failure is not None or self._exitSent:
            return
        self._buffer += data
        if self.lineMode is None:
            self._receiveBanner()
        self._receiveReplies()

    def _receiveBanner(self) -> None:
        banner, newline, rest = self._buffer.partition(b"\n")
        self.lineMode = bool(newline)
        if newline and banner.endswith(b"\r"):
            banner = banner[:-1]
        self._buffer = rest
        self._bannerWaiter.cancel()
        self.banner.callback(banner)
        self._sendPending()

    def _receiveReplies(self) -> None:
        while self._sent and self._failure is None:
            if self._probing:
                if not self._settleFraming():
                    return
            elif self.lineMode:
                line, newline, rest = self._buffer.partition(b"\n")
                if not newline:
                    return
                self._buffer = rest
                self._answer(line[:-1] if line.endswith(b"\r") else line)
            else:
                name = self._pending[0][0]
                expected = self.template.format(name)
                if not self._buffer or (
                    self._buffer != expected and expected.startswith(self._buffer)
                ):
                    return
                reply, self._buffer = self._buffer, b""
                self._answer(reply)
        if not self.lineMode:
            # Nothing is owed: whatever a raw daemon sends now answers no name.
            self._buffer = b""

    def _settleFraming(self) -> bool:
        """
        With no banner, tell the daemon's framing from its answer to the
        first name, sent as a line.

        @return: Whether the buffer now holds replies to read as lines.
        """
        name = self._pending[0][0]
        lineReply = self.template.format(name) + b"\r\n"
        if self._buffer.endswith(lineReply):
            self._buffer = lineReply
        elif self._buffer.startswith(ERROR_PREFIX) and b"\n" in self._buffer:
            pass
        elif self._buffer.endswith(self.template.format(name + b"\r\n")):
            # A raw daemon answered the name with its line ending: again, bare.
            self.lineMode = False
            self._probing = False
            self._buffer = b""
            self._waiter.start(self._awaited(), self._timedOut)
            assert self.transport is not None
            self.transport.write(name)
            return False
        else:
            return False
        self._probing = False
        self._sendPending()
        return True

    def _answer(self, reply: bytes) -> None:
        name, waiting = self._pending[0]
        if reply != self.template.format(name) and reply.startswith(ERROR_PREFIX):
            self._fail(Failure(ServerError(reply)))
            return
        self._pending.popleft()
        self._sent -= 1
        self._waiter.cancel()
        waiting.callback(reply)
        self._sendPending()

    def _sendPending(self) -> None:
        transport = self.transport
        if (
            self.lineMode is None
            or self._failure is not None
            or self._exitSent
            or not self._connected
            or transport is None
        ):
            return
        ending = b"\r\n" if self.lineMode else b""
        pipelined = self.lineMode and not self._probing
        while self._sent < len(self._pending) and (pipelined or not self._sent):
            transport.write(self._pending[self._sent][0] + ending)
            self._sent += 1
        if self._sent and not self._waiter.active:
            self._waiter.start(self._awaited(), self._timedOut)
        if self._exitRequested and not self._pending:
            self._exitSent = True
            transport.write(EXIT + ending)
            transport.loseConnection()
            self._waiter.start("the connection to close", self._timedOut)

    def _awaited(self) -> str:
        reply = f"the reply to {quote(self._pending[0][0])}"
        return f"a banner or {reply}" if self._probing else reply

    def _timedOut(self, timeout: GreetTimeout) -> None:
        if self._exitSent:
            self.abort()
        else:
            self._fail(Failure(timeout))

    def _fail(self, failure: Failure) -> None:
        """
        End the session with C{failure}: every Deferred still waiting gets
        it, and so does every later L{greet}.
        """
        if self._failure is not None:
            return
        self._failure = failure
        self._waiter.cancel()
        self._bannerWaiter.cancel()
        pending = [waiting for _, waiting in self._pending]
        self._pending.clear()
        self._sent = 0
        if not self.banner.called:
            self.banner.errback(failure)
        for waiting in pending:
            waiting.errback(failure)
        self.abort()

    def abort(self) -> None:
        """
        Drop the connection at once, replies owed or not.
        """
        transport = self.transport
        if self._connected and transport is not None:
            transport.abortConnection()  # type: ignore[attr-defined]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._connected = False
        self._waiter.cancel()
        self._bannerWaiter.cancel()
        clean = reason.check(ConnectionDone) is not None
        problem = tlsProblem(reason.value)
        if problem is not None and not self._exitSent and self._failure is None:
            self._fail(Failure(TLSFailed(problem)))
        if self._exitSent or self._failure is not None:
            pass
        elif not self.banner.called:
            self._fail(Failure(ConnectionClosed("the banner", self._buffer, clean)))
        elif self._pending:
            partial = self._buffer
            if partial.startswith(ERROR_PREFIX):
                self._fail(Failure(ServerError(partial.rstrip(b"\r\n"))))
            else:
                self._fail(Failure(ConnectionClosed(self._awaited(), partial, clean)))
        else:
            self._failure = Failure(ConnectionClosed(None, clean=clean))
        waiters, self._closedWaiters = self._closedWaiters, []
        for closed in waiters:
            closed.callback(None)


class Greetings(NamedTuple):
    """
    What a TCP session received.

    @ivar banner: The banner, without a line ending.
    @ivar replies: The reply to each name, in order.
    """

    banner: bytes
    replies: list[bytes]


def _timedOutConnecting(result: object, timeout: float) -> Failure:
    return Failure(GreetTimeout("the connection", timeout))


@inlineCallbacks
def greetOverTCP(
    endpoint: IStreamClientEndpoint,
    names: Names,
    template: ReplyTemplate | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    clock: IReactorTime | None = None,
    onBanner: Callable[[bytes], object] | None = None,
    onReply: OnReply | None = None,
) -> Generator[Deferred[Any], Any, Greetings]:
    """
    Connect to a greeting daemon, greet each name in turn, and say C{exit}.

    @param endpoint: Where the daemon is (C{tcp:}, C{tcp6:}, C{unix:},
        C{tls:}...).
    @param names: The names, each checked by L{checkName}; a name C{exit}
        ends the session early.
    @param template: The daemon's reply template.
    @param timeout: The bound on each wait: connecting, the banner, each
        reply, the close.
    @param clock: The time source; the global reactor by default.
    @param onBanner: Called with the banner as soon as it arrives.
    @param onReply: Called with each name and its reply as they arrive.
    @return: A L{Deferred} firing with the L{Greetings}, or failing with a
        L{GreetError} or the endpoint's connection error.
    """
    clock = defaultClock(clock)
    if not callable(names):
        names = list(names)
        for name in names:
            checkName(name)
    protocol = GreetingClientProtocol(template, timeout, clock)
    connecting = connectProtocol(endpoint, protocol)
    yield connecting.addTimeout(timeout, clock, _timedOutConnecting)
    try:
        banner = yield protocol.banner
        if onBanner is not None:
            onBanner(banner)
        replies = yield greetEach(protocol.greet, names, onReply)
    except BaseException:
        protocol.abort()
        raise
    yield protocol.exit()
    return Greetings(banner, replies)
