"""
The PROXY protocol header (HAProxy's C{send-proxy}, versions 1 and 2),
parsed without I/O: feed bytes in, get back L{INCOMPLETE}, a
L{ProxyHeader} or a L{ProxyHeaderError}.

The header is the first thing on a connection, and whoever can reach a
C{haproxy:} listener can write it: the parser is strict, as the
specification asks (U{https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt}),
bounds what it buffers, and returns addresses only once the C{ipaddress}
module has accepted them as addresses of the family the header names, so
nothing downstream keys a table on junk.

Why not Twisted's parser (C{twisted.protocols.haproxy}):
  - Strictness: it takes any bytes for an address (C{TCP4 junk ...}
    becomes an C{IPv4Address} of junk), ignores what follows the
    destination port, and reads ports with C{int()}, which accepts signs,
    spaces and numbers above 65535.
  - Datagrams: it offers only a wrapping factory for stream connections,
    while C{haproxy:udp:} listeners read a header at the head of each
    datagram.
  - No private names: its parsers live in private modules
    (C{_v1parser}, C{_v2parser}); its only public name is
    C{proxyEndpoint}, a wrapper of stream endpoints with the parsing
    above.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Tuple, Union

#: A PROXY address: C{(host, port)}, the host as C{ipaddress} spells it.
Address = Tuple[str, int]

#: How a version 1 header starts.
V1_PREFIX = b"PROXY "

#: The longest version 1 header, its CRLF included.
V1_MAX_LENGTH = 107

#: The twelve bytes that start a version 2 header.
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"

#: A version 2 header's fixed part: signature, version and command,
#: family and protocol, and the length of the rest.
V2_FIXED_LENGTH = 16

#: The address part of a version 2 header for each family it may name,
#: by the high nibble of its 14th byte: UNSPEC, INET, INET6, UNIX.
_V2_ADDRESS_LENGTHS = {0x0: 0, 0x1: 12, 0x2: 36, 0x3: 216}

_V2_LOCAL = 0x0
_V2_PROXY = 0x1
_V2_UNSPEC_PROTOCOL = 0x0
_V2_STREAM = 0x1
_V2_DGRAM = 0x2

#: The most bytes a PROXY header at the start of a datagram may take: the
#: 536 bytes of the smallest TCP segment, which the specification sizes
#: headers to fit (a version 1 line is at most 107 bytes; version 2 leaves
#: room for TLVs).
MAX_DATAGRAM_HEADER = 536

#: The most bytes a PROXY header at the start of a connection may take,
#: TLVs included: nginx's own limit (C{NGX_PROXY_PROTOCOL_MAX_HEADER}).  A
#: version 2 header says its length in its first 16 bytes, up to 64 KiB;
#: one that says more than this is refused then, before it is buffered, so
#: a connection still sending its header holds at most this much.
MAX_STREAM_HEADER = 4096


@dataclass(frozen=True)
class ProxyHeader:
    """
    A parsed PROXY header.

    @ivar version: 1 or 2.
    @ivar family: C{"TCP4"}, C{"TCP6"}, or C{"UNKNOWN"} when the header
        names no IP addresses (v1 C{UNKNOWN}; v2 C{LOCAL}, C{AF_UNSPEC} or
        C{AF_UNIX}): the connection's own addresses are then to be used.
    @ivar source: The client's address, or C{None} for C{UNKNOWN}.
    @ivar destination: The address the client connected to, or C{None}.
    @ivar local: Whether this is a v2 C{LOCAL} command, which a proxy sends
        for its own connections (health checks) rather than a client's.
    @ivar length: How many bytes the header took.
    """

    version: int
    family: str
    source: Address | None
    destination: Address | None
    local: bool
    length: int


@dataclass(frozen=True)
class ProxyHeaderError:
    """
    Why bytes are not a PROXY header.

    @ivar reason: A few words, for the log (C{"bad source address"}).
    """

    reason: str


#: Why a PROXY header from a peer outside C{--proxy-from} is refused.
UNTRUSTED_PEER = "peer not in --proxy-from"


#: What L{ProxyHeaderParser.feed} returns while the header is incomplete.
INCOMPLETE = None

#: What L{ProxyHeaderParser.feed} returns.
Parsed = Union[ProxyHeader, ProxyHeaderError, None]


class ProxyHeaderParser:
    """
    Reads one PROXY header from the start of a byte stream.

    Feed it bytes until it returns a L{ProxyHeader} or a
    L{ProxyHeaderError}; then L{rest} holds the bytes after the header.

    @ivar rest: The bytes received after the header, once it is parsed.
    @ivar result: The header or error once there is one, else L{INCOMPLETE}.
    """

    def __init__(self, datagram: bool = False, maxLength: int = 0) -> None:
        """
        @param datagram: Whether the header is on a datagram, as nginx's
            C{proxy_protocol} puts one on each UDP datagram: a version 2
            header then names the C{DGRAM} protocol, not C{STREAM}.
        @param maxLength: The longest header accepted, in bytes: by default
            L{MAX_DATAGRAM_HEADER} on a datagram, else L{MAX_STREAM_HEADER}.
        """
        self.datagram = datagram
        if not maxLength:
            maxLength = MAX_DATAGRAM_HEADER if datagram else MAX_STREAM_HEADER
        self.maxLength = maxLength
        # A bytearray, so that a header trickled in byte by byte costs
        # linear time, not quadratic.
        self._buffer = bytearray()
        self.rest = b""
        self.result: Parsed = INCOMPLETE

    def feed(self, data: bytes) -> Parsed:
        """
        Add C{data} to what has been received.

        @return: L{INCOMPLETE} while the header may yet be valid, then the
            L{ProxyHeader} or L{ProxyHeaderError}, the same on every later
            call (further bytes are then added to L{rest}).
        """
        if self.result is not None:
            self.rest += data
            return self.result
        self._buffer += data
        result = _parse(self._buffer, self.datagram, self.maxLength)
        if result is not None:
            self.result = result
            if isinstance(result, ProxyHeader):
                self.rest = bytes(self._buffer[result.length :])
            self._buffer = bytearray()
        return result


def _parse(data: bytearray, datagram: bool, maxLength: int) -> Parsed:
    if data[:1] == V1_PREFIX[:1]:
        if not V1_PREFIX.startswith(data[: len(V1_PREFIX)]):
            return ProxyHeaderError("not a PROXY header")
        return _parseV1(data)
    if data[:1] == V2_SIGNATURE[:1]:
        if not V2_SIGNATURE.startswith(data[: len(V2_SIGNATURE)]):
            return ProxyHeaderError("not a PROXY header")
        return _parseV2(data, datagram, maxLength)
    if data:
        return ProxyHeaderError("not a PROXY header")
    return INCOMPLETE


def _parseV1(data: bytearray) -> Parsed:
    """
    C{PROXY TCP4|TCP6 SOURCE DESTINATION SPORT DPORT\\r\\n}, or
    C{PROXY UNKNOWN ...\\r\\n}, in at most L{V1_MAX_LENGTH} bytes.
    """
    end = data.find(b"\n", 0, V1_MAX_LENGTH)
    if end < 0:
        if len(data) >= V1_MAX_LENGTH:
            return ProxyHeaderError("v1 header too long")
        return INCOMPLETE
    if data[end - 1 : end] != b"\r":
        return ProxyHeaderError("v1 header not ended by CRLF")
    line = bytes(data[len(V1_PREFIX) : end - 1])
    length = end + 1
    if line.startswith(b"UNKNOWN") and line[7:8] in (b"", b" "):
        if b"\r" in line:
            return ProxyHeaderError("v1 header not ended by CRLF")
        return ProxyHeader(1, "UNKNOWN", None, None, False, length)
    fields = line.split(b" ")
    if len(fields) != 5:
        return ProxyHeaderError("v1 header malformed")
    family, source, destination, sourcePort, destinationPort = fields
    if family == b"TCP4":
        version = 4
    elif family == b"TCP6":
        version = 6
    else:
        return ProxyHeaderError("v1 protocol not TCP4, TCP6 or UNKNOWN")
    sourceHost = _v1Address(source, version)
    if sourceHost is None:
        return ProxyHeaderError("bad source address")
    destinationHost = _v1Address(destination, version)
    if destinationHost is None:
        return ProxyHeaderError("bad destination address")
    sport, dport = _v1Port(sourcePort), _v1Port(destinationPort)
    if sport is None or dport is None:
        return ProxyHeaderError("bad port")
    return ProxyHeader(
        1,
        family.decode("ascii"),
        (sourceHost, sport),
        (destinationHost, dport),
        False,
        length,
    )


def _v1Address(field: bytes, version: int) -> str | None:
    """
    The address C{field} as C{ipaddress} spells it, if it is one of IP
    C{version}, without a scope, a prefix or anything but ASCII.
    """
    if not field.isascii():
        return None
    text = field.decode("ascii")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if address.version != version or "%" in text:
        return None
    return str(address)


def _v1Port(field: bytes) -> int | None:
    """
    The port C{field}: decimal digits, no sign, no leading zero, at most
    65535.
    """
    if not (field.isdigit() and field.isascii() and len(field) <= 5):
        return None
    if len(field) > 1 and field[:1] == b"0":
        return None
    port = int(field)
    return port if port <= 0xFFFF else None


def _parseV2(data: bytearray, datagram: bool, maxLength: int) -> Parsed:
    """
    The binary header: signature, version and command, family and
    protocol, a length, the addresses, then TLVs, which are checked for
    framing and skipped; one longer than C{maxLength} is refused as soon as
    its length is read.
    """
    if len(data) < V2_FIXED_LENGTH:
        return INCOMPLETE
    versionCommand, familyProtocol, length = struct.unpack_from("!BBH", data, 12)
    if versionCommand >> 4 != 2:
        return ProxyHeaderError("v2 version not 2")
    command = versionCommand & 0xF
    if command not in (_V2_LOCAL, _V2_PROXY):
        return ProxyHeaderError("v2 command not LOCAL or PROXY")
    family, protocol = familyProtocol >> 4, familyProtocol & 0xF
    addressLength = _V2_ADDRESS_LENGTHS.get(family)
    if command == _V2_PROXY and (addressLength is None or protocol > 2):
        return ProxyHeaderError("v2 family or protocol unknown")
    total = V2_FIXED_LENGTH + length
    if total > maxLength:
        return ProxyHeaderError(f"PROXY header longer than {maxLength} bytes")
    if len(data) < total:
        return INCOMPLETE
    if command == _V2_LOCAL or addressLength is None:
        # A proxy's own connection (a health check): the family and the
        # rest of the block are to be ignored.
        return ProxyHeader(2, "UNKNOWN", None, None, True, total)
    body = bytes(data[V2_FIXED_LENGTH:total])
    if length < addressLength:
        return ProxyHeaderError("v2 addresses truncated")
    if not _tlvsFramed(body[addressLength:]):
        return ProxyHeaderError("v2 TLVs malformed")
    expected, protocolName = (
        (_V2_DGRAM, "DGRAM") if datagram else (_V2_STREAM, "STREAM")
    )
    if family in (0x1, 0x2) and protocol != expected:
        return ProxyHeaderError(f"v2 protocol not {protocolName}")
    if family == 0x1:
        source = str(ipaddress.IPv4Address(body[0:4]))
        destination = str(ipaddress.IPv4Address(body[4:8]))
        ports = struct.unpack_from("!HH", body, 8)
        name = "TCP4"
    elif family == 0x2:
        source = str(ipaddress.IPv6Address(body[0:16]))
        destination = str(ipaddress.IPv6Address(body[16:32]))
        ports = struct.unpack_from("!HH", body, 32)
        name = "TCP6"
    else:
        # AF_UNSPEC, or AF_UNIX, which names no IP address: use the
        # connection's own.
        return ProxyHeader(2, "UNKNOWN", None, None, False, total)
    return ProxyHeader(
        2, name, (source, ports[0]), (destination, ports[1]), False, total
    )


def _tlvsFramed(tlvs: bytes) -> bool:
    """
    Whether C{tlvs} is a whole number of type-length-value records.
    """
    offset = 0
    while offset < len(tlvs):
        if len(tlvs) - offset < 3:
            return False
        (length,) = struct.unpack_from("!H", tlvs, offset + 1)
        offset += 3 + length
    return offset == len(tlvs)


def splitDatagramHeader(datagram: bytes) -> tuple[Address | None, bytes]:
    """
    Split the PROXY header (version 1 or 2) a balancer put at the start of
    a datagram from the datagram the client sent, as nginx's
    C{proxy_protocol on} does for UDP: one header per datagram, in the same
    datagram.

    @return: The client's address, or C{None} for a header that names none
        (C{UNKNOWN}, C{LOCAL}: the balancer speaking for itself), and the
        client's datagram.
    @raise ValueError: For a datagram that does not start with a complete,
        valid header no longer than L{MAX_DATAGRAM_HEADER}, saying why.
    """
    parser = ProxyHeaderParser(datagram=True)
    result = parser.feed(datagram)
    if result is INCOMPLETE:
        raise ValueError("no complete PROXY header")
    if isinstance(result, ProxyHeaderError):
        raise ValueError(result.reason)
    return result.source, parser.rest
