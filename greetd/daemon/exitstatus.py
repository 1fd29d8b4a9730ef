"""
The exit status of C{twistd greetd}: 1 when a listener fails, whether as
the daemon starts or later, with the pid file removed and every log line
written either way.

twistd decides how its process ends, and offers no status once its
reactor has run: it removes its pid file and returns, and the process
exits with 0.  So:

  - a listener that fails as twistd starts raises L{StartupFailed}, which
    twistd's start-up catches as an error (it removes the pid file and
    tells the parent it daemonized from, which then exits with 1), and
    which then ends the process as a C{SystemExit}, quietly, with status
    1;
  - one that fails later stops the reactor, so twistd shuts down as usual
    (services stopped, connections drained, log lines written, pid file
    removed); then L{ExitStatus} runs every exit hook and exits with 1.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
from typing import Callable


class StartupFailed(SystemExit, Exception):
    """
    A listener could not listen as twistd started; the line saying why is
    logged.  An C{Exception}, so that twistd's start-up removes its pid file
    and reports the failure to the parent it daemonized from, as it does for
    any error; a C{SystemExit}, so that the process then exits with status
    1 without a traceback.

    @ivar reason: What failed, for the parent twistd daemonized from.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(1)
        self.reason = reason

    def __str__(self) -> str:
        # What twistd's daemonizing parent prints: the code is 1.
        return self.reason


class ExitStatus:
    """
    Exits with the status L{fail} sets, if any, from an C{atexit} hook,
    once every other exit hook has run.

    Neither twistd nor Python offers a way to set the status once twistd's
    C{main} has returned, so the hook ends the process with C{os._exit},
    which runs nothing after it.  C{atexit} runs its hooks last-registered
    first: L{fail} registers the hook afresh, so that it is the last one
    registered and runs first; it then runs all the others, in C{atexit}'s
    order, through C{atexit._run_exitfuncs} (CPython's and PyPy's), those
    registered before greetd parsed its options too (a C{sitecustomize}'s,
    coverage.py's, C{logging.shutdown}, the log's L{BatchedWriter.drain
    <greetd.ops.logfile.BatchedWriter.drain>}).  A hook registered after
    L{fail} runs before this one and again from it; greetd registers none
    while it shuts down.

    @ivar status: The status to exit with; 0 leaves the exit to Python.
    """

    status = 0

    def __init__(self, exit: Callable[[int], object] = os._exit) -> None:
        self._exit = exit

    def fail(self, status: int = 1) -> None:
        """
        Exit with C{status}, once the process exits and every exit hook
        has run.
        """
        self.status = status
        atexit.unregister(self._atExit)
        atexit.register(self._atExit)

    def _atExit(self) -> None:
        atexit.unregister(self._atExit)
        atexit._run_exitfuncs()
        # What Python's own exit would still do: flush the standard streams
        # and (PyPy) the files that nothing refers to any more.
        gc.collect()
        sys.stdout.flush()
        sys.stderr.flush()
        self._exit(self.status)
