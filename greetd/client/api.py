"""
Clients for both greetd services, for Twisted programs and for C{greet}.

L{GreetingClientProtocol} speaks the TCP greeting protocol to a daemon in
any framing, and L{greetOverTCP} runs a whole session over any client
endpoint.  L{ReplyClientProtocol} and L{greetOverUDP} are the UDP
counterparts, which resend a datagram that gets no reply.

Every wait for the server is bounded by a timeout, measured on an
L{IReactorTime <twisted.internet.interfaces.IReactorTime>} that tests
replace with a L{twisted.internet.task.Clock}.
Each name lives in a module of L{greetd.client} of its own; this one
gathers the public ones.
"""

from __future__ import annotations

from greetd.client.errors import (
    ConnectionClosed,
    GreetError,
    GreetTimeout,
    NoReply,
    PortUnreachable,
    ReplyTooLong,
    ServerError,
    ServerRefused,
    StrayLine,
    TLSFailed,
    UnexpectedReply,
)
from greetd.client.names import Names, OnReply, checkName
from greetd.client.tcp import GreetingClientProtocol, Greetings, greetOverTCP
from greetd.client.udp import DEFAULT_RETRIES, ReplyClientProtocol, greetOverUDP
from greetd.client.waiting import DEFAULT_TIMEOUT

__all__ = [
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "ConnectionClosed",
    "GreetError",
    "GreetTimeout",
    "GreetingClientProtocol",
    "Greetings",
    "Names",
    "NoReply",
    "OnReply",
    "PortUnreachable",
    "ReplyClientProtocol",
    "ReplyTooLong",
    "ServerError",
    "ServerRefused",
    "StrayLine",
    "TLSFailed",
    "UnexpectedReply",
    "checkName",
    "greetOverTCP",
    "greetOverUDP",
]
