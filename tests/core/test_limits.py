"""
Tests for L{greetd.core.limits}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from greetd.core.limits import (
    ConnectionLimiter,
    KeyedRateLimiter,
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
        self.assertEqual(len(limiter), 1)


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
        self.assertEqual(len(throttle._last), 1)
