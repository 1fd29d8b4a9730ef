"""
Tests for L{bench.report}: how the worker pool is judged.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from bench.report import (
    POOL_PACE,
    Figures,
    checkLine,
    paced,
    poolTargets,
    tables,
)

POOL = "greetd-cpython-workers2"
SINGLE = "greetd-cpython"


def figure(rate: float, cpu: float, offered: float = 0) -> dict[str, Any]:
    result: dict[str, Any] = {
        "value": rate,
        "server_us_per_op": cpu,
        "generator_cpu": 0.4,
        "parent_share": 0.003,
    }
    if offered:
        result["offered_rate"] = offered
    return result


def run(poolAtMost: float, poolPaced: float, poolReached: float = 15000) -> Figures:
    """
    Churn figures of one process and a pool, at their most (the pool
    costing C{poolAtMost} us a connection against 40) and both at 15,000
    connections a second (C{poolPaced} against 50, the pool reaching
    C{poolReached} of them).
    """
    return {
        SINGLE: {
            "churn": figure(20000, 40.0),
            paced("churn"): figure(15000, 50.0, offered=15000),
        },
        POOL: {
            "churn": figure(17000, poolAtMost),
            paced("churn"): figure(poolReached, poolPaced, offered=15000),
        },
    }


class PoolTargetTests(SynchronousTestCase):
    def churnCheck(self, figures: Figures) -> dict[str, Any]:
        (check,) = [
            c
            for c in poolTargets(figures)
            if c["target"].startswith(f"{POOL} churn CPU")
        ]
        return check

    def test_judgedAtOneRate(self) -> None:
        """
        Where the pool and its one process were both measured at one rate,
        the pool is judged there, with the ratio at their most beside it.
        """
        check = self.churnCheck(run(poolAtMost=48.0, poolPaced=55.0))
        self.assertEqual(check["cost"], 1.1)
        self.assertEqual(check["saturated"], 1.2)
        self.assertTrue(check["met"])
        self.assertIn("at 15,000/s each", check["target"])
        self.assertIn("at their most: 1.20x", checkLine(check))

    def test_costlyAtOneRate(self) -> None:
        """
        A pool over the target at the one rate is not met, however it
        does at its most.
        """
        check = self.churnCheck(run(poolAtMost=40.0, poolPaced=60.0))
        self.assertEqual(check["cost"], 1.2)
        self.assertFalse(check["met"])

    def test_rateNotReached(self) -> None:
        """
        A pool that did not reach the rate it was offered was not measured
        at the one process's rate: not met, and the line says why.
        """
        check = self.churnCheck(run(poolAtMost=48.0, poolPaced=50.0, poolReached=14000))
        self.assertFalse(check["met"])
        self.assertIn("only 93% of the rate was reached", checkLine(check))

    def test_withoutOneRate(self) -> None:
        """
        Figures without the windows at one rate (a run made before them,
        or one with C{--rate}) are judged at the servers' most.
        """
        figures = run(poolAtMost=47.0, poolPaced=50.0)
        for key in figures:
            del figures[key][paced("churn")]
        check = self.churnCheck(figures)
        self.assertEqual(check["cost"], 1.175)
        self.assertNotIn("saturated", check)
        self.assertFalse(check["met"])

    def test_tables(self) -> None:
        """
        The figures at one rate have their own table, and the notes say
        at what share of one process's most they were taken.
        """
        figures = run(poolAtMost=48.0, poolPaced=55.0)
        text = tables(figures, [], poolTargets(figures))
        self.assertIn(f"{POOL_PACE:.0%} of one process's most", " ".join(text.split()))
