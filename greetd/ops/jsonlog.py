"""
The JSON log line: one log event as one JSON object on one line, for
journald and log shippers.  Every field a peer controls is escaped
(L{greetd.core.escaping}) before it reaches a line.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from typing import IO, Any

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.logger import FileLogObserver, LogEvent, formatEvent
from twisted.python.failure import Failure

from greetd.core.escaping import escape, formatAddress

#: The keys every JSON log line has (C{failure} only for an event with a
#: failure, C{peerHost} and C{peerPort} only for one with a peer); an
#: event's own field of one of these names is written as C{field_NAME}.
JSON_KEYS = frozenset(
    {"timestamp", "level", "namespace", "text", "failure", "peerHost", "peerPort"}
)

#: What L{twisted.python.log} adds to an event that its text already says.
_LEGACY_KEYS = frozenset({"message", "format", "time", "isError", "printed"})

_PEER = re.compile(r"\[(?P<v6>[^\]]*)\]:(?P<v6port>\d+)|(?P<v4>[^:]*):(?P<v4port>\d+)")


def jsonSafe(value: object) -> object:
    """
    C{value} as something C{json.dumps} writes faithfully: text, whole
    numbers, finite floats, booleans and C{None} as they are, lists and
    dicts item by item, bytes escaped (they may be a peer's), addresses
    formatted, and anything else as its C{str}.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return escape(bytes(value))
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonSafe(item) for item in value]
    if isinstance(value, dict):
        return {str(key): jsonSafe(item) for key, item in value.items()}
    if isinstance(value, (IPv4Address, IPv6Address, UNIXAddress)):
        return formatAddress(value)
    return str(value)


def peerFields(peer: object) -> dict[str, object]:
    """
    C{peerHost} and C{peerPort} for an event's C{peer}: an IP address, or the
    C{host:port} / C{[host]:port} text L{formatAddress} makes of one.
    """
    if isinstance(peer, (IPv4Address, IPv6Address)):
        return {"peerHost": escape(peer.host), "peerPort": peer.port}
    if isinstance(peer, str):
        match = _PEER.fullmatch(peer)
        if match:
            host = match.group("v6") if match.group("v6") is not None else match["v4"]
            port = match.group("v6port") or match.group("v4port")
            return {"peerHost": host, "peerPort": int(port)}
    return {}


def eventAsJSONLine(event: LogEvent) -> str:
    """
    One log event as one line of JSON: C{timestamp} (ISO 8601, UTC),
    C{level}, C{namespace}, C{text} (the formatted event), C{failure} (a
    traceback) when there is one, C{peerHost} and C{peerPort} when the event
    names a peer, and every field of the event's own (C{greetdEvent},
    C{peer}, counts...) made JSON-safe by L{jsonSafe} (but not the copies
    of the text that legacy C{log.msg} events carry).  Non-ASCII and control
    characters are JSON escapes, so a line never breaks and never carries a
    terminal escape.
    """
    level = event.get("log_level")
    record: dict[str, object] = {
        "timestamp": datetime.fromtimestamp(
            event.get("log_time", 0.0), timezone.utc
        ).isoformat(timespec="microseconds"),
        "level": jsonSafe(getattr(level, "name", level)),
        "namespace": jsonSafe(event.get("log_namespace")),
        "text": formatEvent(event),
    }
    failure = event.get("log_failure")
    if isinstance(failure, Failure):
        record["failure"] = failure.getTraceback()
    record.update(peerFields(event.get("peer")))
    legacy = event.get("log_namespace") == "log_legacy"
    for key, value in event.items():
        if key.startswith("log_") or (legacy and key in _LEGACY_KEYS):
            continue
        name = f"field_{key}" if key in JSON_KEYS else str(key)
        record[name] = jsonSafe(value)
    return json.dumps(record, ensure_ascii=True, allow_nan=False) + "\n"


def jsonFileLogObserver(outFile: IO[Any]) -> FileLogObserver:
    """
    A log observer that writes L{eventAsJSONLine} lines to C{outFile}.
    """
    return FileLogObserver(outFile, eventAsJSONLine)
