"""
Clients for both greetd services, for Twisted programs and for C{greet}.

L{GreetingClientProtocol} speaks the TCP greeting protocol to a daemon in
any framing, and L{greetOverTCP} runs a whole session over any client
endpoint.  L{ReplyClientProtocol} and L{greetOverUDP} are the UDP
counterparts, which resend a datagram that gets no reply.

Every wait for the server is bounded by a timeout, measured on an
L{IReactorTime} that tests replace with a L{twisted.internet.task.Clock}.
"""

from __future__ import annotations

from collections import deque
from typing import (
    Any,
    Callable,
    Generator,
    Iterable,
    Iterator,
    NamedTuple,
    Union,
    cast,
)

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred, fail, inlineCallbacks, succeed
from twisted.internet.endpoints import connectProtocol
from twisted.internet.error import ConnectionDone, MessageLengthError
from twisted.internet.interfaces import (
    IDelayedCall,
    IListeningPort,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import DatagramProtocol, Protocol, connectionDone
from twisted.python.failure import Failure

from greetd.core.escaping import escape
from greetd.core.framing import EXIT
from greetd.core.template import ReplyTemplate
from greetd.core.tls import tlsProblem

#: How long any one wait for the server lasts by default, in seconds.
DEFAULT_TIMEOUT = 5.0

#: How many times a UDP datagram is resent by default when no reply comes.
DEFAULT_RETRIES = 3

#: How the daemon's error replies begin.
ERROR_PREFIX = b"Error: "


class GreetError(Exception):
    """
    A session failed.  C{str()} of every subclass is one line saying what
    happened, fit to follow the server's address in a message.
    """


class GreetTimeout(GreetError):
    """
    The server did not answer within the timeout.

    @ivar waitingFor: What was awaited, such as C{"the banner"}.
    @ivar timeout: The timeout, in seconds.
    """

    def __init__(self, waitingFor: str, timeout: float) -> None:
        super().__init__(f"timed out after {timeout:g}s waiting for {waitingFor}")
        self.waitingFor = waitingFor
        self.timeout = timeout


class NoReply(GreetError):
    """
    A UDP name got no reply however often it was sent.

    @ivar name: The name.
    @ivar tries: How many times it was sent.
    @ivar ignored: How many datagrams came that were not its reply (such
        as the empty ones nginx sends for a datagram it could not deliver).
    """

    def __init__(self, name: bytes, tries: int, ignored: int = 0) -> None:
        plural = "try" if tries == 1 else "tries"
        text = f"no reply to {quote(name)} after {tries} {plural}"
        if ignored:
            were = "datagram that was" if ignored == 1 else "datagrams that were"
            text += f" ({ignored} {were} not the reply)"
        super().__init__(text)
        self.name = name
        self.tries = tries
        self.ignored = ignored


class PortUnreachable(GreetError):
    """
    The host answered a datagram with ICMP port unreachable: nothing listens
    there for UDP.
    """

    def __init__(self) -> None:
        super().__init__("port unreachable: no UDP server there")


class TLSFailed(GreetError):
    """
    TLS failed: most often, the server's certificate could not be verified.

    @ivar problem: What OpenSSL said, such as C{certificate verify failed}.
    """

    def __init__(self, problem: str) -> None:
        super().__init__(f"TLS failed: {problem}")
        self.problem = problem


class ServerError(GreetError):
    """
    The daemon answered with an error (C{Error: message longer than N
    bytes}) rather than a reply; it closes the connection after one.

    @ivar text: The error line, without its line ending.
    """

    def __init__(self, text: bytes) -> None:
        super().__init__(f"the server said {quote(text)}")
        self.text = text


class ConnectionClosed(GreetError):
    """
    The connection ended before the session did.

    @ivar waitingFor: What was awaited when it ended, or L{None} if nothing.
    @ivar partial: The bytes of an unfinished reply, if any.
    @ivar clean: Whether it was closed (C{True}) rather than reset.
    """

    def __init__(
        self, waitingFor: str | None, partial: bytes = b"", clean: bool = True
    ) -> None:
        text = "connection closed" if clean else "connection reset"
        if waitingFor is not None:
            text += f" while waiting for {waitingFor}"
        if partial:
            text += f" (received only {quote(partial)})"
        super().__init__(text)
        self.waitingFor = waitingFor
        self.partial = partial
        self.clean = clean


def quote(data: bytes) -> str:
    """
    C{data} escaped and in single quotes, for messages.
    """
    return f"'{escape(data)}'"


def checkName(name: bytes) -> None:
    """
    Refuse a name the protocol cannot carry as one message.

    @raise ValueError: If C{name} is empty or holds CR or LF (which would
        end a line, or switch an C{auto} daemon to lines).
    """
    if not name:
        raise ValueError("a name cannot be empty")
    if b"\r" in name or b"\n" in name:
        raise ValueError(f"a name cannot contain CR or LF: {quote(name)}")


def _defaultClock(clock: IReactorTime | None) -> IReactorTime:
    if clock is None:
        from twisted.internet import reactor

        clock = cast(IReactorTime, reactor)
    return clock


class _Waiter:
    """
    A timer on one wait for the server, which calls C{onTimeout} with a
    L{GreetTimeout} unless it is cancelled first.
    """

    def __init__(self, clock: IReactorTime, timeout: float) -> None:
        self.clock = clock
        self.timeout = timeout
        self._call: IDelayedCall | None = None

    @property
    def active(self) -> bool:
        """
        Whether a wait is being timed.
        """
        return self._call is not None

    def start(self, waitingFor: str, onTimeout: Callable[[GreetTimeout], None]) -> None:
        """
        Time a new wait, replacing any current one.
        """
        self.cancel()

        def expired() -> None:
            self._call = None
            onTimeout(GreetTimeout(waitingFor, self.timeout))

        self._call = self.clock.callLater(self.timeout, expired)

    def cancel(self) -> None:
        """
        Stop timing the current wait, if any.
        """
        if self._call is not None:
            self._call.cancel()
            self._call = None


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
        clock = _defaultClock(clock)
        self._waiter = _Waiter(clock, timeout)
        self._bannerWaiter = _Waiter(clock, min(self.bannerWait, timeout))
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


#: Where a session's names come from: any iterable of names, or a
#: callable returning a L{Deferred} that fires with the next name or with
#: L{None} when there are no more (names typed at a terminal, say).
Names = Union[Iterable[bytes], Callable[[], "Deferred[bytes | None]"]]

#: Called with each name and its reply as the reply arrives.
OnReply = Callable[[bytes, bytes], object]


def _nextNames(names: Names) -> Callable[[], Deferred[bytes | None]]:
    if callable(names):
        return names
    iterator: Iterator[bytes] = iter(names)
    return lambda: succeed(next(iterator, None))


@inlineCallbacks
def _greetEach(
    greet: Callable[[bytes], Deferred[bytes]],
    names: Names,
    onReply: OnReply | None,
) -> Generator[Deferred[Any], Any, list[bytes]]:
    """
    Greet each name in turn, up to the end of C{names} or a name C{exit}.
    """
    nextName = _nextNames(names)
    replies: list[bytes] = []
    while True:
        name = yield nextName()
        if name is None or name == EXIT:
            return replies
        reply = yield greet(name)
        replies.append(reply)
        if onReply is not None:
            onReply(name, reply)


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
    clock = _defaultClock(clock)
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
        replies = yield _greetEach(protocol.greet, names, onReply)
    except BaseException:
        protocol.abort()
        raise
    yield protocol.exit()
    return Greetings(banner, replies)


#: Opens a new UDP port for a protocol: C{reactor.listenUDP} with its
#: port and interface given, say.
ListenUDP = Callable[[DatagramProtocol], IListeningPort]


class ReplyClientProtocol(DatagramProtocol):
    """
    The client side of the UDP reply service, on a connected UDP socket so
    that only the server's datagrams arrive (and ICMP errors are reported).

    One name is greeted at a time.  It is sent, and sent again after each
    C{timeout} without a reply, up to C{retries} more times.  Only the
    expected reply (the template applied to the name) answers it: any other
    datagram, such as the empty one nginx sends back for a datagram it could
    not deliver, or a late duplicate of an earlier name's reply, is counted
    and ignored, and the wait goes on.

    Given C{listen}, each resend leaves from a new port, opened for it and
    kept until the name is answered (a late reply to an earlier send still
    counts).  A UDP load balancer keeps a session per client address and
    port, and sends every datagram of a session to the same server: a
    resend from the same port can go on reaching the dead server its
    session chose, while one from a new port is a new session, balanced
    afresh.

    @ivar host: The server's IP address.
    @ivar port: The server's port.
    @ivar template: The server's L{ReplyTemplate}.
    @ivar timeout: How long to wait for each reply before resending.
    @ivar retries: How many times to resend a name that gets no reply.
    @ivar ignored: How many datagrams the current name received that were
        not its reply.
    """

    noisy = False

    def __init__(
        self,
        host: str,
        port: int,
        template: ReplyTemplate | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        clock: IReactorTime | None = None,
        listen: ListenUDP | None = None,
    ) -> None:
        if retries < 0:
            raise ValueError("retries cannot be negative")
        self.host = host
        self.port = port
        self.template = template if template is not None else ReplyTemplate()
        self.timeout = timeout
        self.retries = retries
        self.ignored = 0
        self._listen = listen
        self._waiter = _Waiter(_defaultClock(clock), timeout)
        self._current: tuple[bytes, Deferred[bytes]] | None = None
        self._tries = 0
        self._resends: list[tuple[_ResendProtocol, IListeningPort]] = []

    def startProtocol(self) -> None:
        transport = self.transport
        assert transport is not None, "not listening"
        transport.connect(self.host, self.port)

    def greet(self, name: bytes) -> Deferred[bytes]:
        """
        Send C{name} until its reply comes or the retries run out.

        @return: A L{Deferred} firing with the reply, or failing with
            L{NoReply} or L{PortUnreachable}.
        @raise ValueError: While another name is still being greeted.
        """
        if self._current is not None:
            raise ValueError("one name at a time")
        waiting: Deferred[bytes] = Deferred()
        self._current = (name, waiting)
        self._tries = 0
        self.ignored = 0
        self.sendFrom(self.transport)
        return waiting

    def sendFrom(self, transport: Any) -> None:
        """
        Send the current name from C{transport} (this protocol's own, or a
        resend's), and time the wait for its reply.
        """
        if self._current is None:
            return
        if transport is None:
            self._finish(Failure(PortUnreachable()))
            return
        self._tries += 1
        try:
            transport.write(self._current[0], None)
        except (OSError, MessageLengthError) as error:
            self._finish(Failure(error))
            return
        if self._current is not None:
            self._waiter.start("a reply", self._noReply)

    def _noReply(self, timeout: GreetTimeout) -> None:
        assert self._current is not None
        if self._tries > self.retries:
            self._finish(Failure(NoReply(self._current[0], self._tries, self.ignored)))
        elif self._listen is None:
            self.sendFrom(self.transport)
        else:
            current, resend = self._current, _ResendProtocol(self)
            try:
                port = self._listen(resend)
            except OSError as error:
                self._finish(Failure(error))
                return
            if self._current is current:
                self._resends.append((resend, port))
            else:  # the send failed, and the name is done
                resend.retired = True
                port.stopListening()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        if self._current is None:
            return
        if datagram != self.template.format(self._current[0]):
            self.ignored += 1
            return
        self._finish(datagram)

    def connectionRefused(self) -> None:
        if self._current is not None:
            self._finish(Failure(PortUnreachable()))

    def stopProtocol(self) -> None:
        # The port stops under a greeting when the reactor drops the socket
        # for the error an ICMP port unreachable leaves on it (epoll reports
        # it as a hang-up rather than letting recv raise ECONNREFUSED).
        self.connectionRefused()

    def _finish(self, result: bytes | Failure) -> None:
        assert self._current is not None
        waiting = self._current[1]
        self._current = None
        self._waiter.cancel()
        resends, self._resends = self._resends, []
        for resend, port in resends:
            resend.retired = True
            port.stopListening()
        if isinstance(result, Failure):
            waiting.errback(result)
        else:
            waiting.callback(result)


class _ResendProtocol(DatagramProtocol):
    """
    A resend's own port: it connects to the server, sends the current name
    once, and hands what comes back to the L{ReplyClientProtocol} until the
    name is done.

    @ivar retired: Whether the name it was opened for is done; the port is
        closing and anything it still receives is dropped.
    """

    noisy = False
    retired = False

    def __init__(self, client: ReplyClientProtocol) -> None:
        self.client = client

    def startProtocol(self) -> None:
        transport = self.transport
        assert transport is not None, "not listening"
        transport.connect(self.client.host, self.client.port)
        self.client.sendFrom(transport)

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        if not self.retired:
            self.client.datagramReceived(datagram, addr)

    def connectionRefused(self) -> None:
        if not self.retired:
            self.client.connectionRefused()

    def stopProtocol(self) -> None:
        # Stopped by the reactor for an ICMP error, as in
        # ReplyClientProtocol.stopProtocol, unless retired.
        self.connectionRefused()


@inlineCallbacks
def greetOverUDP(
    reactor: Any,
    host: str,
    port: int,
    names: Names,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    template: ReplyTemplate | None = None,
    onReply: OnReply | None = None,
) -> Generator[Deferred[Any], Any, list[bytes]]:
    """
    Greet each name in turn over UDP, with L{ReplyClientProtocol}'s retries.

    @param reactor: Provides C{IReactorUDP}, C{IReactorTime} and, when
        C{host} is a host name rather than an address, C{IReactorCore}.
    @param names: The names; a name C{exit} ends the session early (it is
        not sent: to the UDP service it is just a name).
    @param timeout: How long to wait for each reply (and for resolving
        C{host}) before resending.
    @param retries: How many times to resend a name that gets no reply;
        each resend leaves from a new port (see L{ReplyClientProtocol}).
    @param onReply: Called with each name and its reply as they arrive.
    @return: A L{Deferred} firing with the replies in order, or failing with
        L{NoReply}, L{PortUnreachable} or a resolution error.
    """
    address = host
    if not (isIPAddress(host) or isIPv6Address(host)):
        address = yield reactor.resolve(host, (timeout,))
    interface = "::" if isIPv6Address(address) else ""
    protocol = ReplyClientProtocol(
        address,
        port,
        template,
        timeout,
        retries,
        clock=reactor,
        listen=lambda resend: reactor.listenUDP(0, resend, interface),
    )
    listening = reactor.listenUDP(0, protocol, interface)
    try:
        replies: list[bytes] = yield _greetEach(protocol.greet, names, onReply)
    except BaseException:
        listening.stopListening()
        raise
    yield listening.stopListening()
    return replies
