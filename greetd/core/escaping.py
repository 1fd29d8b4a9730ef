"""
Escaping for log lines: peers control the bytes they send and, behind a
PROXY header or on a UNIX socket, part of what their address looks like;
nothing a peer supplies may reach a log line unescaped, or a client could
forge log lines or terminal escapes.
"""

from __future__ import annotations

import re
import unicodedata

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.interfaces import IAddress


def _byteEscape(byte: int) -> str:
    named = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x5C: "\\\\"}
    if byte in named:
        return named[byte]
    if 0x20 <= byte < 0x7F:
        return chr(byte)
    return f"\\x{byte:02x}"


_ESCAPES = tuple(_byteEscape(byte) for byte in range(256))


def escape(data: bytes | str) -> str:
    """
    Render untrusted bytes or text as one line of printable ASCII.

    Printable ASCII other than the backslash passes through; every other byte
    becomes a Python-style escape, so the result is unambiguous.  Text is
    escaped as its UTF-8 encoding.
    """
    # What is already printable ASCII without a backslash (an address, most
    # lines) comes back as it is, without a lookup for every byte.
    if isinstance(data, str):
        text: str | None = data
    else:
        text = data.decode("ascii") if data.isascii() else None
    if text is not None and text.isascii() and text.isprintable() and "\\" not in text:
        return text
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    return "".join([_ESCAPES[byte] for byte in data])


#: Bytes that are not printable ASCII.
_NOT_PRINTABLE_ASCII = re.compile(rb"[^\x20-\x7e]")

#: The Unicode categories a terminal must not receive raw: controls (C0
#: and C1: ESC, CSI, OSC...), format characters (bidirectional overrides),
#: line and paragraph separators, and surrogates (the bytes that are not
#: UTF-8, decoded with C{surrogateescape}).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def _escapeChar(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def terminalText(data: bytes) -> bytes:
    """
    C{data} fit to print on a terminal: UTF-8 text in any script passes,
    but every control character (so no escape sequence: no OSC 52
    clipboard write, window title or screen clear), format character and
    line separator, and every byte that is not UTF-8, becomes a visible
    escape such as C{\\x1b}.
    """
    if not _NOT_PRINTABLE_ASCII.search(data):
        return data
    text = data.decode("utf-8", "surrogateescape")
    return "".join(
        [
            _escapeChar(char)
            if unicodedata.category(char) in _UNSAFE_CATEGORIES
            else char
            for char in text
        ]
    ).encode("utf-8")


def quote(data: bytes) -> str:
    """
    C{data} escaped and in single quotes, for messages.
    """
    return f"'{escape(data)}'"


def formatAddress(address: IAddress | object) -> str:
    """
    A short, escaped C{host:port} (C{[host]:port} for IPv6, the path for UNIX
    sockets) for logs.
    """
    if isinstance(address, IPv6Address):
        return f"[{escape(address.host)}]:{address.port}"
    if isinstance(address, IPv4Address):
        return f"{escape(address.host)}:{address.port}"
    if isinstance(address, UNIXAddress):
        name = address.name
        if name is None:
            return "unix:(unnamed)"
        return "unix:" + escape(name if isinstance(name, bytes) else str(name))
    if isinstance(address, tuple) and len(address) == 2:
        host, port = address
        if ":" in str(host):
            return f"[{escape(str(host))}]:{port}"
        return f"{escape(str(host))}:{port}"
    return escape(str(address))
