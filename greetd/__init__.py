"""
greetd: the greeting daemon, TCP greetings and UDP replies on Twisted.

The public API: L{GreetingFactory} and L{GreetingProtocol} for the TCP
service, L{ReplyProtocol} for the UDP one, and L{Options} and
L{makeService} to build both as C{twistd greetd} does.
"""

from greetd.datagram import ReplyProtocol
from greetd.framing import Message, MessageFramer, MessageTooLong
from greetd.greeting import GreetingFactory, GreetingProtocol
from greetd.tap import Options, makeService
from greetd.template import ReplyTemplate

__version__ = "0.1.0"

__all__ = [
    "GreetingFactory",
    "GreetingProtocol",
    "Message",
    "MessageFramer",
    "MessageTooLong",
    "Options",
    "ReplyProtocol",
    "ReplyTemplate",
    "makeService",
]
