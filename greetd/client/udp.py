"""
The client of the UDP reply service: L{ReplyClientProtocol} resends a
datagram that gets no reply, and L{greetOverUDP} greets names in turn.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Generator

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import MessageLengthError
from twisted.internet.interfaces import IListeningPort, IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.python.failure import Failure

from greetd.client.errors import (
    GreetTimeout,
    NoReply,
    PortUnreachable,
    UnexpectedReply,
)
from greetd.client.names import Names, OnReply, greetEach
from greetd.client.waiting import DEFAULT_TIMEOUT, Waiter, defaultClock
from greetd.core.template import ReplyTemplate

#: How many times a UDP datagram is resent by default when no reply comes.
DEFAULT_RETRIES = 3

#: The shortest wait before a resend, in seconds.
MIN_RESEND_INTERVAL = 0.1


def sendTimes(timeout: float, retries: int) -> list[float]:
    """
    When a name is sent, in seconds after its first send (at 0), as a
    resolver backs off: the waits between sends double, the first chosen
    so that C{retries + 1} waits fill C{timeout}; none is shorter than
    L{MIN_RESEND_INTERVAL}, and no send is at or after C{timeout}, so a
    short timeout allows fewer resends.
    """
    first = max(timeout / (2 ** (min(retries, 30) + 1) - 1), MIN_RESEND_INTERVAL)
    times, wait = [0.0], first
    while len(times) <= retries and times[-1] + wait < timeout:
        times.append(times[-1] + wait)
        wait *= 2
    return times


#: Opens a new UDP port for a protocol: C{reactor.listenUDP} with its
#: port and interface given, say.
ListenUDP = Callable[[DatagramProtocol], IListeningPort]


class _Greeting:
    """
    The name a L{ReplyClientProtocol} is greeting.

    @ivar name: The name.
    @ivar expected: Its reply.
    @ivar waiting: Fires with its reply, or fails.
    @ivar due: When its next sends are due, then when it fails, in the
        clock's seconds.
    @ivar tries: How many times it has been sent.
    @ivar ignored: How many datagrams came that were not its reply.
    """

    __slots__ = ("due", "expected", "ignored", "name", "tries", "waiting")

    def __init__(self, name: bytes, expected: bytes, due: list[float]) -> None:
        self.name = name
        self.expected = expected
        self.waiting: Deferred[bytes] = Deferred()
        self.due = due
        self.tries = 0
        self.ignored = 0


class ReplyClientProtocol(DatagramProtocol):
    """
    The client side of the UDP reply service, on a connected UDP socket so
    that only the server's datagrams arrive (and ICMP errors are reported).

    One name is greeted at a time.  It is sent, and sent again while no
    reply comes, up to C{retries} more times, at the growing intervals
    L{sendTimes} gives; C{timeout} after the first send, it has failed.
    Only the expected reply (the template applied to the name) answers
    it.  The empty datagram nginx sends back for one it could not deliver,
    and the reply to one of the last C{remembered} names this protocol
    greeted (a late duplicate: a resend answered twice), are counted and
    ignored, and the wait goes on; any other datagram (a reply to a name
    never sent, in another template's form, or in none) comes from a
    server with another template, or one not to believe, and fails the
    name at once.

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
    @ivar timeout: How long to wait for each name's reply, resends included.
    @ivar retries: How many times to resend a name that gets no reply.
    @cvar remembered: How many earlier names' replies are taken for late
        duplicates.  A duplicate is an earlier name's reply still in flight
        or resent, so it comes soon after: the last few names are enough,
        and the bound keeps a long session's memory and each datagram's
        check small.
    """

    noisy = False
    remembered = 16

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
        self._listen = listen
        self._waiter = Waiter(defaultClock(clock), timeout)
        self._greeting: _Greeting | None = None
        self._resends: list[tuple[_ResendProtocol, IListeningPort]] = []
        # The replies of the last names greeted before the current one.
        self._earlier: deque[bytes] = deque(maxlen=self.remembered)

    @property
    def ignored(self) -> int:
        """
        How many datagrams the current name received that were not its
        reply.
        """
        return 0 if self._greeting is None else self._greeting.ignored

    def startProtocol(self) -> None:
        transport = self.transport
        assert transport is not None, "not listening"
        transport.connect(self.host, self.port)

    def greet(self, name: bytes) -> Deferred[bytes]:
        """
        Send C{name} until its reply comes or the retries run out.

        @return: A C{Deferred} firing with the reply, or failing with
            L{NoReply}, L{UnexpectedReply} or L{PortUnreachable}.
        @raise ValueError: While another name is still being greeted.
        """
        if self._greeting is not None:
            raise ValueError("one name at a time")
        now = self._waiter.clock.seconds()
        times = [*sendTimes(self.timeout, self.retries)[1:], self.timeout]
        greeting = self._greeting = _Greeting(
            name, self.template.format(name), [now + at for at in times]
        )
        self.sendFrom(self.transport)
        return greeting.waiting

    def sendFrom(self, transport: Any) -> None:
        """
        Send the current name from C{transport} (this protocol's own, or a
        resend's), and time the wait for its reply.
        """
        greeting = self._greeting
        if greeting is None:
            return
        if transport is None:
            self._finish(Failure(PortUnreachable()))
            return
        greeting.tries += 1
        try:
            transport.write(greeting.name, None)
        except (OSError, MessageLengthError) as error:
            self._finish(Failure(error))
            return
        if self._greeting is greeting:
            wait = greeting.due.pop(0) - self._waiter.clock.seconds()
            self._waiter.start("a reply", self._noReply, max(wait, 0))

    def _noReply(self, timeout: GreetTimeout) -> None:
        greeting = self._greeting
        assert greeting is not None
        if not greeting.due:
            failure = NoReply(greeting.name, greeting.tries, greeting.ignored)
            self._finish(Failure(failure))
        elif self._listen is None:
            self.sendFrom(self.transport)
        else:
            resend = _ResendProtocol(self)
            try:
                port = self._listen(resend)
            except OSError as error:
                self._finish(Failure(error))
                return
            if self._greeting is greeting:
                self._resends.append((resend, port))
            else:  # the send failed, and the name is done
                resend.retired = True
                port.stopListening()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        greeting = self._greeting
        if greeting is None:
            return
        expected = greeting.expected
        if datagram == expected:
            self._finish(datagram)
        elif not datagram or datagram in self._earlier:
            greeting.ignored += 1
        else:
            failure = UnexpectedReply(greeting.name, datagram, expected)
            self._finish(Failure(failure))

    def connectionRefused(self) -> None:
        if self._greeting is not None:
            self._finish(Failure(PortUnreachable()))

    def stopProtocol(self) -> None:
        # The port stops under a greeting when the reactor drops the socket
        # for the error an ICMP port unreachable leaves on it (epoll reports
        # it as a hang-up rather than letting recv raise ECONNREFUSED).
        self.connectionRefused()

    def _finish(self, result: bytes | Failure) -> None:
        assert self._greeting is not None
        waiting = self._greeting.waiting
        self._earlier.append(self._greeting.expected)
        self._greeting = None
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
    @param timeout: How long to wait for each name's reply, resends
        included (see L{sendTimes}), and for resolving C{host}.
    @param retries: How many times to resend a name that gets no reply;
        each resend leaves from a new port (see L{ReplyClientProtocol}).
    @param onReply: Called with each name and its reply as they arrive.
    @return: A C{Deferred} firing with the replies in order, or failing with
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
        replies: list[bytes] = yield greetEach(protocol.greet, names, onReply)
    except BaseException:
        listening.stopListening()
        raise
    yield listening.stopListening()
    return replies
