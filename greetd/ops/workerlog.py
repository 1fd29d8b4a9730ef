"""
A pool worker's log lines, marked as its own: C{worker N pid P} as the
system of each event (the slot says which worker, the pid which run of
it) and, for the JSON log, the fields C{workerSlot} and C{workerPid};
alike whether the worker writes them itself or its parent relays them
(L{greetd.ops.relay}).
"""

from __future__ import annotations

from twisted.logger import ILogObserver, LogEvent
from zope.interface import implementer


def workerSystem(slot: int, pid: int | None) -> str:
    """
    The system a worker's lines are marked with: C{worker N pid P}.
    """
    return f"worker {slot} pid {pid}"


def markWorker(event: LogEvent, slot: int, pid: int | None) -> LogEvent:
    """
    C{event}, marked as worker C{slot}'s (pid C{pid}): its system, if it
    has one, follows the worker's.
    """
    prefix = workerSystem(slot, pid)
    system = event.get("log_system")
    hasSystem = system and system != "-"
    return {
        **event,
        "log_system": f"{prefix} {system}" if hasSystem else prefix,
        "workerSlot": slot,
        "workerPid": pid,
    }


@implementer(ILogObserver)
class WorkerMarks:
    """
    Passes each event on marked as one worker's (L{markWorker}).
    """

    def __init__(self, observer: ILogObserver, slot: int, pid: int) -> None:
        self._observer = observer
        self._slot = slot
        self._pid = pid

    def __call__(self, event: LogEvent) -> None:
        self._observer(markWorker(event, self._slot, self._pid))
