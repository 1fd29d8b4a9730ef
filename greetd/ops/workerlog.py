"""
A pool worker's log lines, marked as its own: C{worker N pid P} in front
of the system of each event (the slot says which worker, the pid which run
of it), so that a text line reads C{[worker 1 pid 7 greetd.access#info]}
where the parent's reads C{[greetd.access#info]}, and can be told apart by
level alike; and, for the JSON log, the fields C{workerSlot} and
C{workerPid}; alike whether the worker writes them itself or its parent
relays them (L{greetd.ops.relay}).
"""

from __future__ import annotations

from twisted.logger import ILogObserver, LogEvent
from zope.interface import implementer


def workerSystem(slot: int, pid: int | None) -> str:
    """
    The system a worker's lines are marked with: C{worker N pid P}.
    """
    return f"worker {slot} pid {pid}"


def levelSystem(namespace: object, level: object) -> str:
    """
    The system Twisted's text lines give an event that has none of its
    own: C{namespace#level}, C{-} for what it lacks.
    """
    return f"{namespace}#{getattr(level, 'name', '-')}"


def markWorker(event: LogEvent, slot: int, pid: int | None) -> LogEvent:
    """
    C{event}, marked as worker C{slot}'s (pid C{pid}): the worker's mark,
    then the event's system, or (it has none, or C{-}) its namespace and
    level (L{levelSystem}).
    """
    system = event.get("log_system")
    if not system or system == "-":
        system = levelSystem(event.get("log_namespace", "-"), event.get("log_level"))
    return {
        **event,
        "log_system": f"{workerSystem(slot, pid)} {system}",
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
