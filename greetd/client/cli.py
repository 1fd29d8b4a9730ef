"""
C{greet}: the command-line client for both greetd services.

Exit status: 0 when every name got its reply, 1 when the session failed
(one line on standard error: the server's address and what happened), 2
for a usage error, 130 when a signal (SIGINT, SIGTERM) interrupted it.
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import react

from greetd.client.command import Session
from greetd.client.options import parse
from greetd.client.output import Output
from greetd.client.status import FAILED, OK, finish
from greetd.client.terminal import keepFlags


def _exit(status: int) -> None:
    # react() exits with 0 after any result, and with the code of a
    # SystemExit failure.
    if status != OK:
        raise SystemExit(status)


def _run(reactor: Any, argv: Sequence[str]) -> Deferred[None]:
    parsed = parse(argv, sys.stdout, sys.stderr)
    if isinstance(parsed, int):
        return succeed(parsed).addCallback(_exit)
    output = Output(reactor, parsed["names"])
    session = Session(parsed, output.write, output.names)

    running = session.run(reactor)

    def done(result: object) -> Deferred[None]:
        status = finish(result, session.address, sys.stderr)
        return output.close().addCallback(lambda _: _exit(status))

    def interrupted() -> Deferred[None] | None:
        # A signal stops the reactor under a session: end it (dropping the
        # connection), say so and exit non-zero, rather than exit 0.  Once
        # the session has its result, done (its first callback) has it.
        if running.called:
            return None
        running.cancel()
        return closing

    closing: Deferred[None] = running.addBoth(done)
    reactor.addSystemEventTrigger("before", "shutdown", interrupted)
    return closing


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run C{greet} with C{argv} (the command line by default) and return its
    exit status.
    """
    if argv is None:
        argv = sys.argv[1:]
    restore = keepFlags(0, 1)
    try:
        react(_run, (argv,))
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else FAILED
    finally:
        restore()
    return OK
