"""Summary maths and the verdict's thresholds."""

from __future__ import annotations

import pytest

from client.probe import ProbeResult
from client.summary import DEGRADED, DOWN, HEALTHY, UNKNOWN, Window, judge, percentile


def result(success: bool = True, ms: float = 5.0, error_type: str | None = None) -> ProbeResult:
    return ProbeResult("GET", "http://x/status", 200 if success else 503, ms, success, error_type, None, "0" * 32)


@pytest.mark.parametrize(
    ("values", "p", "want"),
    [
        ([], 50, None),
        ([7.0], 99, 7.0),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50, 5),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95, 10),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90, 9),
        (list(range(1, 101)), 99, 99),
        (list(range(1, 101)), 1, 1),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], p: float, want: float | None) -> None:
    assert percentile(values, p) == want


@pytest.mark.parametrize(
    ("probes", "availability", "p95", "verdict"),
    [
        (0, None, None, UNKNOWN),
        (10, 100.0, 5.0, HEALTHY),
        (10, 99.0, 299.9, HEALTHY),
        (10, 100.0, 300.0, DEGRADED),
        (10, 98.99, 5.0, DEGRADED),
        (10, 98.9997, 5.0, DEGRADED),
        (10, 50.0, 5.0, DEGRADED),
        (10, 49.99, 5.0, DOWN),
        (10, 0.0, 2000.0, DOWN),
    ],
)
def test_verdict_thresholds(probes: int, availability: float | None, p95: float | None, verdict: str) -> None:
    got, reason = judge(probes, availability, p95)
    assert got == verdict
    assert reason


def test_window_counts_and_expires() -> None:
    w = Window(30)
    w.add(0, result(ms=10))
    w.add(10, result(False, 400, "http_status"))
    w.add(20, result(False, 2000, "read_timeout"))
    w.add(25, result(ms=20))
    s = w.summary(25)
    assert (s.probes, s.successes, s.availability) == (4, 2, 50.0)
    assert (s.p50_ms, s.p95_ms, s.p99_ms) == (20, 2000, 2000)
    assert s.errors == {"http_status": 1, "read_timeout": 1}
    assert s.verdict == DEGRADED

    s = w.summary(30)  # the probe at 0 is 30 s old: out
    assert (s.probes, s.successes) == (3, 1)
    assert s.verdict == DOWN
    assert w.summary(1000).verdict == UNKNOWN


def test_availability_is_judged_before_it_is_cut() -> None:
    w = Window(30)
    for i in range(100_000):
        w.add(0, result(success=i >= 1004))  # 98.996 % would round to 99.00
    s = w.summary(0)
    assert (s.availability, s.verdict) == (98.99, DEGRADED)
    assert s.reason == "availability 98.99% < 99%"


@pytest.mark.parametrize(
    ("successes", "probes", "shown"), [(23, 125, 18.4), (41, 125, 32.8), (23, 250, 9.2), (2, 3, 66.66)]
)
def test_an_exact_availability_is_shown_as_it_is(successes: int, probes: int, shown: float) -> None:
    w = Window(30)
    for i in range(probes):
        w.add(0, result(success=i < successes))
    assert w.summary(0).availability == shown
