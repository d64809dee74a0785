"""Summary maths and the verdict's thresholds."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from client.probe import ProbeResult
from client.summary import DEGRADED, DOWN, HEALTHY, RELATIVE_ACCURACY, UNKNOWN, Window, judge, percentile


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
    assert (s.p50_ms, s.p95_ms, s.p99_ms) == pytest.approx((20, 2000, 2000), rel=RELATIVE_ACCURACY)
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


def test_a_probe_leaves_the_window_with_its_sub_window() -> None:
    """60 sub-windows of 0.5 s in a 30 s window: a probe at 0.7 s is in the
    sub-window that starts at 0.5 s, which leaves at 30.5 s."""
    w = Window(30)
    w.add(0.7, result())
    assert w.summary(30.49).probes == 1
    assert w.summary(30.5).probes == 0


def test_percentiles_are_within_the_sketchs_error_of_the_exact_ones() -> None:
    rng = random.Random(7)
    durations = [rng.lognormvariate(2, 1.2) for _ in range(5000)] + [0.0] * 20
    w = Window(30)
    for i, ms in enumerate(durations):
        w.add(i * 0.005, result(ms=ms))
    s = w.summary(25)
    exact = sorted(durations)
    for p, got in ((50, s.p50_ms), (95, s.p95_ms), (99, s.p99_ms)):
        want = percentile(exact, p)
        assert want is not None
        assert got == pytest.approx(want, rel=RELATIVE_ACCURACY, abs=0.001), p
    small = Window(30)
    for ms in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0):
        small.add(0, result(ms=ms))
    s = small.summary(0)
    assert (s.p50_ms, s.p95_ms) == pytest.approx((5, 10), rel=RELATIVE_ACCURACY)  # nearest rank: not 9


DURATIONS = (0.8, 1.5, 3.0, 7.0, 20.0, 150.0, 480.0, 2000.0)


def window_bytes(probes: int) -> int:
    """Memory a window holds after probes probes in 30 s. (A sketch's size
    depends on the range of the values, not on their number: the values
    come from a fixed set, so every probe count touches the same bins.)"""
    rng = random.Random(1)
    tracemalloc.start()
    try:
        w = Window(30)
        for i in range(probes):
            w.add(i * 29 / probes, result(success=i % 3 > 0, ms=rng.choice(DURATIONS), error_type="http_status"))
        w.summary(29)
        return tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_probes() -> None:
    """--interval 0.05 --summary-interval 86400 kept 1.7 million probes; a
    window now holds the same whatever the number."""
    few, many = window_bytes(3_000), window_bytes(30_000)
    assert many < few * 1.1, (few, many)
