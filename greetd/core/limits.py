"""
Rate and connection limits, kept apart from transports and clocks: callers
pass the time in, so the rules are plain arithmetic to test.

Every table here is keyed by a source an attacker can choose (UDP sources
are forged at will), so each costs O(1) per event however many sources
there are, and none grows past a fixed size.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Dict, Generic, Hashable, TypeVar

from greetd.core.sources import DEFAULT_IPV6_PREFIX

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")

#: How many sources a L{KeyedRateLimiter} or L{Throttle} tracks at most.
#: An attacker with spoofed sources cannot grow the table past this;
#: sources beyond it are refused until idle ones age out.
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
        # A comparison, not min(): this runs for every datagram, and the
        # builtin's call costs CPython more than the rest of the method.
        tokens = self.tokens + (now - self.updated) * self.rate
        if tokens > self.burst:
            tokens = self.burst
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


class RecencyTable(Generic[Key, Value]):
    """
    A table of at most L{maxSize} entries kept in the order they were last
    touched, from which stale entries are forgotten oldest first.

    Forgetting looks only at the oldest entries, a few per event, and stops
    at the first one still in use: no event scans the table, so a flood of
    new keys costs the same per event as a single key does.  The caller's
    C{stale} test must become true of an entry within a bounded time of its
    last touch, and stay true until it is touched again; the oldest entry
    is then always the first to go stale.

    @ivar maxSize: The most entries held; a new key is refused, at once,
        when the table is full and its oldest entry is still in use.
    @ivar forgetPerEvent: The most stale entries forgotten per event: more
        than one, so forgetting outpaces the one key an event may add.
    """

    forgetPerEvent = 2

    #: How many entries L{lookup} keeps before it forgets any (the table's
    #: size, if smaller).  A few stale entries cost less than what
    #: forgetting them at once costs busy keys: a bucket is stale (full)
    #: microseconds after its last token at a high rate, so forgetting
    #: every stale one would forget and re-create the busiest sources'
    #: buckets on nearly every event.
    forgetFrom = 1024

    def __init__(self, maxSize: int, stale: Callable[[Value, float], bool]) -> None:
        self.maxSize = maxSize
        self._stale = stale
        self._forgetFrom = min(self.forgetFrom, maxSize)
        self._entries: OrderedDict[Key, Value] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key, now: float) -> Value | None:
        """
        Forget up to L{forgetPerEvent} stale entries, then look C{key} up.
        """
        self.forget(self.forgetPerEvent, now)
        return self._entries.get(key)

    def lookup(self, key: Key, now: float) -> Value | None:
        """
        Look C{key} up and, when it is there, make it the newest entry.
        When it is not, and the table holds L{forgetFrom} entries or more,
        forget up to L{forgetPerEvent} stale ones, as the room a new key
        needs.

        For a caller whose entry is in use again once touched (a bucket
        that takes a token at C{now}): a key found costs one lookup and one
        move and forgets nothing; only a new key, the one event that needs
        room, forgets, so forgetting still outpaces adding.
        """
        entries = self._entries
        value = entries.get(key)
        if value is not None:
            entries.move_to_end(key)
        elif len(entries) >= self._forgetFrom:
            self.forget(self.forgetPerEvent, now)
        return value

    def peek(self, key: Key) -> Value | None:
        """
        Look C{key} up, forgetting nothing.
        """
        return self._entries.get(key)

    def touch(self, key: Key, value: Value) -> None:
        """
        Store C{value} for C{key}, a key in the table, as the newest entry.
        """
        entries = self._entries
        entries[key] = value
        entries.move_to_end(key)

    def add(self, key: Key, value: Value) -> bool:
        """
        Add an entry for a new C{key} as the newest, unless the table is full.

        @return: Whether it was added.
        """
        entries = self._entries
        if len(entries) >= self.maxSize:
            return False
        entries[key] = value
        return True

    def forget(self, count: int, now: float) -> int:
        """
        Forget up to C{count} stale entries, oldest first, stopping at the
        first one still in use.

        @return: How many were forgotten.
        """
        entries = self._entries
        stale = self._stale
        forgotten = 0
        while forgotten < count and entries:
            oldest, value = next(iter(entries.items()))
            if not stale(value, now):
                break
            del entries[oldest]
            forgotten += 1
        return forgotten


class KeyedRateLimiter(Generic[Key]):
    """
    One L{TokenBucket} per key (a source address), in a L{RecencyTable} of
    bounded size: a bucket untouched for a second has refilled, so it is
    forgotten.

    @ivar rate: Events per second allowed to each key, with a burst of as
        many; 0 means unlimited.
    @ivar maxTracked: The most keys tracked at once.
    """

    def __init__(self, rate: float, maxTracked: int = DEFAULT_MAX_TRACKED) -> None:
        self.rate = rate
        self.maxTracked = maxTracked
        self._buckets: RecencyTable[Key, TokenBucket] = RecencyTable(
            maxTracked, TokenBucket.full
        )

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, key: Key, now: float) -> bool:
        """
        Whether one more event from C{key} is within its rate; a new key
        is refused when the table is full of keys still in use.
        """
        if not self.rate:
            return True
        buckets = self._buckets
        bucket = buckets.lookup(key, now)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.rate, now)
            if not buckets.add(key, bucket):
                return False
        return bucket.take(now)

    def refund(self, key: Key) -> None:
        """
        Give back the token the last L{allow} of C{key} took, for an event
        refused by a later check: it was not the source's doing.
        """
        bucket = self._buckets.peek(key)
        if bucket is not None:
            bucket.tokens = min(bucket.burst, bucket.tokens + 1)

    def prune(self, now: float, count: int = RecencyTable.forgetPerEvent) -> int:
        """
        Forget up to C{count} keys whose buckets have refilled, oldest first.

        @return: How many were forgotten.
        """
        return self._buckets.forget(count, now)


class ConnectionLimiter:
    """
    Admission for new connections: a total cap, a cap per source, and a
    rate of new connections per source (xinetd's C{cps}).

    Each limit is off when 0.  A source is a key from
    L{greetd.core.sources.sourceKey}: an IPv4 address, or an IPv6 prefix.
    The count per source holds one entry per source with a connection open,
    added and removed in O(1), so it is no larger than L{open}.

    @ivar maxConnections: The most connections open at once.
    @ivar maxPerHost: The most connections open at once from one source.
    @ivar perHostRate: New connections per second from one source.
    @ivar ipv6Prefix: How many leading bits of an IPv6 address name its
        source (L{greetd.core.sources.sourceKey}), for the protocol to use.
    @ivar open: Connections open now, L{held} ones included.
    @ivar held: Connections open now whose client is not known yet
        (L{hold}).
    """

    def __init__(
        self,
        maxConnections: int = 0,
        maxPerHost: int = 0,
        perHostRate: float = 0,
        ipv6Prefix: int = DEFAULT_IPV6_PREFIX,
    ) -> None:
        self.maxConnections = maxConnections
        self.maxPerHost = maxPerHost
        self.perHostRate = perHostRate
        self.ipv6Prefix = ipv6Prefix
        self.open = 0
        self._perHost: Dict[str, int] = {}
        self.held = 0
        self._rate: KeyedRateLimiter[str] = KeyedRateLimiter(perHostRate)

    def admit(self, source: str | None, now: float) -> str | None:
        """
        Take a place for a new connection from C{source} (C{None} for peers
        without an address, such as UNIX sockets, which only the total cap
        applies to).

        @return: C{None} when admitted, which the caller must match with
            L{release}; otherwise the name of the limit that refused it.
        """
        if self.maxConnections and self.open >= self.maxConnections:
            return "max-connections"
        if source is not None:
            if self.maxPerHost and self._perHost.get(source, 0) >= self.maxPerHost:
                return "max-per-ip"
            if not self._rate.allow(source, now):
                return "rate-per-ip"
            self._perHost[source] = self._perHost.get(source, 0) + 1
        self.open += 1
        return None

    def release(self, source: str | None) -> None:
        """
        Give back the place an admitted connection from C{source} held.
        """
        self.open -= 1
        _decrement(self._perHost, source)

    def hold(self) -> str | None:
        """
        Take a place for a connection whose client is not known yet (a
        trusted load balancer's, still sending its PROXY header): under
        the total cap alone.  A balancer carries many clients, and a batch
        of its connections is accepted before any is read, so the per-source
        cap and rate apply to the clients its headers name, not to it, as
        nginx and HAProxy do not cap their balancer.

        @return: As L{admit}; C{None} is to be matched with L{unhold}.
        """
        if self.maxConnections and self.open >= self.maxConnections:
            return "max-connections"
        self.open += 1
        self.held += 1
        return None

    def unhold(self) -> None:
        """
        Give back the place a connection held from L{hold}.
        """
        self.open -= 1
        self.held -= 1


def _decrement(counts: Dict[str, int], source: str | None) -> None:
    """
    Count one connection from C{source} fewer in C{counts}, forgetting a
    source with none, so the table holds only sources with connections.
    """
    if source is not None:
        remaining = counts[source] - 1
        if remaining:
            counts[source] = remaining
        else:
            del counts[source]


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
        self._last: RecencyTable[Key, float] = RecencyTable(maxTracked, self._stale)

    def __len__(self) -> int:
        return len(self._last)

    def _stale(self, last: float, now: float) -> bool:
        return now - last >= self.interval

    def ready(self, key: Key, now: float) -> bool:
        """
        Whether C{key} may be acted on now; if so, start its interval.
        """
        table = self._last
        last = table.get(key, now)
        if last is None:
            return table.add(key, now)
        if now - last < self.interval:
            return False
        table.touch(key, now)
        return True
