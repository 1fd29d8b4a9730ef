"""
One run of C{greet}: the service, the server and what to print.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint

from greetd.client.endpoint import clientEndpoint
from greetd.client.names import Names
from greetd.client.options import Options
from greetd.client.tcp import greetOverTCP
from greetd.client.udp import greetOverUDP
from greetd.core.escaping import escape, formatAddress


class Session:
    """
    One run of C{greet}: which service, where, and what to print.

    @ivar options: The parsed L{Options}.
    @ivar address: The server's address, as error lines show it.
    @ivar write: Prints one line of output (the line ending is added).
    @ivar names: Where the names come from.
    """

    def __init__(
        self,
        options: Options,
        write: Callable[[bytes], None],
        names: Names,
    ) -> None:
        self.options = options
        self.write = write
        self.names = names
        description = options["connect"]
        if description is not None:
            printable = description.isascii() and description.isprintable()
            self.address = description if printable else escape(description)
        else:
            self.address = formatAddress((options["host"], options["port"]))

    def endpoint(self, reactor: Any) -> IStreamClientEndpoint:
        """
        The TCP endpoint the options describe.
        """
        options = self.options
        if options["connect"] is not None:
            return clientEndpoint(reactor, options["connect"])
        return HostnameEndpoint(
            reactor, options["host"], options["port"], timeout=options["timeout"]
        )

    def run(self, reactor: Any) -> Deferred[Any]:
        """
        Greet every name, printing each reply as it comes.
        """
        options = self.options

        def printReply(name: bytes, reply: bytes) -> None:
            self.write(reply)

        def printBanner(banner: bytes) -> None:
            # A daemon run with --welcome '' sends none: print no blank line.
            if banner:
                self.write(banner)

        if options["udp"]:
            return greetOverUDP(
                reactor,
                options["host"],
                options["port"],
                self.names,
                timeout=options["timeout"],
                retries=options["retries"],
                template=options["template"],
                onReply=printReply,
            )
        return greetOverTCP(
            self.endpoint(reactor),
            self.names,
            template=options["template"],
            timeout=options["timeout"],
            clock=reactor,
            onBanner=printBanner,
            onReply=printReply,
            maxLength=options["max-length"],
        )
