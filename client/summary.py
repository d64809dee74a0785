"""The verdict: is the server healthy, degraded or down?

Computed over a sliding window of the last --summary-interval seconds of
probes, after every probe (so a change is reported the moment it happens)
and reported whole every --summary-interval.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from client.probe import ProbeResult

HEALTHY, DEGRADED, DOWN, UNKNOWN = "healthy", "degraded", "down", "unknown"

#: Below this share of successful probes (percent) the server is down.
DOWN_BELOW = 50.0
#: Below this share it is degraded.
DEGRADED_BELOW = 99.0
#: A p95 latency at or above this many milliseconds is degraded too: a
#: healthy answer takes a few milliseconds, a flaky one up to 500.
SLOW_P95_MS = 300.0


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
    """The nearest-rank percentile: the smallest value with at least p% of
    the values at or below it."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


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


class Window:
    """The probes of the last window_s seconds (by a monotonic clock)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._probes: deque[tuple[float, ProbeResult]] = deque()

    def add(self, now: float, result: ProbeResult) -> None:
        self._probes.append((now, result))
        self._expire(now)

    def summary(self, now: float) -> Summary:
        self._expire(now)
        results = [r for _, r in self._probes]
        n = len(results)
        successes = sum(r.success for r in results)
        durations = sorted(r.duration_ms for r in results)
        availability = 100 * successes / n if n else None
        p95 = percentile(durations, 95)
        verdict, reason = judge(n, availability, p95)
        return Summary(
            window_s=self.window_s,
            probes=n,
            successes=successes,
            availability=None if availability is None else shown(availability),
            p50_ms=percentile(durations, 50),
            p95_ms=p95,
            p99_ms=percentile(durations, 99),
            errors=dict(Counter(r.error_type for r in results if r.error_type)),
            verdict=verdict,
            reason=reason,
        )

    def _expire(self, now: float) -> None:
        while self._probes and self._probes[0][0] <= now - self.window_s:
            self._probes.popleft()
