"""
The namespaces of the pool's log lines, which operators may filter on:
they stay those of the module the pool once was, whichever module of the
package writes a line.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

#: The namespace of the pool's own lines: starts, deaths, restarts, reloads.
POOL = "greetd.daemon.pool.WorkerPool"

#: The namespace of the lines about one worker's pipes.
WORKER = "greetd.daemon.pool.WorkerProtocol"


class PinnedLogger(Logger):
    """
    A L{Logger} for a class attribute whose namespace is the one it is
    given, not its class's, as a plain L{Logger} would take.
    """

    def __get__(self, instance: object, owner: type | None = None) -> Logger:
        source: Any = owner if instance is None else instance
        return self.__class__(self.namespace, source, observer=self.observer)
