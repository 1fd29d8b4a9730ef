"""
The C{greetd} twistd plugin.
"""

from twisted.application.service import ServiceMaker

Greetd = ServiceMaker(
    "greetd",
    "greetd.daemon.tap",
    "The greeting daemon: TCP greetings and UDP replies.",
    "greetd",
)
