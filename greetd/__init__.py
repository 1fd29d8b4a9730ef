"""
greetd: the greeting daemon, TCP greetings and UDP replies on Twisted.

The public API: L{GreetingFactory} and L{GreetingProtocol} for the TCP
service, L{ReplyProtocol} for the UDP one, and L{Options} and
L{makeService} to build both as C{twistd greetd} does; the clients
L{GreetingClientProtocol} and L{greetOverTCP} (TCP) and
L{ReplyClientProtocol} and L{greetOverUDP} (UDP), and their errors.

Each name is imported when first used (PEP 562), so C{import greetd} and
the C{greet} command load neither the daemon's options nor
C{prometheus_client} and C{twisted.web}.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Where each public name lives.
_EXPORTS = {
    "ConnectionClosed": "greetd.client.api",
    "GreetError": "greetd.client.api",
    "GreetTimeout": "greetd.client.api",
    "GreetingClientProtocol": "greetd.client.api",
    "Greetings": "greetd.client.api",
    "NoReply": "greetd.client.api",
    "PortUnreachable": "greetd.client.api",
    "ReplyClientProtocol": "greetd.client.api",
    "ReplyTooLong": "greetd.client.api",
    "ServerError": "greetd.client.api",
    "ServerRefused": "greetd.client.api",
    "UnexpectedReply": "greetd.client.api",
    "greetOverTCP": "greetd.client.api",
    "greetOverUDP": "greetd.client.api",
    "Message": "greetd.core.framing",
    "MessageFramer": "greetd.core.framing",
    "MessageTooLong": "greetd.core.framing",
    "ReplyTemplate": "greetd.core.template",
    "GreetingFactory": "greetd.protocols.greeting",
    "GreetingProtocol": "greetd.protocols.greeting",
    "ReplyProtocol": "greetd.protocols.datagram",
    "Options": "greetd.daemon.options",
    "makeService": "greetd.daemon.tap",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'greetd' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:
    from greetd.client.api import (
        ConnectionClosed,
        GreetError,
        GreetingClientProtocol,
        Greetings,
        GreetTimeout,
        NoReply,
        PortUnreachable,
        ReplyClientProtocol,
        ReplyTooLong,
        ServerError,
        ServerRefused,
        UnexpectedReply,
        greetOverTCP,
        greetOverUDP,
    )
    from greetd.core.framing import Message, MessageFramer, MessageTooLong
    from greetd.core.template import ReplyTemplate
    from greetd.daemon.options import Options
    from greetd.daemon.tap import makeService
    from greetd.protocols.datagram import ReplyProtocol
    from greetd.protocols.greeting import GreetingFactory, GreetingProtocol
