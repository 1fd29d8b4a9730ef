"""
The integration-test harness in L{greetd.testing}.
"""

from __future__ import annotations

import signal
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from greetd.testing import TIMEOUT, defaultSignals

#: Prints whether a fresh Python handles SIGINT as it does by default.
SHOW_SIGINT = (
    "import signal; "
    "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
)


class DefaultSignalsTests(SynchronousTestCase):
    def sigintInChild(self, **kwargs: object) -> str:
        result = subprocess.run(
            [sys.executable, "-c", SHOW_SIGINT],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=True,
            **kwargs,  # type: ignore[call-overload]
        )
        return result.stdout.strip()

    def test_restoresIgnoredSigint(self) -> None:
        """
        Started from a process that ignores SIGINT (a script's background
        job), a child started with L{defaultSignals} gets Python's usual
        SIGINT handler, where without it the child ignores SIGINT too.
        """
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.addCleanup(signal.signal, signal.SIGINT, previous)
        self.assertEqual(self.sigintInChild(), "False")
        self.assertEqual(self.sigintInChild(preexec_fn=defaultSignals), "True")
