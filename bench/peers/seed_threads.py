"""
The seed tutorial's servers, as it wrote them: a thread per TCP connection
and a UDP loop (here in a thread of its own, so one process serves both).

Changed only so that they run and can be measured like every other peer:
C{socket.STREAM} is C{socket.SOCK_STREAM}; the thread target C{tcplink} is
defined under that name (the tutorial defines C{tcplick}, after use); the
C{time.sleep(2)} per message is gone; the ports come from C{--port} and
C{--udp-port}; the listen backlog is 4096 like every peer's (the tutorial's
5 would measure SYN retransmission timers, not the server); and, as every
peer here, it answers each line rather than each C{recv}, with a newline
after the reply.  It still decodes and encodes UTF-8, sends per message and
prints per connection and per datagram, as the tutorial does.
"""

# The tutorial's %-formatting is kept as it wrote it.
# ruff: noqa: UP031

from __future__ import annotations

import socket
import threading
from typing import Any, Sequence

from bench.peers import parseArguments, ready


def tcplink(sock: socket.socket, addr: Any) -> None:
    print("Accept new connection from %s:%s..." % addr)
    sock.send(b"Welcome")
    buffer = b""
    while True:
        data = sock.recv(1024)
        if not data:
            break
        *lines, buffer = (buffer + data).split(b"\n")
        text = [line.decode("utf-8").rstrip("\r") for line in lines]
        if "exit" in text:
            text = text[: text.index("exit")]
        for message in text:
            send_text = "Hello, %s!\n" % message
            sock.send(send_text.encode("utf-8"))
        if len(text) < len(lines):
            break
    sock.close()
    print("Connection from %s:%s closed." % addr)


def udpserver(s: socket.socket) -> None:
    while True:
        # 接收数据:
        data, addr = s.recvfrom(1024)
        print("Received from %s:%s." % addr)
        s.sendto(b"Hello, %s!" % data, addr)


def main(argv: Sequence[str] | None = None) -> None:
    options = parseArguments(argv, __doc__)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((options.host, options.port))
    s.listen(4096)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((options.host, options.udp_port))
    ready(s.getsockname(), u.getsockname())
    threading.Thread(target=udpserver, args=(u,), daemon=True).start()
    while True:
        sock, addr = s.accept()
        # 用线程实现每个客户端的连接信息接收,互不干扰
        t = threading.Thread(target=tcplink, args=(sock, addr))
        t.start()


if __name__ == "__main__":
    main()
