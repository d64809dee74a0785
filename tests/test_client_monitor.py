"""The loop: first probe at once, a steady rhythm, no job exception escapes,
health changes reported the moment they happen, a prompt stop."""

from __future__ import annotations

import io
import itertools
import json
import threading
import time
from typing import Any

from client.config import parse_config
from client.logs import Logs
from client.monitor import Monitor, run
from client.probe import ProbeResult, ToggleResult


def ok(ms: float = 1.0) -> ProbeResult:
    return ProbeResult("GET", "u", 200, ms, True, None, None, "0" * 32)


def failed() -> ProbeResult:
    return ProbeResult("GET", "u", None, 1.0, False, "connect_refused", "refused", "0" * 32)


def records(out: io.StringIO, event: str | None = None) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    return [line for line in lines if event is None or line["event"] == event]


def test_health_changes_are_reported_as_they_happen() -> None:
    out = io.StringIO()
    config = parse_config(["--summary-interval", "100", "--interval", "1", "--timeout", "0.5"], {})
    outcomes = iter([ok(), ok(), failed(), failed(), failed(), ok()])
    clock = iter(range(100))
    monitor = Monitor(config, Logs(config, out).events, clock=lambda: next(clock), probe_fn=lambda *_: next(outcomes))
    for _ in range(6):
        monitor.probe_once()
    changes = [(r["previous"], r["verdict"]) for r in records(out, "health_changed")]
    # availability: 100, 100, 66.7, 50, 40, 50 %
    assert changes == [(None, "healthy"), ("healthy", "degraded"), ("degraded", "down"), ("down", "degraded")]
    assert [r["seq"] for r in records(out, "probe")] == [1, 2, 3, 4, 5, 6]


def run_for(monitor: Monitor, until: Any, limit: float = 10.0) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(monitor, stop))
    thread.start()
    deadline = time.monotonic() + limit
    while not until() and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(5)
    assert not thread.is_alive(), "run() did not return after stop"


def test_rhythm_does_not_drift_with_the_probe_duration() -> None:
    """schedule alone would start each probe interval + duration after the
    last; the loop keeps starts one interval apart."""
    config = parse_config(["--interval", "0.2", "--timeout", "0.15", "--summary-interval", "10",
                           "--flaky-interval", "0"], {})  # fmt: skip
    starts: list[float] = []

    def slow_probe(*_: object) -> ProbeResult:
        starts.append(time.monotonic())
        time.sleep(0.1)
        return ok(100)

    monitor = Monitor(config, Logs(config, io.StringIO()).events, probe_fn=slow_probe)
    begin = time.monotonic()
    run_for(monitor, lambda: len(starts) >= 8)
    assert starts[0] - begin < 0.1, "the first probe runs at start"
    gaps = sorted(b - a for a, b in itertools.pairwise(starts))
    assert 0.18 < gaps[len(gaps) // 2] < 0.25, gaps  # drifting, the median would be 0.3


def test_no_job_exception_escapes() -> None:
    out = io.StringIO()
    config = parse_config(["--interval", "0.1", "--timeout", "0.05", "--summary-interval", "0.3",
                           "--flaky-interval", "0.15"], {})  # fmt: skip
    calls = {"probe": 0, "toggle": 0}

    def broken_probe(*_: object) -> ProbeResult:
        calls["probe"] += 1
        if calls["probe"] % 2:
            raise RuntimeError("probe bug")
        return ok()

    def broken_toggle(*_: object) -> ToggleResult:
        calls["toggle"] += 1
        raise KeyError("toggle bug")

    monitor = Monitor(config, Logs(config, out).events, probe_fn=broken_probe, toggle_fn=broken_toggle)
    run_for(monitor, lambda: calls["probe"] >= 6 and calls["toggle"] >= 2)
    errors = records(out, "internal_error")
    assert {e["job"] for e in errors} == {"probe", "flaky_toggle"}
    assert "RuntimeError: probe bug" in errors[0]["error"]
    assert "Traceback" in errors[0]["traceback"]
    assert records(out, "summary"), "the summary job kept running"
    # Each failing job ran once per period, not on every tick.
    assert calls["toggle"] <= 4


def test_stop_ends_the_loop_promptly() -> None:
    config = parse_config(["--interval", "5", "--summary-interval", "30"], {})
    monitor = Monitor(config, Logs(config, io.StringIO()).events, probe_fn=lambda *_: ok())
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(monitor, stop))
    thread.start()
    deadline = time.monotonic() + 5
    while monitor.probes < 1 and time.monotonic() < deadline:  # then it idles for 5 s
        time.sleep(0.01)
    began = time.monotonic()
    stop.set()
    thread.join(5)
    assert time.monotonic() - began < 0.5
