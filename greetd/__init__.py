"""
greetd: the greeting daemon, TCP greetings and UDP replies on Twisted.

The public API: L{GreetingFactory} and L{GreetingProtocol} for the TCP
service, L{ReplyProtocol} for the UDP one, and L{Options} and
L{makeService} to build both as C{twistd greetd} does; the clients
L{GreetingClientProtocol} and L{greetOverTCP} (TCP) and
L{ReplyClientProtocol} and L{greetOverUDP} (UDP), and their errors.
"""

from greetd.client.api import (
    ConnectionClosed,
    GreetError,
    GreetingClientProtocol,
    Greetings,
    GreetTimeout,
    NoReply,
    PortUnreachable,
    ReplyClientProtocol,
    ServerError,
    greetOverTCP,
    greetOverUDP,
)
from greetd.core.framing import Message, MessageFramer, MessageTooLong
from greetd.core.template import ReplyTemplate
from greetd.daemon.options import Options
from greetd.daemon.tap import makeService
from greetd.protocols.datagram import ReplyProtocol
from greetd.protocols.greeting import GreetingFactory, GreetingProtocol

__version__ = "0.1.0"

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
    "ServerError",
    "greetOverTCP",
    "greetOverUDP",
    "makeService",
]
