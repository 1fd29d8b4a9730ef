"""
The C{greetd} twistd plugin, and greetd's reactor as a reactor plugin.
"""

from twisted.application.reactors import Reactor
from twisted.application.service import ServiceMaker

Greetd = ServiceMaker(
    "greetd",
    "greetd.daemon.tap",
    "The greeting daemon: TCP greetings and UDP replies.",
    "greetd",
)

GreetdReactor = Reactor(
    "greetd",
    "greetd.daemon.reactor",
    "epoll without a log context around every event (twistd greetd's default)",
)
