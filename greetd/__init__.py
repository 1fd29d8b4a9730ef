"""
greetd: the greeting daemon, TCP greetings and UDP replies on Twisted.

The public API, importable from C{greetd} (its C{__all__}):

  - the TCP service: L{GreetingFactory} and L{GreetingProtocol};
  - the UDP service: L{ReplyProtocol};
  - both, as C{twistd greetd} builds them: L{Options} and L{makeService};
  - messages and replies: L{MessageFramer}, L{Message},
    L{MessageTooLong} and L{ReplyTemplate};
  - the TCP client: L{greetOverTCP}, L{Greetings} and
    L{GreetingClientProtocol};
  - the UDP client: L{greetOverUDP} and L{ReplyClientProtocol};
  - the clients' errors: L{GreetError} and its kinds L{GreetTimeout},
    L{NoReply}, L{PortUnreachable}, L{ServerError}, L{ServerRefused},
    L{UnexpectedReply}, L{StrayLine}, L{ReplyTooLong} and
    L{ConnectionClosed}.

Tests of programs that embed greetd or talk to it use L{greetd.inmemory}
(in memory, on a fake clock) or L{greetd.testing} (the real daemon).

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
    "StrayLine": "greetd.client.api",
    "UnexpectedReply": "greetd.client.api",
    "greetOverTCP": "greetd.client.api",
    "greetOverUDP": "greetd.client.api",
    "Message": "greetd.core.framing",
    "MessageFramer": "greetd.core.framing",
    "MessageTooLong": "greetd.core.framing",
    "ReplyTemplate": "greetd.core.template",
    "GreetingFactory": "greetd.protocols.greeting",
    "GreetingProtocol": "greetd.protocols.greeter",
    "ReplyProtocol": "greetd.protocols.datagram",
    "Options": "greetd.daemon.options",
    "makeService": "greetd.daemon.tap",
}

#: The public names, spelled out so that tools reading the source (pydoctor)
#: see them; they are the keys of L{_EXPORTS}.
__all__ = [
    "ConnectionClosed",
    "GreetError",
    "GreetTimeout",
    "GreetingClientProtocol",
    "GreetingFactory",
    "GreetingProtocol",
    "Greetings",
    "Message",
    "MessageFramer",
    "MessageTooLong",
    "NoReply",
    "Options",
    "PortUnreachable",
    "ReplyClientProtocol",
    "ReplyProtocol",
    "ReplyTemplate",
    "ReplyTooLong",
    "ServerError",
    "ServerRefused",
    "StrayLine",
    "UnexpectedReply",
    "greetOverTCP",
    "greetOverUDP",
    "makeService",
]


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
        StrayLine,
        UnexpectedReply,
        greetOverTCP,
        greetOverUDP,
    )
    from greetd.core.framing import Message, MessageFramer, MessageTooLong
    from greetd.core.template import ReplyTemplate
    from greetd.daemon.options import Options
    from greetd.daemon.tap import makeService
    from greetd.protocols.datagram import ReplyProtocol
    from greetd.protocols.greeter import GreetingProtocol
    from greetd.protocols.greeting import GreetingFactory
