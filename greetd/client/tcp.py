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
    ConnectionClosed,
    GreetError,
    GreetTimeout,
    ReplyTooLong,
    ServerError,
    ServerRefused,
    StrayLine,
    TLSFailed,
    UnexpectedReply,
)
from greetd.client.names import Names, OnReply, checkName, greetEach
from greetd.client.waiting import DEFAULT_TIMEOUT, Waiter, defaultClock
from greetd.core.framing import DEFAULT_MAX_LENGTH, EXIT
from greetd.core.session import (
    CLOSING,
    ENDED,
    OVER,
    ClientSession,
)
from greetd.core.sessionevents import (
    Banner,
    Close,
    Closed,
    ErrorReply,
    Event,
    Refused,
    Reply,
    Send,
    Stray,
    TooLong,
    Wait,
    WrongReply,
)
from greetd.core.template import ReplyTemplate
from greetd.core.tls import tlsProblem

#: The error each of a session's failures becomes.
_ERRORS: dict[type[Event], Callable[..., GreetError]] = {
    Refused: ServerRefused,
    ErrorReply: ServerError,
    WrongReply: UnexpectedReply,
    Stray: StrayLine,
    TooLong: ReplyTooLong,
    Closed: ConnectionClosed,
}


class GreetingClientProtocol(Protocol):
    """
    The client side of a TCP greeting session: a L{ClientSession} says what
    to send and what happened, this protocol moves the bytes, times each
    wait and fires the Deferreds.  L{greetd.core.session} tells how the
    framing is found, and which replies are believed.

    @cvar bannerWait: How long to wait for a banner before deciding there is
        none, in seconds (at most the timeout).  The daemon writes its banner
        as soon as it accepts, so it comes within a round trip or two;
        waiting longer only delays every session with a banner-less daemon.
    @ivar session: The L{ClientSession}.
    @ivar timeout: How long each wait for the server may last, in seconds.
    @ivar banner: Fires with the banner (line ending removed), or fails.
    """

    bannerWait = 0.5

    def __init__(
        self,
        template: ReplyTemplate | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        clock: IReactorTime | None = None,
        maxLength: int = DEFAULT_MAX_LENGTH,
    ) -> None:
        self.session = ClientSession(template, maxLength)
        self.timeout = timeout
        self.banner: Deferred[bytes] = Deferred()
        clock = defaultClock(clock)
        self._waiter = Waiter(clock, timeout)
        self._bannerWaiter = Waiter(clock, min(self.bannerWait, timeout))
        # The Deferreds of the names not yet answered, oldest first.
        self._replies: deque[Deferred[bytes]] = deque()
        self._failure: Failure | None = None
        self._closedWaiters: list[Deferred[None]] = []

    @property
    def template(self) -> ReplyTemplate:
        """
        The daemon's L{ReplyTemplate}, to recognise replies.
        """
        return self.session.template

    @property
    def lineMode(self) -> bool | None:
        """
        Whether the daemon frames by lines; C{None} until that is known.
        """
        return self.session.lineMode

    def connectionMade(self) -> None:
        self._bannerWaiter.start(
            "the banner", lambda _: self._handle(self.session.silence())
        )

    def greet(self, name: bytes) -> Deferred[bytes]:
        """
        Send C{name} once the banner is in and earlier names allow.

        @return: A C{Deferred} firing with the reply (without a line ending),
            or failing with a L{GreetError}.
        @raise ValueError: For a name L{checkName} refuses, C{exit} (call
            L{exit} instead), or once the session is ending.
        """
        checkName(name)
        if name == EXIT:
            raise ValueError("call exit() to end the session")
        if self._failure is not None:
            return fail(self._failure)
        events = self.session.greet(name)
        waiting: Deferred[bytes] = Deferred()
        self._replies.append(waiting)
        self._handle(events)
        return waiting

    def exit(self) -> Deferred[None]:
        """
        End the session: send C{exit} once every name has been answered,
        then close (aborting if the close takes longer than the timeout).

        @return: A C{Deferred} that fires when the connection is closed.
        """
        if not self.connected:
            return succeed(None)
        closed: Deferred[None] = Deferred()
        self._closedWaiters.append(closed)
        self._handle(self.session.exit())
        return closed

    def dataReceived(self, data: bytes) -> None:
        self._handle(self.session.receive(data))

    def _handle(self, events: list[Event]) -> None:
        transport = self.transport
        if not events:
            return
        assert transport is not None, "not connected"
        for event in events:
            if isinstance(event, Send):
                transport.write(event.data)
            elif isinstance(event, Close):
                transport.loseConnection()
            elif isinstance(event, Wait):
                if event.what is None:
                    self._waiter.cancel()
                else:
                    self._waiter.start(event.what, self._timedOut)
            elif isinstance(event, Banner):
                self._bannerWaiter.cancel()
                self.banner.callback(event.banner)
            elif isinstance(event, Reply):
                self._replies.popleft().callback(event.reply)
            else:
                self._fail(Failure(_ERRORS[type(event)](*event)))

    def _timedOut(self, timeout: GreetTimeout) -> None:
        if self.session.state == CLOSING:
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
        self.session.abandon()
        self._waiter.cancel()
        self._bannerWaiter.cancel()
        replies, self._replies = self._replies, deque()
        if not self.banner.called:
            self.banner.errback(failure)
        for waiting in replies:
            waiting.errback(failure)
        self.abort()

    def abort(self) -> None:
        """
        Drop the connection at once, replies owed or not.
        """
        transport = self.transport
        if self.connected and transport is not None:
            transport.abortConnection()  # type: ignore[attr-defined]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.connected = False
        self._waiter.cancel()
        self._bannerWaiter.cancel()
        problem = tlsProblem(reason.value)
        if problem is not None and self.session.state not in (CLOSING, OVER, ENDED):
            self._fail(Failure(TLSFailed(problem)))
        else:
            self._handle(self.session.lost(reason.check(ConnectionDone) is not None))
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
    maxLength: int = DEFAULT_MAX_LENGTH,
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
    @param maxLength: The most bytes kept of a line the server has not
        ended (see L{ClientSession.maxLength}).
    @return: A C{Deferred} firing with the L{Greetings}, or failing with a
        L{GreetError} or the endpoint's connection error.
    """
    clock = defaultClock(clock)
    if not callable(names):
        names = list(names)
        for name in names:
            checkName(name)
    protocol = GreetingClientProtocol(template, timeout, clock, maxLength)
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
