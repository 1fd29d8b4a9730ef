"""
The plain Twisted peer: the least a Twisted server needs to speak the
protocol (a Protocol and a DatagramProtocol on the default reactor), without
greetd's limits, logging, counters, producers or timeouts.
"""

from __future__ import annotations

from typing import Any, Sequence

from twisted.internet.protocol import DatagramProtocol, Factory, Protocol

from bench.peers import BANNER, answer, parseArguments, ready


class Greeting(Protocol):
    def connectionMade(self) -> None:
        self.buffer = b""
        self.transport.write(BANNER)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        replies, self.buffer, done = answer(self.buffer + data)
        if replies:
            self.transport.write(replies)  # type: ignore[union-attr]
        if done:
            self.transport.loseConnection()  # type: ignore[union-attr]


class Reply(DatagramProtocol):
    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.transport.write(b"Hello, %s!" % datagram, addr)  # type: ignore[union-attr]


def main(argv: Sequence[str] | None = None) -> None:
    from twisted.internet import reactor

    options = parseArguments(argv, __doc__)
    factory = Factory.forProtocol(Greeting)
    tcp = reactor.listenTCP(  # type: ignore[attr-defined]
        options.port, factory, backlog=4096, interface=options.host
    )
    udp = reactor.listenUDP(  # type: ignore[attr-defined]
        options.udp_port, Reply(), interface=options.host
    )
    tcpHost, udpHost = tcp.getHost(), udp.getHost()
    ready((tcpHost.host, tcpHost.port), (udpHost.host, udpHost.port))
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
