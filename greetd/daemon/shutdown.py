"""
Graceful shutdown for the greeting service.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.defer import Deferred

from greetd.protocols.greeting import GreetingFactory

#: Seconds to let connections finish writing before they are cut.
DEFAULT_SHUTDOWN_TIMEOUT = 5.0


class DrainService(Service):
    """
    When stopped, close every connection of a L{GreetingFactory} once the
    replies it is owed are written, cutting those left after a timeout.

    twistd waits for the L{Deferred} L{stopService} returns before it stops
    the reactor, which would otherwise drop connections with replies still
    in their buffers.  Listeners are stopped alongside, so nothing new
    arrives meanwhile.

    @ivar factory: The factory whose connections to close.
    @ivar timeout: Seconds to wait before aborting what is left.
    """

    def __init__(
        self, factory: GreetingFactory, timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    ) -> None:
        self.factory = factory
        self.timeout = timeout

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        return self.factory.closeAll(self.timeout)
