"""A per-caller request rate limit for ``docvec serve``: one token bucket in memory per API key or token
subject. A bucket holds ``count`` tokens and refills at ``count / seconds`` per second, so a caller may
burst up to its whole allowance and then sustain its rate; a request finding the bucket empty is
answered 429 with ``Retry-After`` (seconds until a token is back). Buckets live in the server process:
several server processes each allow the rate."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_BUCKETS = 100_000  # callers tracked at once; the idlest are forgotten beyond it (they start full again)


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """Token buckets by caller (see the module docstring). Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, caller: str, rate: tuple[int, int]) -> int | None:
        """Take a token for ``caller`` at ``rate`` (requests, seconds): None when allowed, else the whole
        seconds to wait before the next token (for ``Retry-After``, at least 1)."""
        count, seconds = rate
        per_second = count / seconds
        with self._lock:
            now = self._clock()
            bucket = self._buckets.pop(caller, None) or _Bucket(tokens=float(count), stamp=now)
            bucket.tokens = min(float(count), bucket.tokens + (now - bucket.stamp) * per_second)
            bucket.stamp = now
            self._buckets[caller] = bucket  # most recently used last
            if len(self._buckets) > MAX_BUCKETS:
                del self._buckets[next(iter(self._buckets))]
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return None
            return max(1, math.ceil((1 - bucket.tokens) / per_second))
