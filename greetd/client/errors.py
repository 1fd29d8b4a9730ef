"""
How a client session fails: L{GreetError} and its kinds, each one line.
"""

from __future__ import annotations

from greetd.core.escaping import quote


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


class ServerRefused(ServerError):
    """
    The daemon turned the connection away with an error line instead of a
    banner (C{Error: too many connections from your address}).
    """

    def __init__(self, text: bytes) -> None:
        GreetError.__init__(self, f"the server refused the connection: {quote(text)}")
        self.text = text


class UnexpectedReply(GreetError):
    """
    The server answered a name with something other than the reply its
    template gives: a daemon with another template, or one not to believe.

    @ivar name: The name.
    @ivar reply: What came (as much as came, over UDP or in C{raw}).
    @ivar expected: The reply the template gives.
    """

    def __init__(self, name: bytes, reply: bytes, expected: bytes) -> None:
        super().__init__(
            f"the reply to {quote(name)} was {quote(reply)}, not {quote(expected)}"
        )
        self.name = name
        self.reply = reply
        self.expected = expected


class StrayLine(GreetError):
    """
    The server sent a whole line while no reply was owed: it cannot answer
    a name the server has not been sent, so it answers none (a second
    answer to a name, a line from something other than a greetd daemon).

    @ivar line: The line, without its line ending.
    """

    def __init__(self, line: bytes) -> None:
        super().__init__(f"the server sent {quote(line)}, which answers no name")
        self.line = line


class ReplyTooLong(GreetError):
    """
    The server sent more of a line (a banner, a reply) than the client
    keeps without its end.

    @ivar what: What was awaited, such as C{"the banner"}.
    @ivar limit: The most bytes kept.
    """

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"{what} is longer than {limit} bytes")
        self.what = what
        self.limit = limit


class ConnectionClosed(GreetError):
    """
    The connection ended before the session did.

    @ivar waitingFor: What was awaited when it ended, or C{None} if nothing.
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
