"""
The access log as C{twistd greetd} writes it: the lines of
L{greetd.protocols.accesslog}, written straight to the log's stream in the
log's own format, text or JSON.

A connection is cheap and Twisted's log publisher is not: an event is a
dict, a walk through the observers and the level filter, and a
C{string.Formatter} and a C{strftime} to format it, which cost more than
greetd's whole work for the connection.  Here a line is one C{%} format:
the timestamp is made once a second, the text's shape is fixed, and the
stream batches lines (L{greetd.ops.logfile.BatchedWriter}), a text line
made only when its batch is written.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from json import encoder

from twisted.logger import LogLevel, formatTime

from greetd.core.accessline import NAMESPACE, AccessLog, Closed
from greetd.ops.log import LogOutput

#: A closed connection's line in the JSON format
#: (L{greetd.ops.jsonlog.eventAsJSONLine}).
JSON_LINE = (
    '{"timestamp": "%s.%06d+00:00", "level": "info", '
    '"namespace": "' + NAMESPACE + '", "text": %s, "peer": %s, '
    '"duration": %.6f, "messages": %d, "bytesReceived": %d, "bytesSent": %d, '
    '"ended": "%s", "greetdEvent": "connection.close"%s%s}\n'
)


#: A JSON string literal for text: C{json}'s own C-accelerated quoting.
jsonString = encoder.encode_basestring_ascii


class FastAccessLog:
    """
    Writes access lines to this process's log output (L{LogOutput}) once
    its observer writes, marked as a pool worker's in a worker, and through
    L{twisted.logger} otherwise (before then, to syslog, through another
    C{--logger}, in a worker whose parent relays its log).

    @ivar output: Where and how the log is written.
    @ivar fallback: The access log used when C{output} has no stream: a
        L{LoggerAccessLog <greetd.protocols.accesslog.LoggerAccessLog>}.
    """

    def __init__(self, output: LogOutput, fallback: AccessLog) -> None:
        self.output = output
        self.fallback = fallback
        self._second = -1
        self._textStamp = ""
        self._isoStamp = ""

    def wantsOpened(self) -> bool:
        return self.output.stream is None or self.output.enabled(LogLevel.debug)

    def opened(self, peer: str) -> None:
        self.fallback.opened(peer)

    def closed(self, connection: Closed) -> None:
        output = self.output
        stream = output.stream
        if stream is None:
            self.fallback.closed(connection)
            return
        if not output.enabled(LogLevel.info):
            return
        now = time.time()
        second = int(now)
        if second != self._second:
            self._stamp(second)
        if output.json:
            host, port = connection.host, connection.port
            peerFields = (
                ""
                if host is None or port is None
                else f', "peerHost": {jsonString(host)}, "peerPort": {port:d}'
            )
            if connection.via is not None:
                peerFields += f', "via": {jsonString(connection.via)}'
            line = JSON_LINE % (
                self._isoStamp,
                int((now - second) * 1e6),
                jsonString(connection.text),
                jsonString(connection.peer),
                connection.duration,
                connection.messages,
                connection.bytesReceived,
                connection.bytesSent,
                connection.ended,
                peerFields,
                output.jsonFields,
            )
        else:
            stream.writeLater((_textLine, self._textStamp, output.system, connection))
            return
        stream.write(line)

    def healthCheckClosed(self, connection: Closed) -> None:
        # A few a second, at debug level: through Twisted's logger.
        self.fallback.healthCheckClosed(connection)

    def _stamp(self, second: int) -> None:
        # Once a second: twistd's text timestamp, and the JSON one's prefix.
        self._second = second
        self._textStamp = formatTime(float(second))
        self._isoStamp = datetime.fromtimestamp(second, timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%S"
        )


def _textLine(stamp: str, system: str, connection: Closed) -> str:
    """
    A closed connection's line in the text format, made when its batch is
    written (L{BatchedWriter.writeLater
    <greetd.ops.logfile.BatchedWriter.writeLater>}).
    """
    return f"{stamp} [{system}] {connection.text}\n"
