"""
Tests for L{greetd.core.limits}.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any, Callable, Iterator

from twisted.trial.unittest import SynchronousTestCase

from greetd.core.limits import (
    ConnectionLimiter,
    KeyedRateLimiter,
    RecencyTable,
    Throttle,
    TokenBucket,
)


class TokenBucketTests(SynchronousTestCase):
    def test_burstThenRate(self) -> None:
        bucket = TokenBucket(rate=2, burst=3, now=0)
        self.assertEqual([bucket.take(0) for _ in range(4)], [True] * 3 + [False])
        self.assertFalse(bucket.take(0.4))
        self.assertTrue(bucket.take(0.5))
        self.assertFalse(bucket.take(0.5))

    def test_refillCapped(self) -> None:
        bucket = TokenBucket(rate=1, burst=2, now=0)
        bucket.take(0)
        self.assertFalse(bucket.full(0.5))
        self.assertTrue(bucket.full(1))
        self.assertEqual([bucket.take(100) for _ in range(3)], [True, True, False])


class KeyedRateLimiterTests(SynchronousTestCase):
    def test_perKey(self) -> None:
        limiter: KeyedRateLimiter[str] = KeyedRateLimiter(rate=2)
        self.assertEqual([limiter.allow("a", 0) for _ in range(3)], [True, True, False])
        self.assertTrue(limiter.allow("b", 0))
        self.assertTrue(limiter.allow("a", 0.5))

    def test_unlimited(self) -> None:
        limiter: KeyedRateLimiter[str] = KeyedRateLimiter(rate=0)
        self.assertTrue(all(limiter.allow("a", 0) for _ in range(1000)))
        self.assertEqual(len(limiter), 0)

    def test_tableBounded(self) -> None:
        """
        A flood of new sources cannot grow the table past C{maxTracked}:
        newcomers are refused until tracked buckets refill and are forgotten.
        """
        limiter: KeyedRateLimiter[int] = KeyedRateLimiter(rate=1, maxTracked=3)
        self.assertEqual(
            [limiter.allow(key, 0) for key in range(5)], [True] * 3 + [False] * 2
        )
        self.assertEqual(len(limiter), 3)
        self.assertTrue(limiter.allow(99, 1.0))
        self.assertEqual(len(limiter), 2)
        self.assertEqual(limiter.prune(1.0), 1)
        self.assertEqual(len(limiter), 1)

    def test_refund(self) -> None:
        """
        A refund gives back the token the last event took, up to the burst;
        refunding an unknown key does nothing.
        """
        limiter: KeyedRateLimiter[str] = KeyedRateLimiter(rate=1)
        self.assertTrue(limiter.allow("a", 0))
        limiter.refund("a")
        self.assertTrue(limiter.allow("a", 0))
        self.assertFalse(limiter.allow("a", 0))
        limiter.refund("a")
        limiter.refund("a")
        self.assertEqual([limiter.allow("a", 0) for _ in range(2)], [True, False])
        limiter.refund("b")
        self.assertEqual(len(limiter), 1)

    def test_trackedKeyCostsALookupAndAMove(self) -> None:
        """
        An event from a tracked key costs its table one lookup and one move
        to the newest end and forgets nothing, even at a rate at which every
        bucket is full again (stale) before its next event: busy sources'
        buckets are not forgotten and re-created on every event.
        """
        limiter: KeyedRateLimiter[int] = KeyedRateLimiter(rate=1e6)
        table = instrument(limiter._buckets)
        now = 0.0
        for key in range(20):
            now += 1e-5
            limiter.allow(key, now)
        buckets = dict(table)
        for event in range(1000):
            now += 1e-5
            before = table.operations
            self.assertTrue(limiter.allow(event % 20, now))
            self.assertEqual(table.operations - before, 2)
        self.assertEqual(dict(table), buckets)
        self.assertEqual(list(table)[-1], 999 % 20)

    def test_newKeyForgetsWhenFull(self) -> None:
        """
        A new key forgets stale buckets once the table holds
        L{RecencyTable.forgetFrom} entries.
        """
        limiter: KeyedRateLimiter[str] = KeyedRateLimiter(rate=1, maxTracked=2)
        limiter.allow("a", 0)
        limiter.allow("b", 0)
        self.assertFalse(limiter.allow("a", 0.5))
        self.assertTrue(limiter.allow("c", 2.0))
        self.assertEqual(list(limiter._buckets._entries), ["c"])

    def test_millionSources(self) -> None:
        """
        A million distinct sources, arriving faster than their buckets
        refill and more than the table holds, cost a bounded number of table
        operations each: full, the table refuses newcomers without looking
        at the rest, and it forgets refilled buckets oldest first.
        """
        limiter: KeyedRateLimiter[int] = KeyedRateLimiter(rate=1, maxTracked=50_000)
        table = instrument(limiter._buckets)
        allowed = countPerEvent(
            table, lambda key, now: limiter.allow(key, now), sources=1_000_000
        )
        self.assertLessEqual(len(limiter), 50_000)
        # One tracked source per 20 microseconds of fake time, over a second
        # of bucket lifetime: the table stays full, newcomers get in as the
        # oldest refill.
        self.assertGreater(allowed, 50_000)
        self.assertLess(allowed, 1_000_000)


class ConnectionLimiterTests(SynchronousTestCase):
    def test_unlimitedByDefault(self) -> None:
        limiter = ConnectionLimiter()
        for _ in range(1000):
            self.assertIsNone(limiter.admit("192.0.2.1", 0))
        self.assertEqual(limiter.open, 1000)

    def test_maxConnections(self) -> None:
        limiter = ConnectionLimiter(maxConnections=2)
        self.assertIsNone(limiter.admit("192.0.2.1", 0))
        self.assertIsNone(limiter.admit(None, 0))
        self.assertEqual(limiter.admit("192.0.2.2", 0), "max-connections")
        limiter.release(None)
        self.assertIsNone(limiter.admit("192.0.2.2", 0))

    def test_maxPerHost(self) -> None:
        limiter = ConnectionLimiter(maxPerHost=1)
        self.assertIsNone(limiter.admit("192.0.2.1", 0))
        self.assertEqual(limiter.admit("192.0.2.1", 0), "max-per-ip")
        self.assertIsNone(limiter.admit("192.0.2.2", 0))
        self.assertIsNone(limiter.admit(None, 0))
        self.assertIsNone(limiter.admit(None, 0))
        limiter.release("192.0.2.1")
        self.assertIsNone(limiter.admit("192.0.2.1", 0))

    def test_perHostRate(self) -> None:
        limiter = ConnectionLimiter(perHostRate=2)
        results = [limiter.admit("192.0.2.1", 0) for _ in range(3)]
        self.assertEqual(results, [None, None, "rate-per-ip"])
        self.assertEqual(limiter.open, 2)
        self.assertIsNone(limiter.admit("192.0.2.2", 0))
        self.assertIsNone(limiter.admit("192.0.2.1", 0.5))

    def test_releaseForgetsHost(self) -> None:
        limiter = ConnectionLimiter(maxPerHost=5)
        limiter.admit("192.0.2.1", 0)
        limiter.release("192.0.2.1")
        self.assertEqual((limiter.open, limiter._perHost), (0, {}))

    def test_holdUnderTotalCapOnly(self) -> None:
        """
        A connection whose client is not known yet (L{ConnectionLimiter.hold})
        takes a place under the total cap alone: not under the per-source
        cap nor the rate, which apply to the clients a balancer's headers
        name.
        """
        limiter = ConnectionLimiter(maxConnections=5, maxPerHost=2, perHostRate=1)
        self.assertIsNone(limiter.admit("127.0.0.1", 0))
        self.assertEqual(
            [limiter.hold() for _ in range(5)], [None] * 4 + ["max-connections"]
        )
        self.assertEqual((limiter.open, limiter.held), (5, 4))
        for _ in range(4):
            limiter.unhold()
        self.assertEqual((limiter.open, limiter.held), (1, 0))
        self.assertEqual(limiter.admit("127.0.0.1", 0), "rate-per-ip")

    def test_millionSources(self) -> None:
        """
        A million connections from distinct sources, each held for a while,
        cost a bounded number of operations on the count per source and on
        the rate table, which stays no larger than the connections open.
        """
        limiter = ConnectionLimiter(maxConnections=1000, maxPerHost=2, perHostRate=1)
        counts = CountingDict()
        limiter._perHost = counts
        rates = instrument(limiter._rate._buckets)
        held: deque[int] = deque()
        worst = peak = 0
        for key in range(1_000_000):
            before = counts.operations + rates.operations
            if limiter.admit(str(key), key * 0.00002) is None:
                held.append(key)
            if len(held) > 500:
                limiter.release(str(held.popleft()))
            worst = max(worst, counts.operations + rates.operations - before)
            peak = max(peak, len(held))
        self.assertLessEqual(worst, 15)
        self.assertEqual((peak, len(counts)), (500, 500))
        self.assertLessEqual(len(limiter._rate), 65536)


class ThrottleTests(SynchronousTestCase):
    def test_oncePerInterval(self) -> None:
        throttle: Throttle[str] = Throttle(interval=60)
        self.assertTrue(throttle.ready("a", 0))
        self.assertFalse(throttle.ready("a", 59))
        self.assertTrue(throttle.ready("b", 59))
        self.assertTrue(throttle.ready("a", 60))

    def test_bounded(self) -> None:
        throttle: Throttle[int] = Throttle(interval=60, maxTracked=2)
        self.assertEqual(
            [throttle.ready(key, 0) for key in range(3)], [True, True, False]
        )
        self.assertTrue(throttle.ready(3, 60))
        self.assertEqual(len(throttle), 1)

    def test_readyAgainIsNewest(self) -> None:
        """
        A key that is acted on again becomes the newest: it is not forgotten
        before keys started after its first interval.
        """
        throttle: Throttle[str] = Throttle(interval=10, maxTracked=2)
        self.assertTrue(throttle.ready("a", 0))
        self.assertTrue(throttle.ready("b", 5))
        self.assertTrue(throttle.ready("a", 10))
        self.assertFalse(throttle.ready("c", 14))
        self.assertTrue(throttle.ready("c", 15))
        self.assertFalse(throttle.ready("a", 19))

    def test_millionSources(self) -> None:
        """
        A million distinct sources cost a bounded number of table operations
        each, the table full or not.
        """
        throttle: Throttle[int] = Throttle(interval=60, maxTracked=65536)
        table = instrument(throttle._last)
        said = countPerEvent(table, throttle.ready, sources=1_000_000)
        self.assertLessEqual(len(throttle), 65536)
        # Twenty seconds of fake time, shorter than the interval: only the
        # first sources are remembered and said yes to.
        self.assertEqual(said, 65536)


class RecencyTableTests(SynchronousTestCase):
    def test_forgetsOldestStaleFirst(self) -> None:
        """
        Stale entries are forgotten oldest first, a few per event, and never
        past one still in use.
        """
        table: RecencyTable[str, float] = RecencyTable(10, lambda t, now: now >= t)
        for key, expires in [("a", 1.0), ("b", 5.0), ("c", 2.0)]:
            self.assertTrue(table.add(key, expires))
        self.assertIsNone(table.get("x", 3.0))
        self.assertEqual([table.peek(key) for key in "abc"], [None, 5.0, 2.0])
        table.touch("b", 9.0)
        self.assertEqual(table.forget(10, 6.0), 1)
        self.assertEqual((len(table), table.peek("b")), (1, 9.0))

    def test_lookup(self) -> None:
        """
        L{RecencyTable.lookup} makes a key found the newest, forgetting
        nothing; a key not found forgets stale entries, oldest first, once
        the table holds L{RecencyTable.forgetFrom} entries, and not before.
        """
        self.patch(RecencyTable, "forgetFrom", 3)
        table: RecencyTable[str, float] = RecencyTable(10, lambda t, now: now >= t)
        for key, expires in [("a", 1.0), ("b", 2.0)]:
            table.add(key, expires)
        self.assertIsNone(table.lookup("x", 5.0))
        self.assertEqual(len(table), 2)
        table.add("c", 9.0)
        self.assertEqual(table.lookup("a", 5.0), 1.0)
        self.assertEqual(list(table._entries), ["b", "c", "a"])
        self.assertIsNone(table.lookup("x", 5.0))
        self.assertEqual(list(table._entries), ["c", "a"])

    def test_fullRefuses(self) -> None:
        table: RecencyTable[str, float] = RecencyTable(1, lambda t, now: now >= t)
        self.assertTrue(table.add("a", 1.0))
        self.assertFalse(table.add("b", 1.0))
        self.assertIsNone(table.get("b", 1.0))
        self.assertTrue(table.add("b", 2.0))


class CountingDict(OrderedDict[Any, Any]):
    """
    An C{OrderedDict} that counts the work done on it: one per entry
    stored, found, moved, deleted or iterated over, so a scan of the table
    shows up as as many operations as there are entries.
    """

    operations = 0

    def __getitem__(self, key: Any) -> Any:
        self.operations += 1
        return super().__getitem__(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.operations += 1
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self.operations += 1
        super().__delitem__(key)

    def __contains__(self, key: object) -> bool:
        self.operations += 1
        return super().__contains__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        self.operations += 1
        return super().get(key, default)

    def move_to_end(self, key: Any, last: bool = True) -> None:
        self.operations += 1
        super().move_to_end(key, last)

    def popitem(self, last: bool = True) -> tuple[Any, Any]:
        self.operations += 1
        return super().popitem(last)

    def pop(self, key: Any, *default: Any) -> Any:
        self.operations += 1
        return super().pop(key, *default)

    def __iter__(self) -> Iterator[Any]:
        for key in super().__iter__():
            self.operations += 1
            yield key

    def keys(self) -> Any:
        return list(self)

    def values(self) -> Any:
        return (self[key] for key in self)

    def items(self) -> Any:
        return ((key, super(CountingDict, self).__getitem__(key)) for key in self)


def instrument(table: RecencyTable[Any, Any]) -> CountingDict:
    """
    Replace the storage of the empty C{table} with a L{CountingDict}.
    """
    assert not len(table)
    counting = CountingDict()
    table._entries = counting
    return counting


def countPerEvent(
    table: CountingDict, event: Callable[[int, float], bool], sources: int
) -> int:
    """
    Send one event from each of C{sources} distinct keys, 20 microseconds of
    fake time apart, and check that none did more than a few operations on
    C{table}.

    @return: How many events C{event} said yes to.
    """
    worst = 0
    yeses = 0
    for key in range(sources):
        before = table.operations
        yeses += event(key, key * 0.00002)
        worst = max(worst, table.operations - before)
    # A lookup, the oldest entries looked at and forgotten, an addition.
    assert worst <= 10, worst
    return yeses
