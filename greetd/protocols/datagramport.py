"""
A UDP port that reads datagrams and answers their sources through the C
library directly, on PyPy.

PyPy's C{socket.recvfrom} costs about 0.6 us a datagram more than the
system call: among other things it writes the source's address out as
text through the C library's C{printf}, and C{sendto} parses it back.
Called through cffi (L{greetd.protocols.clib}), C{recvfrom} fills one
buffer kept for the port and a C{sockaddr_in}; the source's address is
text only once per address (L{DatagramPort.maxHosts} kept), and a reply
to the datagram being handled is sent to the C{sockaddr_in} as received
(L{DatagramPort.replyTo}), with nothing parsed.

Only IPv4 ports are read this way, and only on PyPy, where cffi is built
in: CPython's own socket calls cost less than its cffi calls do, and an
IPv6 port is read by Twisted's C{doRead}.  What Twisted's C{doRead} does
is kept: a read ends at C{maxThroughput} bytes or when the socket has
nothing more, errors that it ignores are ignored, an exception in the
protocol is logged and the next datagram read.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

from twisted.internet import udp
from twisted.python import log

from greetd.protocols.clib import LIBC as _C

#: The errors a read stops at quietly, as Twisted's C{udp.Port.doRead}.
_READ_IGNORED = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR})
_READ_REFUSED = frozenset({errno.ECONNREFUSED})


def readsDirectly() -> bool:
    """
    Whether L{DatagramPort}s on IPv4 read through the C library here.
    """
    return _C is not None


class DatagramPort(udp.Port):
    """
    A UDP port whose IPv4 datagrams are read, and their replies sent,
    through the C library, on PyPy (L{readsDirectly}); elsewhere Twisted's
    own.

    @cvar maxHosts: The most source addresses whose text is kept: a
        table of attacker-chosen keys, so bounded, and emptied when full.
    """

    maxHosts = 4096

    _direct = False
    _source: object = None

    def startListening(self) -> None:
        super().startListening()  # type: ignore[no-untyped-call]
        # The socket's own, which still raises OSError once it is closed.
        self._sendto = self.socket.sendto
        if _C is None or self.addressFamily != socket.AF_INET:
            return
        ffi, self._lib = _C
        self._ffi = ffi
        self._fd: int = self.socket.fileno()
        self._buffer = ffi.new("char[]", max(self.maxPacketSize, 1))
        self._address = ffi.new("struct sockaddr_in *")
        self._addressSize: int = ffi.sizeof("struct sockaddr_in")
        self._addressLength = ffi.new("socklen_t *")
        self._hosts: dict[int, str] = {}
        self._direct = True

    @property
    def direct(self) -> bool:
        """
        Whether this port reads its datagrams, and answers them, through the
        C library (an IPv4 port on PyPy, not connected).
        """
        return self._direct

    def connectionLost(self, reason: Any = None) -> None:
        self._direct = False
        self._source = None
        super().connectionLost(reason)  # type: ignore[no-untyped-call]

    def connect(self, host: str, port: int) -> None:
        """
        Connect the port to one peer, as Twisted's own; from then on it is
        read as Twisted reads, which tells the protocol of refusals.
        """
        super().connect(host, port)  # type: ignore[no-untyped-call]
        self._direct = False

    def doRead(self) -> None:
        """
        Read datagrams until the socket has no more or C{maxThroughput}
        bytes are read, and hand each to the protocol.
        """
        if not self._direct:
            udp.Port.doRead(self)
            return
        ffi, recvfrom = self._ffi, self._lib.recvfrom
        fd, buffer = self._fd, self._buffer
        # The buffer's size, not maxPacketSize, which may have grown since.
        size = len(buffer)
        address, addressLength = self._address, self._addressLength
        addressSize, hosts = self._addressSize, self._hosts
        protocol = self.protocol
        read = 0
        while read < self.maxThroughput:
            self._source = None
            addressLength[0] = addressSize
            length = recvfrom(fd, buffer, size, 0, address, addressLength)
            if length < 0:
                number = ffi.errno
                if number in _READ_IGNORED or number in _READ_REFUSED:
                    return
                raise OSError(number, os.strerror(number))
            read += length
            ip = address.sin_addr
            host = hosts.get(ip)
            if host is None:
                host = self._hostText(ip)
            port = address.sin_port
            source = (host, port[0] << 8 | port[1])
            self._source = source
            try:
                protocol.datagramReceived(ffi.unpack(buffer, length), source)
            except BaseException:
                log.err()
            # A reply is sent to the address as received only while its
            # datagram is handled: later, the descriptor may be another's.
            self._source = None

    if _C is None:
        # Nothing reads directly here: the reactor calls Twisted's doRead
        # without a call in between, once an event.
        doRead = udp.Port.doRead

    def _hostText(self, ip: int) -> str:
        """
        The text of the IPv4 address C{ip} (its C{sin_addr}, as read), kept
        for the next datagram from it.
        """
        hosts = self._hosts
        if len(hosts) >= self.maxHosts:
            hosts.clear()
        host = socket.inet_ntoa(self._ffi.buffer(self._address, 8)[4:8])
        hosts[ip] = host
        return host

    def replyTo(self, datagram: bytes, address: Any) -> None:
        """
        Send C{datagram} to C{address}: when it is the source object the
        protocol was handed for the datagram it is handling, to the
        source's address as received, unparsed.

        @raise OSError: As C{socket.sendto} does, when it is not sent.
        """
        if address is not self._source:
            self._sendto(datagram, address)
            return
        sendto = self._lib.sendto
        while (
            sendto(
                self._fd,
                datagram,
                len(datagram),
                0,
                self._address,
                self._addressSize,
            )
            < 0
        ):
            number = self._ffi.errno
            if number != errno.EINTR:
                raise OSError(number, os.strerror(number))
