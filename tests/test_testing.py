"""
The integration-test harness in L{greetd.testing}.
"""

from __future__ import annotations

import signal
import subprocess

from twisted.trial.unittest import SynchronousTestCase

from greetd.testing import TIMEOUT, defaultSignals


class DefaultSignalsTests(SynchronousTestCase):
    def sigintIgnoredInChild(self, **kwargs: object) -> bool:
        """
        Whether a child process ignores SIGINT, as the kernel says (Python
        would not do: PyPy, unlike CPython, handles SIGINT whatever it
        inherits).
        """
        result = subprocess.run(
            ["grep", "^SigIgn:", "/proc/self/status"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=True,
            **kwargs,  # type: ignore[call-overload]
        )
        ignored = int(result.stdout.split()[1], 16)
        return bool(ignored & (1 << (signal.SIGINT - 1)))

    def test_restoresIgnoredSigint(self) -> None:
        """
        Started from a process that ignores SIGINT (a script's background
        job), a child started with L{defaultSignals} has SIGINT's default
        action, where without it the child ignores SIGINT too.
        """
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.addCleanup(signal.signal, signal.SIGINT, previous)
        self.assertTrue(self.sigintIgnoredInChild())
        self.assertFalse(self.sigintIgnoredInChild(preexec_fn=defaultSignals))
