"""
Rate and connection limits, kept apart from transports and clocks: callers
pass the time in, so the rules are plain arithmetic to test.
"""

from __future__ import annotations

from typing import Dict, Generic, Hashable, TypeVar

Key = TypeVar("Key", bound=Hashable)

#: How many sources a L{KeyedRateLimiter} tracks at most.  An attacker with
#: spoofed sources cannot grow the table past this; sources beyond it are
#: refused until idle ones age out.
DEFAULT_MAX_TRACKED = 65536


class TokenBucket:
    """
    Allow C{rate} events per second on average and C{burst} at once.

    @ivar rate: Tokens added per second.
    @ivar burst: The most tokens held.
    @ivar tokens: Tokens available at L{updated}.
    @ivar updated: When L{tokens} was last computed.
    """

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = now

    def take(self, now: float) -> bool:
        """
        Spend one token if there is one.
        """
        tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if tokens >= 1:
            self.tokens = tokens - 1
            return True
        self.tokens = tokens
        return False

    def full(self, now: float) -> bool:
        """
        Whether the bucket would be full by C{now}, so forgetting it changes
        nothing.
        """
        return self.tokens + (now - self.updated) * self.rate >= self.burst


class KeyedRateLimiter(Generic[Key]):
    """
    One L{TokenBucket} per key (a source address), in a table of bounded size.

    @ivar rate: Events per second allowed to each key, with a burst of as
        many; 0 means unlimited.
    @ivar maxTracked: The most keys tracked at once.
    """

    def __init__(self, rate: float, maxTracked: int = DEFAULT_MAX_TRACKED) -> None:
        self.rate = rate
        self.maxTracked = maxTracked
        self._buckets: Dict[Key, TokenBucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, key: Key, now: float) -> bool:
        """
        Whether one more event from C{key} is within its rate.
        """
        if not self.rate:
            return True
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.maxTracked:
                self.prune(now)
                if len(self._buckets) >= self.maxTracked:
                    return False
            bucket = self._buckets[key] = TokenBucket(self.rate, self.rate, now)
        return bucket.take(now)

    def prune(self, now: float) -> None:
        """
        Forget every key whose bucket has refilled.
        """
        for key in [key for key, bucket in self._buckets.items() if bucket.full(now)]:
            del self._buckets[key]


class ConnectionLimiter:
    """
    Admission for new connections: a total cap, a cap per source address,
    and a rate of new connections per source address (xinetd's C{cps}).

    Each limit is off when 0.

    @ivar maxConnections: The most connections open at once.
    @ivar maxPerHost: The most connections open at once from one address.
    @ivar perHostRate: New connections per second from one address.
    @ivar open: Connections open now.
    """

    def __init__(
        self, maxConnections: int = 0, maxPerHost: int = 0, perHostRate: float = 0
    ) -> None:
        self.maxConnections = maxConnections
        self.maxPerHost = maxPerHost
        self.perHostRate = perHostRate
        self.open = 0
        self._perHost: Dict[str, int] = {}
        self._rate: KeyedRateLimiter[str] = KeyedRateLimiter(perHostRate)

    def admit(self, host: str | None, now: float) -> str | None:
        """
        Take a place for a new connection from C{host} (C{None} for peers
        without an address, such as UNIX sockets, which only the total cap
        applies to).

        @return: C{None} when admitted, which the caller must match with
            L{release}; otherwise the name of the limit that refused it.
        """
        if self.maxConnections and self.open >= self.maxConnections:
            return "max-connections"
        if host is not None:
            if self.maxPerHost and self._perHost.get(host, 0) >= self.maxPerHost:
                return "max-per-ip"
            if not self._rate.allow(host, now):
                return "rate-per-ip"
            self._perHost[host] = self._perHost.get(host, 0) + 1
        self.open += 1
        return None

    def release(self, host: str | None) -> None:
        """
        Give back the place an admitted connection from C{host} held.
        """
        self.open -= 1
        if host is not None:
            remaining = self._perHost[host] - 1
            if remaining:
                self._perHost[host] = remaining
            else:
                del self._perHost[host]


class Throttle(Generic[Key]):
    """
    Say yes to each key at most once per interval: for log lines about a
    source that may be sending thousands of bad packets a second.

    @ivar interval: Seconds between two yeses for one key.
    @ivar maxTracked: The most keys remembered; once full, unknown keys get
        no until old ones expire, so a flood of sources stays quiet.
    """

    def __init__(
        self, interval: float = 60.0, maxTracked: int = DEFAULT_MAX_TRACKED
    ) -> None:
        self.interval = interval
        self.maxTracked = maxTracked
        self._last: Dict[Key, float] = {}

    def ready(self, key: Key, now: float) -> bool:
        """
        Whether C{key} may be acted on now; if so, start its interval.
        """
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            return False
        if last is None and len(self._last) >= self.maxTracked:
            expired = [k for k, t in self._last.items() if now - t >= self.interval]
            for k in expired:
                del self._last[k]
            if len(self._last) >= self.maxTracked:
                return False
        self._last[key] = now
        return True
