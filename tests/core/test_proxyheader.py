"""
Tests for L{greetd.core.proxyheader}.
"""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from greetd.core.proxyheader import (
    INCOMPLETE,
    MAX_DATAGRAM_HEADER,
    MAX_STREAM_HEADER,
    V1_MAX_LENGTH,
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderError,
    ProxyHeaderParser,
    splitDatagramHeader,
)

V1 = b"PROXY TCP4 192.0.2.7 127.0.0.1 5555 9999\r\n"


def v2(
    command: int = 0x1,
    familyProtocol: int = 0x11,
    addresses: bytes = b"",
    tlvs: bytes = b"",
    version: int = 2,
) -> bytes:
    body = addresses + tlvs
    return (
        V2_SIGNATURE
        + struct.pack("!BBH", version << 4 | command, familyProtocol, len(body))
        + body
    )


def inet(source: str, destination: str, sport: int, dport: int) -> bytes:
    return (
        ipaddress.ip_address(source).packed
        + ipaddress.ip_address(destination).packed
        + struct.pack("!HH", sport, dport)
    )


V2_INET = v2(addresses=inet("192.0.2.7", "127.0.0.1", 5555, 9999))
V2_INET6 = v2(
    familyProtocol=0x21,
    addresses=inet("2001:db8::7", "::1", 5555, 9999),
    tlvs=b"\x04\x00\x02ab\x01\x00\x00",
)


def parse(data: bytes) -> object:
    return ProxyHeaderParser().feed(data)


def error(data: bytes) -> str:
    result = parse(data)
    assert isinstance(result, ProxyHeaderError), result
    return result.reason


class V1Tests(SynchronousTestCase):
    def test_tcp4(self) -> None:
        parser = ProxyHeaderParser()
        header = parser.feed(V1 + b"Michael")
        self.assertEqual(
            header,
            ProxyHeader(
                1, "TCP4", ("192.0.2.7", 5555), ("127.0.0.1", 9999), False, len(V1)
            ),
        )
        self.assertEqual(parser.rest, b"Michael")
        self.assertIs(parser.feed(b"\n"), header)
        self.assertEqual(parser.rest, b"Michael\n")

    def test_tcp6Canonical(self) -> None:
        header = parse(b"PROXY TCP6 2001:DB8:0::7 ::1 1 65535\r\n")
        assert isinstance(header, ProxyHeader)
        self.assertEqual(
            (header.source, header.destination), (("2001:db8::7", 1), ("::1", 65535))
        )

    def test_unknown(self) -> None:
        for line in (b"PROXY UNKNOWN\r\n", b"PROXY UNKNOWN 1.2.3.4 \xff junk\r\n"):
            header = parse(line)
            assert isinstance(header, ProxyHeader), line
            self.assertEqual(
                (header.family, header.source, header.local), ("UNKNOWN", None, False)
            )

    def test_incomplete(self) -> None:
        for length in range(len(V1)):
            self.assertIs(parse(V1[:length]), INCOMPLETE)

    def test_badAddresses(self) -> None:
        """
        Addresses and ports must be what the family names, as C{ipaddress}
        and the specification have them.
        """
        for line, reason in [
            (b"PROXY TCP4 abc 127.0.0.1 1 2\r\n", "bad source address"),
            (b"PROXY TCP4 1.2.3 127.0.0.1 1 2\r\n", "bad source address"),
            (b"PROXY TCP4 ::1 127.0.0.1 1 2\r\n", "bad source address"),
            (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "bad source address"),
            (b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", "bad source address"),
            (b"PROXY TCP4 1.2.3.4 1.2.3.256 1 2\r\n", "bad destination address"),
            (b"PROXY TCP4 1.2.3.4/8 1.2.3.4 1 2\r\n", "bad source address"),
            (b"PROXY TCP4 1.2.3.\xc3\xa9 1.2.3.4 1 2\r\n", "bad source address"),
            (b"PROXY TCP4 1.2.3.4 1.2.3.4 99999 2\r\n", "bad port"),
            (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 -2\r\n", "bad port"),
            (b"PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n", "bad port"),
            (b"PROXY TCP4 1.2.3.4 1.2.3.4 \xd9\xa1 2\r\n", "bad port"),
            (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n", "v1 header malformed"),
            (b"PROXY TCP4 1.2.3.4  1.2.3.4 1 2\r\n", "v1 header malformed"),
            (b"PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n", "v1 protocol not TCP4"),
            (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n", "v1 header not ended by CRLF"),
            (b"PROXY \x00\r\n", "v1 header malformed"),
            (b"PROXYTCP4\r\n", "not a PROXY header"),
            (b"GET / HTTP/1.0\r\n", "not a PROXY header"),
            (b"\r\n\r\nX", "not a PROXY header"),
        ]:
            self.assertTrue(error(line).startswith(reason), (line, error(line)))

    def test_tooLong(self) -> None:
        """
        Without a line ending in its first 107 bytes, it is not a header;
        one of exactly 107 bytes is.
        """
        self.assertEqual(error(b"PROXY UNKNOWN" + b" " * 200), "v1 header too long")
        longest = b"PROXY UNKNOWN " + b"x" * (V1_MAX_LENGTH - 16) + b"\r\n"
        self.assertEqual(len(longest), V1_MAX_LENGTH)
        self.assertIsInstance(parse(longest), ProxyHeader)
        self.assertEqual(error(longest[:-2] + b"x\r\n"), "v1 header too long")


class V2Tests(SynchronousTestCase):
    def test_inet(self) -> None:
        parser = ProxyHeaderParser()
        self.assertEqual(
            parser.feed(V2_INET + b"Tracy"),
            ProxyHeader(2, "TCP4", ("192.0.2.7", 5555), ("127.0.0.1", 9999), False, 28),
        )
        self.assertEqual(parser.rest, b"Tracy")

    def test_inet6WithTLVs(self) -> None:
        header = parse(V2_INET6)
        assert isinstance(header, ProxyHeader)
        self.assertEqual(
            (header.family, header.source, header.destination),
            ("TCP6", ("2001:db8::7", 5555), ("::1", 9999)),
        )

    def test_local(self) -> None:
        """
        A LOCAL command (a health check) is a header naming no address,
        whatever its family says, and is marked as local.
        """
        for family in (0x00, 0x11, 0xFF):
            header = parse(v2(command=0x0, familyProtocol=family, addresses=b"x" * 3))
            assert isinstance(header, ProxyHeader)
            self.assertEqual(
                (header.local, header.source, header.length), (True, None, 19)
            )

    def test_unspecAndUnix(self) -> None:
        for family, addresses in ((0x00, b""), (0x31, b"/x".ljust(216, b"\0"))):
            header = parse(v2(familyProtocol=family, addresses=addresses))
            assert isinstance(header, ProxyHeader)
            self.assertEqual(
                (header.family, header.source, header.local), ("UNKNOWN", None, False)
            )

    def test_incomplete(self) -> None:
        for length in range(len(V2_INET6)):
            self.assertIs(parse(V2_INET6[:length]), INCOMPLETE, length)

    def test_errors(self) -> None:
        addresses = inet("192.0.2.7", "127.0.0.1", 1, 2)
        for data, reason in [
            (v2(version=1, addresses=addresses), "v2 version not 2"),
            (v2(command=0x2, addresses=addresses), "v2 command not LOCAL or PROXY"),
            (
                v2(familyProtocol=0x41, addresses=addresses),
                "v2 family or protocol unknown",
            ),
            (
                v2(familyProtocol=0x13, addresses=addresses),
                "v2 family or protocol unknown",
            ),
            (v2(familyProtocol=0x12, addresses=addresses), "v2 protocol not STREAM"),
            (v2(addresses=addresses[:11]), "v2 addresses truncated"),
            (v2(familyProtocol=0x21, addresses=addresses), "v2 addresses truncated"),
            (v2(addresses=addresses, tlvs=b"\x04\x00\x05ab"), "v2 TLVs malformed"),
            (v2(addresses=addresses, tlvs=b"\x04\x00"), "v2 TLVs malformed"),
        ]:
            self.assertEqual(error(data), reason, data)

    def test_lengthBounded(self) -> None:
        """
        A header that says it is longer than L{MAX_STREAM_HEADER} (nginx's
        limit) is refused as soon as its 16-byte fixed part says so, rather
        than buffered while the rest arrives: a connection still sending
        its header holds at most that many bytes.  One that fits is read.
        """
        addresses = inet("192.0.2.7", "127.0.0.1", 1, 2)
        tlv = b"\x04" + struct.pack("!H", MAX_STREAM_HEADER - 16 - 12 - 3)
        fits = v2(addresses=addresses, tlvs=tlv + b"x" * (MAX_STREAM_HEADER - 31))
        self.assertEqual(len(fits), MAX_STREAM_HEADER)
        header = parse(fits)
        assert isinstance(header, ProxyHeader)
        self.assertEqual(header.length, MAX_STREAM_HEADER)
        for command in (0x0, 0x1):
            fixed = V2_SIGNATURE + struct.pack("!BBH", 0x20 | command, 0x11, 0xFFFF)
            self.assertEqual(
                error(fixed), f"PROXY header longer than {MAX_STREAM_HEADER} bytes"
            )
            tooLong = v2(command=command, addresses=b"x" * (MAX_STREAM_HEADER - 15))
            self.assertIsInstance(parse(tooLong), ProxyHeaderError)


def _splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    return [data[start:end] for start, end in zip([0, *points], [*points, len(data)])]


def concatenate(start: bytes, rest: bytes) -> bytes:
    # A function of our own: hypothesis cannot describe a builtin on PyPy.
    return start + rest


#: Bytes, often starting as a header does so that the parser goes deep.
streams = st.one_of(
    st.binary(max_size=400),
    st.builds(
        concatenate,
        st.sampled_from(
            [
                *(b"PROXY ", b"PROXY TCP4 ", b"PROXY TCP6 ", b"PROXY UNKNOWN"),
                *(V2_SIGNATURE, V2_SIGNATURE + b"\x21\x11", V2_SIGNATURE + b"\x20"),
            ]
        ),
        st.binary(max_size=300),
    ),
)


class ArbitraryBytesTests(SynchronousTestCase):
    @given(streams, st.lists(st.integers(0, 400), max_size=8))
    def test_anyBytes(self, data: bytes, cuts: list[int]) -> None:
        """
        Any bytes, however split, give the same answer as when fed at once:
        incomplete only while shorter than a possible header, and a header
        only with addresses C{ipaddress} accepts, of the family named.
        """
        whole = parse(data)
        parser = ProxyHeaderParser()
        results = [parser.feed(piece) for piece in _splits(data, cuts)]
        self.assertEqual(results[-1] if results else INCOMPLETE, whole)
        if whole is INCOMPLETE:
            self.assertLess(len(data), 16 + 0xFFFF)
        elif isinstance(whole, ProxyHeader):
            self.assertLessEqual(whole.length, len(data))
            self.assertEqual(parser.rest, data[whole.length :])
            for address in (whole.source, whole.destination):
                if address is None:
                    continue
                host, port = address
                parsed = ipaddress.ip_address(host)
                self.assertEqual(parsed.version, 4 if whole.family == "TCP4" else 6)
                self.assertTrue(0 <= port <= 0xFFFF)

    @given(
        st.sampled_from([V1, V2_INET, V2_INET6, b"PROXY UNKNOWN\r\n"]),
        st.lists(st.integers(0, 100), max_size=10),
        st.binary(max_size=20),
    )
    def test_validHeaderAnySplit(
        self, header: bytes, cuts: list[int], after: bytes
    ) -> None:
        """
        A valid header split anywhere parses as when it comes whole, and
        the bytes after it are kept.
        """
        parser = ProxyHeaderParser()
        results = [parser.feed(piece) for piece in _splits(header + after, cuts)]
        self.assertIsInstance(results[-1], ProxyHeader)
        self.assertEqual(results[-1], parse(header))
        self.assertEqual(parser.rest, after)

    @given(st.binary(min_size=1, max_size=60))
    def test_v1Junk(self, junk: bytes) -> None:
        """
        Whatever follows C{PROXY TCP4 }, the header is either refused or
        has addresses and ports that parse.
        """
        result = parse(b"PROXY TCP4 " + junk + b"\r\n")
        if isinstance(result, ProxyHeader):
            assert result.source is not None and result.destination is not None
            ipaddress.IPv4Address(result.source[0])
            ipaddress.IPv4Address(result.destination[0])


#: A version 2 PROXY command header, up to its family and protocol.
V2 = V2_SIGNATURE + b"\x21"


def v2Header(familyTransport: int, addresses: bytes) -> bytes:
    return V2 + bytes([familyTransport]) + struct.pack("!H", len(addresses)) + addresses


class SplitDatagramHeaderTests(SynchronousTestCase):
    """
    L{splitDatagramHeader} takes the PROXY header off a datagram, as nginx's
    C{proxy_protocol on} sends it for UDP.
    """

    def test_nginx(self) -> None:
        """
        What nginx 1.22 sends for UDP: a version 1 line (saying TCP4) and
        the client's datagram, in one datagram.
        """
        self.assertEqual(
            splitDatagramHeader(b"PROXY TCP4 127.0.0.2 127.0.0.1 38567 20000\r\nAlice"),
            (("127.0.0.2", 38567), b"Alice"),
        )
        self.assertEqual(
            splitDatagramHeader(b"PROXY TCP6 2001:db8::7 ::1 5000 9999\r\n"),
            (("2001:db8::7", 5000), b""),
        )

    def test_version2(self) -> None:
        addresses = bytes([192, 0, 2, 7, 127, 0, 0, 1]) + struct.pack("!HH", 4000, 53)
        self.assertEqual(
            splitDatagramHeader(v2Header(0x12, addresses) + b"hi"),
            (("192.0.2.7", 4000), b"hi"),
        )
        local = V2[:-1] + b"\x20\x00\x00\x00"
        self.assertEqual(splitDatagramHeader(local + b"hi"), (None, b"hi"))

    def test_unknown(self) -> None:
        """
        A header that names no client (the balancer speaking for itself)
        leaves the datagram's own source.
        """
        self.assertEqual(
            splitDatagramHeader(b"PROXY UNKNOWN x\r\nAlice"), (None, b"Alice")
        )

    def test_invalid(self) -> None:
        for datagram in [
            b"Alice",
            b"",
            b"PROXY TCP4 127.0.0.2",
            b"PROXY TCP4 host 127.0.0.1 1 2\r\nA",
            b"PROXY TCP4 2001:db8::7 127.0.0.1 1 2\r\nA",
            b"PROXY TCP4 127.0.0.2 127.0.0.1 65536 2\r\nA",
            b"PROXY TCP4 127.0.0.2 127.0.0.1 port 2\r\nA",
            b"PROXY TCP4 \xff 127.0.0.1 1 2\r\nA",
            b"PROXY UDP4 127.0.0.2 127.0.0.1 1 2\r\nA",
            b"PROXY " + b"x" * 200 + b"\r\nA",
            v2Header(0x12, b"\x00" * 4),
            v2Header(0x12, b"\x00" * MAX_DATAGRAM_HEADER),
            V2[:-1] + b"\x31\x12\x00\x00",
        ]:
            with self.assertRaises(ValueError, msg=repr(datagram)):
                splitDatagramHeader(datagram)

    @given(st.binary(max_size=600))
    def test_anyBytes(self, datagram: bytes) -> None:
        """
        Whatever a datagram holds, it is split or refused with a
        L{ValueError}, and the client's datagram is what followed a header.
        """
        for candidate in (datagram, b"PROXY " + datagram, V2 + datagram):
            try:
                client, payload = splitDatagramHeader(candidate)
            except ValueError:
                continue
            self.assertTrue(candidate.endswith(payload))
            if client is not None:
                self.assertLessEqual(0, client[1])
                self.assertLessEqual(client[1], 65535)
            self.assertLessEqual(len(candidate) - len(payload), MAX_DATAGRAM_HEADER)
