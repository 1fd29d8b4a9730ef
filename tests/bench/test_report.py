"""
Tests for L{bench.report}: what a floor is, and how the worker pool is
judged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from bench.report import (
    POOL_PACE,
    Figures,
    checkLine,
    isFloor,
    paced,
    poolTargets,
    tables,
)
from bench.run import Server, unpaceAlone

POOL = "greetd-cpython-workers2"
SINGLE = "greetd-cpython"


@dataclass
class Shown:
    """
    A measured server, as L{bench.report} shows it.
    """

    key: str
    label: str
    greetd: bool = True


def figure(rate: float, cpu: float, offered: float = 0) -> dict[str, Any]:
    """
    One workload's figures: C{rate} a second at C{cpu} us each, at an
    C{offered} rate if one is given.
    """
    result: dict[str, Any] = {
        "value": rate,
        "server_us_per_op": cpu,
        "generator_cpu": 0.4,
        "parent_share": 0.003,
    }
    if offered:
        result["offered_rate"] = offered
    result["floor"] = isFloor("churn", result)
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
        self.assertEqual(check["rate"], 15000)
        self.assertIn("1.10x at 15,000/s each (at their most: 1.20x)", checkLine(check))

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
        self.assertIn("a window reached only 93% of the rate", checkLine(check))

    def test_passShortOfRate(self) -> None:
        """
        One pass that fell short of its rate is not hidden by a median that
        reached it.
        """
        figures = run(poolAtMost=48.0, poolPaced=50.0)
        figures[SINGLE][paced("churn")]["kept"] = 0.9
        check = self.churnCheck(figures)
        self.assertEqual(check["kept"], 0.9)
        self.assertFalse(check["met"])

    def test_oneRateMissing(self) -> None:
        """
        Where only one of the two has a figure at one rate (the other's
        windows failed), the target is not met and says which is missing,
        rather than falling back to the ratio at their most.
        """
        figures = run(poolAtMost=41.0, poolPaced=50.0)
        del figures[POOL][paced("churn")]
        check = self.churnCheck(figures)
        self.assertFalse(check["met"])
        self.assertEqual(
            checkLine(check).split(": ", 1)[1], "no figure at one rate for the pool"
        )
        figures = run(poolAtMost=41.0, poolPaced=50.0)
        figures[SINGLE][paced("churn")]["server_us_per_op"] = 0
        check = self.churnCheck(figures)
        self.assertFalse(check["met"])
        self.assertEqual(check["missing"], "no figure at one rate for one process")

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
        The figures at one rate have their own table, each throughput marked
        as not a capacity, and the targets give the rate, the ratio at their
        most in brackets and the judged one.
        """
        figures = run(poolAtMost=48.0, poolPaced=55.0)
        servers = [Shown(SINGLE, "one process"), Shown(POOL, "a pool")]
        text = tables(figures, servers, poolTargets(figures))
        self.assertIn("connection churn, a pool and one process at one rate", text)
        self.assertIn(">= 15,000", text)
        self.assertIn("at 15,000/s  (1.20) 1.10 *  yes", text)
        self.assertIn(f"{POOL_PACE:.0%} of one process's most", " ".join(text.split()))


class FloorTests(SynchronousTestCase):
    def test_generatorSide(self) -> None:
        """
        A throughput is a floor when the generator used 90% of its core or
        more, or when its core was that busy (its receipts' softirqs, or
        other work); not when the server's side alone was held back, as the
        C server across the veth pair is by its round trips.
        """
        self.assertTrue(
            isFloor("churn", {"generator_cpu": 0.9, "generator_core_busy": 0.5})
        )
        self.assertTrue(
            isFloor("churn", {"generator_cpu": 0.6, "generator_core_busy": 0.92})
        )
        roundTrips = {
            "generator_cpu": 0.65,
            "generator_core_busy": 0.69,
            "server_cpu": 0.75,
        }
        self.assertFalse(isFloor("tcp50", roundTrips))

    def test_olderRuns(self) -> None:
        """
        A run from before the generator's core was read marks a floor where
        the server used less than 90% of a core, as it did then.
        """
        self.assertTrue(isFloor("churn", {"generator_cpu": 0.6, "server_cpu": 0.8}))
        self.assertFalse(isFloor("churn", {"generator_cpu": 0.6, "server_cpu": 0.95}))

    def test_latencyBound(self) -> None:
        """
        One connection's ping-pong is bound by its round trips: never a floor.
        """
        self.assertFalse(isFloor("tcp1", {"generator_cpu": 0.95, "server_busy": 0.5}))


class UnpaceAloneTests(SynchronousTestCase):
    def test_unpaceAlone(self) -> None:
        """
        A one process is measured at one rate only beside the pool it sets
        the rate for; the pool keeps its pace.
        """
        single = Server(SINGLE, "one", [], pace=SINGLE)
        pool = Server(POOL, "pool", [], pace=SINGLE)
        other = Server("greetd-cpython-epoll", "epoll", [], pace="greetd-cpython-epoll")
        unpaceAlone([single, pool, other])
        self.assertEqual((single.pace, pool.pace, other.pace), (SINGLE, SINGLE, ""))
        unpaceAlone([single])
        self.assertEqual(single.pace, "")
