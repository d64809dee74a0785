"""The verdict: is the server healthy, degraded or down?

Computed over a sliding window of the last --summary-interval seconds of
probes, after every probe (so a change is reported the moment it happens)
and reported whole every --summary-interval. Counts and availability are
exact; percentiles come from DDSketch, within 1 % of the exact ones.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from ddsketch import DDSketch

from client.probe import ProbeResult

HEALTHY, DEGRADED, DOWN, UNKNOWN = "healthy", "degraded", "down", "unknown"

#: Below this share of successful probes (percent) the server is down.
DOWN_BELOW = 50.0
#: Below this share it is degraded.
DEGRADED_BELOW = 99.0
#: A p95 latency at or above this many milliseconds is degraded too: a
#: healthy answer takes a few milliseconds, a flaky one up to 500.
SLOW_P95_MS = 300.0

#: Percentiles are within this relative error of the exact ones (DDSketch's
#: guarantee): 1 %.
RELATIVE_ACCURACY = 0.01
#: The window is kept in this many sub-windows, which expire whole.
BUCKETS = 60


@dataclass(frozen=True)
class Summary:
    window_s: float
    probes: int
    successes: int
    availability: float | None  # percent of probes that succeeded
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    errors: dict[str, int] = field(default_factory=dict)  # probes per error_type
    verdict: str = UNKNOWN
    reason: str = ""


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """The exact nearest-rank percentile: the smallest value with at least
    p% of the values at or below it (what nearest_rank approximates)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def nearest_rank(sketch: DDSketch, p: float) -> float | None:
    """The nearest-rank percentile: the smallest value with at least p% of
    the values at or below it, within the sketch's relative accuracy. (The
    sketch's own quantile rank is q x (n - 1); this asks it for the bin of
    the nearest rank.)"""
    n = sketch.count
    if n == 0:
        return None
    index = max(1, math.ceil(p / 100 * n)) - 1  # 0-based
    value = sketch.get_quantile_value(0.0 if n == 1 else min(1.0, (index + 0.5) / (n - 1)))
    return None if value is None else round(value, 3)


def judge(probes: int, availability: float | None, p95_ms: float | None) -> tuple[str, str]:
    """The verdict and why, from the exact availability (98.9997 % is below
    99 %, though it rounds to 99.00)."""
    if probes == 0 or availability is None or p95_ms is None:
        return UNKNOWN, "no probes in the window"
    if availability < DOWN_BELOW:
        return DOWN, f"availability {shown(availability)}% < {DOWN_BELOW:g}%"
    if availability < DEGRADED_BELOW:
        return DEGRADED, f"availability {shown(availability)}% < {DEGRADED_BELOW:g}%"
    if p95_ms >= SLOW_P95_MS:
        return DEGRADED, f"p95 latency {p95_ms:.0f} ms >= {SLOW_P95_MS:g} ms"
    return HEALTHY, f"availability {shown(availability)}%, p95 latency {p95_ms:.0f} ms"


def shown(availability: float) -> float:
    """availability cut (not rounded) to 0.01: never shown above a threshold
    it is below. The float noise is rounded off first: 23 of 125 is 18.4 %,
    which 100 x 23 / 125 x 100 makes 1839.9999999999998."""
    return math.floor(round(availability * 100, 6)) / 100


@dataclass
class _Bucket:
    """The probes of one sub-window: counts, and a sketch of durations."""

    index: int  # the sub-window's number since the origin
    probes: int = 0
    successes: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    durations: DDSketch = field(default_factory=lambda: DDSketch(RELATIVE_ACCURACY))

    def add(self, result: ProbeResult) -> None:
        self.probes += 1
        self.successes += result.success
        if result.error_type:
            self.errors[result.error_type] += 1
        self.durations.add(max(result.duration_ms, 0.0))

    def merge(self, other: _Bucket) -> None:
        self.probes += other.probes
        self.successes += other.successes
        self.errors.update(other.errors)
        self.durations.merge(other.durations)


class Window:
    """The probes of the last window_s seconds (by a monotonic clock), kept
    in BUCKETS sub-windows of window_s / BUCKETS seconds each: counts (exact)
    and a DDSketch of durations per sub-window. Memory and CPU do not grow
    with the number of probes. A sub-window leaves whole, when its start is
    window_s old: a probe leaves the window up to one sub-window early."""

    def __init__(self, window_s: float, origin: float = 0.0, buckets: int = BUCKETS) -> None:
        self.window_s = window_s
        self.origin = origin  # the clock's time of sub-window 0's start
        self.buckets = buckets
        self.granularity = window_s / buckets
        self._buckets: deque[_Bucket] = deque()
        self._older: _Bucket | None = None  # every bucket but the newest, merged; None = to redo

    def add(self, now: float, result: ProbeResult) -> None:
        index = math.floor((now - self.origin) / self.granularity)
        if not self._buckets or index > self._buckets[-1].index:
            self._buckets.append(_Bucket(index))
            self._older = None
        self._buckets[-1].add(result)
        self._expire(now)

    def summary(self, now: float) -> Summary:
        self._expire(now)
        total = self._total()
        n = total.probes
        availability = 100 * total.successes / n if n else None
        p95 = nearest_rank(total.durations, 95)
        verdict, reason = judge(n, availability, p95)
        return Summary(
            window_s=self.window_s,
            probes=n,
            successes=total.successes,
            availability=None if availability is None else shown(availability),
            p50_ms=nearest_rank(total.durations, 50),
            p95_ms=p95,
            p99_ms=nearest_rank(total.durations, 99),
            errors=dict(total.errors),
            verdict=verdict,
            reason=reason,
        )

    def _total(self) -> _Bucket:
        """All buckets merged. The older ones are merged once per sub-window,
        not after every probe."""
        if self._older is None:
            self._older = _Bucket(-1)
            for bucket in itertools.islice(self._buckets, max(len(self._buckets) - 1, 0)):
                self._older.merge(bucket)
        total = _Bucket(-1)
        total.merge(self._older)
        if self._buckets:
            total.merge(self._buckets[-1])
        return total

    def _expire(self, now: float) -> None:
        """Drop the sub-windows that started window_s or more ago."""
        oldest_kept = (now - self.origin - self.window_s) / self.granularity
        while self._buckets and self._buckets[0].index <= oldest_kept:
            self._buckets.popleft()
            self._older = None
