"""
Tests for L{greetd.daemon.pool.service}: the pool's log namespaces and the
parent's services.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from greetd.daemon.pool import (
    COUNTS_FD,
    SharedSocket,
    WorkerPool,
    WorkerProtocol,
)
from greetd.daemon.tap import makeService
from tests.helpers import FakeProcess, daemonOptions


class ServiceTests(SynchronousTestCase):
    def test_namespaces(self) -> None:
        """
        The pool's lines keep the namespaces they had when the pool was one
        module, whichever module of the package writes them: operators may
        filter on them.
        """

        def spawn(slot: int, protocol: WorkerProtocol) -> Any:
            process = FakeProcess(100 + slot)
            protocol.makeConnection(process)  # type: ignore[arg-type]
            return process

        published: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(published.append)
        self.addCleanup(globalLogPublisher.removeObserver, published.append)
        pool = WorkerPool(1, spawn, Clock(), stopTimeout=6.0)
        pool.startService()
        pool.workers[1].childDataReceived(COUNTS_FD, b"{garbage\n")
        pool.reload()
        self.assertEqual(
            [(e.get("greetdEvent"), e["log_namespace"]) for e in published],
            [
                ("worker.start", "greetd.daemon.pool.WorkerPool"),
                (None, "greetd.daemon.pool.WorkerProtocol"),
                ("reload.start", "greetd.daemon.pool.WorkerPool"),
                ("worker.start", "greetd.daemon.pool.WorkerPool"),
            ],
        )

    def test_parentServices(self) -> None:
        """
        With C{--workers}, the parent binds each listener (in its privileged
        start) and runs a L{WorkerPool}: it serves no protocol itself.
        """
        service = makeService(
            daemonOptions("--workers", "3", "--tcp", "tcp:0", "--udp", "udp:0"), Clock()
        )
        *listeners, pool = list(service)
        self.assertEqual(
            [(child.kind, child.description) for child in listeners],  # type: ignore[attr-defined]
            [("TCP", "tcp:0"), ("UDP", "udp:0")],
        )
        assert isinstance(pool, WorkerPool)
        self.assertEqual((pool.count, pool.stopTimeout), (3, 6.0))
        for listener in listeners:
            listener.privilegedStartService()
            self.addCleanup(listener.stopService)
            self.assertIsInstance(listener.port, SharedSocket)  # type: ignore[attr-defined]
