"""
The asyncio peer: an C{asyncio.Protocol} server (and a datagram protocol)
on the default event loop; L{bench.peers.uvloop_server} runs the same code
on uvloop.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Coroutine, Sequence, cast

from bench.peers import BANNER, answer, parseArguments, ready


class Greeting(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.buffer = b""
        self.transport.write(BANNER)

    def data_received(self, data: bytes) -> None:
        replies, self.buffer, done = answer(self.buffer + data)
        if replies:
            self.transport.write(replies)
        if done:
            self.transport.close()


class Reply(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(b"Hello, %s!" % data, addr)


async def serve(host: str, port: int, udpPort: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Greeting, host, port, backlog=4096)
    datagrams, _ = await loop.create_datagram_endpoint(
        Reply, local_addr=(host, udpPort)
    )
    ready(server.sockets[0].getsockname(), datagrams.get_extra_info("sockname"))
    await loop.create_future()


def main(
    argv: Sequence[str] | None = None,
    run: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run,
) -> None:
    options = parseArguments(argv, __doc__)
    run(serve(options.host, options.port, options.udp_port))


if __name__ == "__main__":
    main()
