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
    removed); then L{ExitStatus}, an exit hook registered before any other
    of greetd's, exits with 1 once every other hook has run.
"""

from __future__ import annotations

import atexit
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
    Exits with the status L{fail} sets, if any, from an C{atexit} hook.

    C{atexit} runs its hooks last-registered first, and an exit that sets a
    status (C{os._exit}) ends the process at once: the hook is registered
    when C{twistd greetd} parses its options, before greetd registers any
    other (the log's L{BatchedWriter.drain
    <greetd.ops.logfile.BatchedWriter.drain>} among them), so that it runs
    after them all.

    @ivar status: The status to exit with; 0 leaves the exit to Python.
    """

    status = 0

    def __init__(self, exit: Callable[[int], object] = os._exit) -> None:
        self._exit = exit
        atexit.register(self._atExit)

    def fail(self, status: int = 1) -> None:
        """
        Exit with C{status}, once the process exits.
        """
        self.status = status

    def _atExit(self) -> None:
        if not self.status:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        self._exit(self.status)
