"""
C{--workers N}: one parent process binds every listening socket and runs N
worker processes that all serve them.

The parent binds with the C{socket} module and never accepts: each socket
has one accept queue (or one receive queue, for UDP) that every worker
reads from, so when a worker dies the connections still waiting in the
queue are accepted by the others.  C{SO_REUSEPORT} would give each worker
a queue of its own, and a worker's death would reset what was queued on it.
Each worker waits on the shared sockets with C{EPOLLEXCLUSIVE}, as nginx's
do (L{greetd.twisted_private.readExclusively}): a connection or a datagram
wakes one waiting worker, not every idle one.

Each worker (L{greetd.daemon.worker}) is C{python -m greetd.daemon.worker}, given the
parent's own greetd arguments and the listening sockets as inherited file
descriptors.  Its standard input is a pipe from the parent that the parent
never writes: end of file there means the parent is gone, and the worker
drains and exits.  It writes its counters to the parent over another pipe
(L{COUNTS_FD}) within a tenth of a second of a change
(L{greetd.daemon.worker.REPORT_INTERVAL}), so the parent's C{--metrics}
serves the sums.
It writes its own log lines, as nginx's workers do, never through the
parent (which a stalled parent would hold up): appended to the parent's log
file, which it inherits and reopens when the parent, having reopened its
own, forwards it L{REOPEN}; or to the standard output it shares with the
parent, never waiting for its reader (L{WorkerLog}).  Only where the parent
does not write its own lines (syslog, another C{--logger}) does it relay
them, over a pipe it never waits on (L{greetd.ops.relay}).

A reload (L{WorkerPool.reload}, on C{SIGHUP} to the parent) replaces the
workers one slot at a time, as nginx and gunicorn do: a new worker, running
the code on disk now, says L{READY} on its counters' pipe once it serves
every listener, and only then is the worker it replaces told to retire
(C{RETIRE}).  The shared accept queues never lack a reader, so no
connection is refused, and the retiring worker lets the sessions it holds
end by themselves.

One module a job:

  - L{wire <greetd.daemon.pool.wire>}: what parent and worker agree on
    (the worker's command line, its descriptors, the counters' pipe); the
    worker imports nothing else of the pool;
  - L{sockets <greetd.daemon.pool.sockets>}: the shared sockets, bound;
  - L{process <greetd.daemon.pool.process>}: the parent's end of one
    worker process;
  - L{supervisor <greetd.daemon.pool.supervisor>}: starting a worker in
    each slot (the one place a worker is started), restarting one that
    dies, stopping them all;
  - L{reload <greetd.daemon.pool.reload>}: replacing them one slot at a
    time;
  - L{service <greetd.daemon.pool.service>}: the pool, a supervisor that
    reloads, and the parent's services.
"""

from __future__ import annotations

from greetd.daemon.pool.process import Spawn, WorkerProtocol, spawnWorker
from greetd.daemon.pool.reload import READY_TIMEOUT, RollingReload
from greetd.daemon.pool.service import WorkerPool, workerPoolService
from greetd.daemon.pool.sockets import SharedSocket, bindShared, listenShared
from greetd.daemon.pool.supervisor import (
    FIRST_BACKOFF,
    MAX_BACKOFF,
    RESTART_WINDOW,
    Supervisor,
)
from greetd.daemon.pool.wire import (
    COUNTS_FD,
    FIRST_LISTENER_FD,
    LOG_FD,
    READY,
    READY_LINE,
    REOPEN,
    RETIRE,
    WorkerLog,
    formatInherited,
    parseInherited,
    workerCommand,
)

__all__ = [
    "COUNTS_FD",
    "FIRST_BACKOFF",
    "FIRST_LISTENER_FD",
    "LOG_FD",
    "MAX_BACKOFF",
    "READY",
    "READY_LINE",
    "READY_TIMEOUT",
    "REOPEN",
    "RESTART_WINDOW",
    "RETIRE",
    "RollingReload",
    "SharedSocket",
    "Spawn",
    "Supervisor",
    "WorkerLog",
    "WorkerPool",
    "WorkerProtocol",
    "bindShared",
    "formatInherited",
    "listenShared",
    "parseInherited",
    "spawnWorker",
    "workerCommand",
    "workerPoolService",
]
