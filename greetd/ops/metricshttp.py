"""
The metrics listener's HTTP, bounded as a listener facing the network
must be: Twisted's web server defaults are made for web applications, and
would let anyone who reaches C{/metrics} spool a request body of any size
to a temporary file, hold a connection with a request that never ends,
and take descriptors from greetd's own budget.

So, as HAProxy's and nginx's status pages are: only C{GET} and C{HEAD} are
answered (C{405} otherwise, before any body is read), a request may carry
no body (C{413}), its line and headers are at most L{MetricsChannel.
totalHeadersSize} bytes and must arrive within
L{MetricsChannel.requestTimeout} seconds (C{408}, as HAProxy's C{timeout
http-request} and nginx's C{client_header_timeout}), an idle connection
is closed after L{MetricsSite.idleTimeout} seconds, a closing connection
that has not taken what it is owed after L{MetricsChannel.closeTimeout}
seconds is cut (as nginx's C{send_timeout}), and at most
L{MetricsSite.maxConnections} connections are open at once: past that, a
new one is closed as soon as it is accepted.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IAddress, IDelayedCall
from twisted.internet.protocol import connectionDone
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.http import Request as HTTPRequest
from twisted.web.resource import Resource
from twisted.web.server import Site

#: The methods answered.
METHODS = (b"GET", b"HEAD")


def cancel(call: IDelayedCall | None) -> None:
    """
    Cancel C{call} if it is still to run.
    """
    if call is not None and call.active():
        call.cancel()


class MetricsChannel(HTTPChannel):
    """
    One connection to the metrics listener (as the module says).

    @ivar refused: Whether its request was refused, so that nothing more
        it sends is read or answered.
    @ivar closing: Whether it is closing (see L{loseConnection}).
    @ivar betweenRequests: Whether it is kept alive after a response, and
        no byte of the next request has come.
    @ivar pipelined: Whether the request being answered was read before the
        previous response was written: its client sent it before it could
        have seen that response, so a body rendered a moment ago answers it
        as well (see L{greetd.ops.metrics.MetricsResource}).
    """

    #: Bytes of request line and headers: a scrape needs a few hundred.
    totalHeadersSize = 8192

    #: Header lines in a request.
    maxHeaders = 50

    #: Seconds a request (line and headers) may take to arrive, from the
    #: connection or the request's first byte.
    requestTimeout = 10.0

    #: Seconds a closing connection may take to take what it is owed
    #: before it is cut, so that a client that never reads cannot hold a
    #: place under L{MetricsSite.maxConnections} (nginx's C{send_timeout}).
    closeTimeout = 5.0

    site: MetricsSite
    refused = False
    closing = False
    pipelined = False
    betweenRequests = False
    _deadline: IDelayedCall | None = None
    _cut: IDelayedCall | None = None
    _next: IDelayedCall | None = None

    def connectionMade(self) -> None:
        super().connectionMade()  # type: ignore[no-untyped-call]
        self._awaitRequest()

    def _awaitRequest(self) -> None:
        self._deadline = self.callLater(  # type: ignore[no-untyped-call]
            self.requestTimeout, self._tooSlow
        )

    def _stopDeadline(self) -> None:
        cancel(self._deadline)
        self._deadline = None

    def _tooSlow(self) -> None:
        self._deadline = None
        self._refuse(b"408 Request Timeout")

    def _refuse(self, status: bytes, headers: bytes = b"") -> None:
        """
        Answer C{status} with no body, and close.
        """
        self.refused = True
        self._stopDeadline()
        self.transport.write(  # type: ignore[union-attr]
            b"HTTP/1.1 " + status + b"\r\n" + headers
            + b"Content-Length: 0\r\nConnection: close\r\n\r\n"
        )  # fmt: skip
        self.loseConnection()

    def allHeadersReceived(self) -> None:
        self._stopDeadline()
        if self._command not in METHODS:
            self._refuse(b"405 Method Not Allowed", b"Allow: GET, HEAD\r\n")
        elif self.length != 0:
            # Content-Length above 0, or chunked (None): a body, which a
            # scrape never sends.
            self._refuse(b"413 Content Too Large")
        else:
            super().allHeadersReceived()  # type: ignore[no-untyped-call]

    def allContentReceived(self) -> None:
        if not self.refused:
            super().allContentReceived()  # type: ignore[no-untyped-call]

    def rawDataReceived(self, data: bytes) -> None:
        if not self.refused:
            super().rawDataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if not self.refused:
            super().lineReceived(line)  # type: ignore[no-untyped-call]

    def requestDone(self, request: Any) -> None:
        # One request answered per reactor turn: Twisted's channel would
        # answer every request a read holds (thousands in 64 KiB) before
        # anything else ran.  The rest stays in the line buffer, and the
        # transport is not read, until the next turn, or until the peer has
        # taken enough of the responses if it is not reading.
        self.paused = True
        super().requestDone(request)  # type: ignore[no-untyped-call]
        if not self.persistent or self.refused or self.closing:
            return
        if self._buffer:
            # The next request has begun.
            self._awaitRequest()
            self.transport.pauseProducing()  # type: ignore[union-attr]
            if not self._waitingForTransport:
                self._answerNextSoon()
        else:
            # Idle between requests: the site's idle timeout closes it
            # quietly, as nginx's keepalive_timeout does; the request
            # deadline starts with the next request's first byte.
            self.paused = False
            self.betweenRequests = True

    def dataReceived(self, data: bytes) -> None:
        if self.betweenRequests and data:
            self.betweenRequests = False
            self._awaitRequest()
        super().dataReceived(data)  # type: ignore[no-untyped-call]

    def _answerNextSoon(self) -> None:
        if self._next is None:
            self._next = self.callLater(  # type: ignore[no-untyped-call]
                0, self._answerNext
            )

    def _answerNext(self) -> None:
        """
        Read again, and answer the next request buffered.
        """
        self._next = None
        if self._waitingForTransport:
            # resumeProducing comes back here.
            return
        self.paused = False
        self.transport.resumeProducing()  # type: ignore[union-attr]
        self.pipelined = True
        try:
            LineReceiver.dataReceived(self, b"")
        finally:
            self.pipelined = False

    def resumeProducing(self) -> None:
        super().resumeProducing()  # type: ignore[no-untyped-call]
        if self.paused and not self.closing:
            # Requests wait in the buffer for the peer to catch up.
            self.transport.pauseProducing()  # type: ignore[union-attr]
            self._answerNextSoon()

    def loseConnection(self) -> None:
        """
        Close once what is written has been sent, and cut the connection if
        that takes longer than L{closeTimeout}.  Every close goes through
        here: refusals, timeouts, and Twisted's own (a C{400}, the end of a
        request that is not kept alive).
        """
        if self.closing:
            return
        self.closing = True
        super().loseConnection()  # type: ignore[no-untyped-call]
        self._cut = self.callLater(  # type: ignore[no-untyped-call]
            self.closeTimeout, self._cutNow
        )

    def _cutNow(self) -> None:
        self._cut = None
        self.transport.abortConnection()  # type: ignore[union-attr]

    def timeoutConnection(self) -> None:
        # Twisted's logs a line at info for every idle connection it closes.
        self.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._stopDeadline()
        cancel(self._cut)
        cancel(self._next)
        self._cut = self._next = None
        self.site.channelClosed()
        super().connectionLost(reason)  # type: ignore[no-untyped-call]


class MetricsSite(Site):
    """
    The metrics listener's site: L{MetricsChannel}s, at most
    L{maxConnections} of them, and no access log (a scrape every few
    seconds would drown the daemon's own lines).

    @ivar open: How many of its connections are open.
    """

    protocol = MetricsChannel  # type: ignore[assignment]

    #: Connections open at once: Prometheus needs one or two.
    maxConnections = 10

    #: Seconds a connection may stay idle between requests.
    idleTimeout = 30.0

    open = 0

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource, timeout=self.idleTimeout)  # type: ignore[no-untyped-call]
        self.noisy = False

    def buildProtocol(self, addr: IAddress | None) -> Any:
        if self.open >= self.maxConnections:
            # The port closes the connection at once.
            return None
        self.open += 1
        return super().buildProtocol(addr)  # type: ignore[no-untyped-call]

    def channelClosed(self) -> None:
        """
        One of its connections has closed.
        """
        self.open -= 1

    def log(self, request: HTTPRequest) -> None:
        pass
