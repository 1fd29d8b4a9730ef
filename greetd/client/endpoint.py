"""
The client endpoints C{greet --connect} accepts: Twisted's, and C{tcp6:},
which Twisted has as a server endpoint only.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.endpoints import TCP6ClientEndpoint, clientFromString
from twisted.internet.interfaces import IStreamClientEndpoint

from greetd.core.description import parsePort, splitDescription
from greetd.core.tls import TLS_KINDS, requireTLS


def clientEndpoint(reactor: Any, description: str) -> IStreamClientEndpoint:
    """
    The client endpoint C{description} names: anything Twisted's
    C{clientFromString} knows, and C{tcp6:host=ADDRESS:port=PORT} (or
    C{tcp6:ADDRESS:PORT}, with an optional C{timeout=SECONDS}), which
    Twisted has as a server endpoint only.  C{tls:} and C{ssl:} are
    checked first for the TLS libraries and for trust roots that are a
    directory, as Twisted wants them.

    @raise ValueError: (and whatever C{clientFromString} raises) for a
        description that is not valid.
    """
    kind = description.split(":", 1)[0]
    if kind in TLS_KINDS:
        requireTLS()
        _checkTrustRoots(description)
    if kind != "tcp6":
        endpoint: IStreamClientEndpoint = clientFromString(reactor, description)
        return endpoint
    args, kwargs = splitDescription(description)
    return _tcp6(reactor, *args[1:], **kwargs)


def _checkTrustRoots(description: str) -> None:
    """
    Twisted reads C{trustRoots=} (C{tls:}) and C{caCertsDir=} (C{ssl:}) as
    a directory of C{*.pem} files, and fails without a word on anything
    else: say so.
    """
    _, kwargs = splitDescription(description)
    for key in ("trustRoots", "caCertsDir"):
        path = kwargs.get(key)
        if path is not None and not os.path.isdir(path):
            raise ValueError(
                f"{key}={path} is not a directory: name a directory of "
                "certificate authorities' *.pem files"
            )


def _tcp6(
    reactor: Any,
    host: str | None = None,
    port: str | None = None,
    timeout: str = "30",
) -> TCP6ClientEndpoint:
    if host is None or port is None:
        raise ValueError("tcp6 needs a host and a port: tcp6:host=\\:\\:1:port=9999")
    try:
        seconds = float(timeout)
    except ValueError:
        raise ValueError(f"timeout {timeout!r} is not a number") from None
    return TCP6ClientEndpoint(reactor, host, parsePort(port), seconds)


def parseEndpoint(description: str) -> object:
    from twisted.internet import reactor

    return clientEndpoint(reactor, description)
