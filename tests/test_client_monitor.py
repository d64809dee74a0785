"""The loop: first probe at once, one probe record per slot whatever the
server does, toggles only in the gap, no job exception escapes, health
changes reported the moment they happen, a prompt stop."""

from __future__ import annotations

import dataclasses
import datetime
import io
import itertools
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import time_machine

from client.config import parse_config
from client.grid import Grid
from client.logs import JsonLines, Logs
from client.monitor import SLOT_SLACK_S, Monitor, Stop, run
from client.probe import ProbeResult, ToggleResult, toggle_flaky
from client.records import Events
from client.tracing import TraceSettings, Tracing
from tests.conftest import FaultServer, GoServer, answer, read_request, schema_errors, stand_ins, wait_until
from tests.test_client_faults import FAULTS, Fault
from tests.test_traces import OTLPReceiver


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


def run_for(monitor: Monitor, until: Callable[[], bool], limit: float = 20.0) -> float:
    """Run the loop in a thread until `until` holds; returns the seconds it ran."""
    stop = Stop()
    thread = threading.Thread(target=run, args=(monitor, stop))
    began = time.monotonic()
    thread.start()
    deadline = began + limit
    while not until() and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.request()
    ran = time.monotonic() - began
    thread.join(10)
    assert not thread.is_alive(), "run() did not return after stop"
    stop.close()
    return ran


def test_rhythm_does_not_drift_with_the_probe_duration() -> None:
    """schedule alone would start each probe interval + duration after the
    last; the loop keeps starts on a grid one interval apart."""
    config = parse_config(["--interval", "0.2", "--timeout", "0.15", "--summary-interval", "10",
                           "--flaky-interval", "0"], {})  # fmt: skip
    starts: list[float] = []

    def slow_probe(*_: object) -> ProbeResult:
        starts.append(time.monotonic())
        time.sleep(0.15)
        return ok(150)

    monitor = Monitor(config, Logs(config, io.StringIO()).events, probe_fn=slow_probe)
    run_for(monitor, lambda: len(starts) >= 9)
    mean_gap = (starts[8] - starts[0]) / 8
    assert mean_gap < config.interval + 0.15 / 2, starts  # drifting, it would be 0.35


def test_no_job_exception_escapes_and_every_probe_is_recorded() -> None:
    out = io.StringIO()
    config = parse_config(["--interval", "0.2", "--timeout", "0.05", "--summary-interval", "0.6",
                           "--flaky-interval", "0.3"], {})  # fmt: skip
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
    probes = records(out, "probe")
    assert len(probes) == calls["probe"], "a probe that raised still has its record"
    assert probes[0]["error_type"] == "unknown"
    assert records(out, "summary"), "the summary job kept running"
    # A failing toggle ran once per period, not on every tick.
    assert calls["toggle"] <= calls["probe"]


def test_stop_ends_the_loop_promptly() -> None:
    config = parse_config(["--interval", "10", "--summary-interval", "30"], {})
    monitor = Monitor(config, Logs(config, io.StringIO()).events, probe_fn=lambda *_: ok())
    stop = Stop()
    thread = threading.Thread(target=run, args=(monitor, stop))
    thread.start()
    deadline = time.monotonic() + 10
    while monitor.probes < 1 and time.monotonic() < deadline:  # then it idles for 10 s
        time.sleep(0.01)
    began = time.monotonic()
    stop.request()
    thread.join(10)
    assert time.monotonic() - began < config.interval / 2, "the loop slept on instead of waking"
    assert monitor.probes == 1, "the first probe runs at start, not one interval (10 s) later"


def test_a_stop_requested_after_close_writes_nowhere(tmp_path: Path) -> None:
    stop = Stop()
    stop.close()
    files = [tmp_path / "a", tmp_path / "b"]
    reused = [os.open(f, os.O_WRONLY | os.O_CREAT) for f in files]  # likely the pipe's two descriptors
    try:
        stop.request()
    finally:
        for fd in reused:
            os.close(fd)
    assert [f.read_bytes() for f in files] == [b"", b""]
    assert stop.requested


def test_a_signal_stops_the_loop_in_the_main_thread() -> None:
    """The handler only sets a flag and writes to a pipe: signals arriving
    over and over while the loop sleeps or probes cannot deadlock it."""
    config = parse_config(["--interval", "0.1", "--timeout", "0.05", "--summary-interval", "1"], {})
    monitor = Monitor(config, Logs(config, io.StringIO()).events, probe_fn=lambda *_: ok())
    stop = Stop()
    seen = []

    def handler(signum: int, _: object) -> None:
        seen.append(signum)
        if len(seen) >= 50:
            stop.request()

    previous = signal.signal(signal.SIGUSR1, handler)
    main = threading.get_ident()

    def pester() -> None:
        while not stop.requested:
            signal.pthread_kill(main, signal.SIGUSR1)
            time.sleep(0.005)

    pesterer = threading.Thread(target=pester)
    try:
        pesterer.start()
        run(monitor, stop)
    finally:
        stop.request()
        pesterer.join(10)
        signal.signal(signal.SIGUSR1, previous)
        stop.close()
    assert len(seen) >= 50
    assert monitor.probes >= 1


def test_a_hung_toggle_never_delays_a_probe(fault_server: Callable[..., FaultServer]) -> None:
    """The toggle gets what is left before the next slot; with no room it is
    recorded as skipped, never sent late."""

    def status_ok_flaky_hangs(conn: socket.socket) -> None:
        if read_request(conn).startswith(b"GET"):
            conn.sendall(answer("200 OK", b"OK\n"))
        else:
            conn.recv(1)

    server = fault_server(status_ok_flaky_hangs)
    out = io.StringIO()
    config = parse_config(["--target", server.url, "--interval", "0.5", "--timeout", "0.48",
                           "--flaky-interval", "0.5", "--summary-interval", "10"], {})  # fmt: skip
    budgets: list[float] = []

    def toggle(url: str, budget: float) -> ToggleResult:
        budgets.append(budget)
        return toggle_flaky(url, budget)

    monitor = Monitor(config, Logs(config, out).events, toggle_fn=toggle)
    ran = run_for(monitor, lambda: monitor.probes >= 6)
    assert budgets, "no toggle was sent"
    assert max(budgets) <= config.interval - min(SLOT_SLACK_S, config.interval / 10) < config.timeout, budgets
    toggles = records(out, "flaky_toggle")
    assert {t["error_type"] for t in toggles} <= {"read_timeout", "skipped"}, toggles
    assert len(records(out, "probe")) >= int(ran / config.interval), "a probe slot went without a record"


def test_slow_probes_leave_no_room_for_toggles() -> None:
    out = io.StringIO()
    config = parse_config(["--interval", "0.2", "--timeout", "0.15", "--flaky-interval", "0.2",
                           "--summary-interval", "10"], {})  # fmt: skip

    def slow_probe(*_: object) -> ProbeResult:
        time.sleep(0.19)  # a fake: a real one would have timed out at 0.15
        return ok(190)

    def toggle(*_: object) -> ToggleResult:
        raise AssertionError("a toggle was sent without room for it")

    monitor = Monitor(config, Logs(config, out).events, probe_fn=slow_probe, toggle_fn=toggle)
    run_for(monitor, lambda: monitor.toggles >= 2)
    assert not records(out, "internal_error"), "a toggle was sent (the loop logs what the fake raised)"
    toggles = records(out, "flaky_toggle")
    assert [t["error_type"] for t in toggles] == ["skipped"] * len(toggles)
    assert "left before the next probe" in toggles[0]["error"]


def test_every_slot_has_a_probe_record_whatever_the_server_does(fault_url: Callable[[Fault], str]) -> None:
    """One monitor per fault (and per bad host name), all at once: each
    records one probe per slot that started before the stop."""
    base = parse_config(["--interval", "0.5", "--timeout", "0.3", "--flaky-interval", "0.5",
                         "--summary-interval", "10"], {})  # fmt: skip
    targets = {name: fault_url(fault) for name, fault in FAULTS.items()}
    targets |= {"empty label": "http://.invalid", "space in host": "http://exa mple.invalid",
                "snowman": "http://\N{SNOWMAN}.invalid"}  # fmt: skip
    runs: dict[str, tuple[Monitor, io.StringIO]] = {}
    for name, url in targets.items():
        out = io.StringIO()
        logger = logging.getLogger(f"test.monitor.{len(runs)}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        handler = logging.StreamHandler(out)
        handler.setFormatter(JsonLines())
        logger.addHandler(handler)
        runs[name] = (Monitor(dataclasses.replace(base, target=url), Events(logger)), out)

    stops = {name: Stop() for name in runs}
    began: dict[str, float] = {}  # when each loop started: its first slot

    def start(name: str) -> None:
        began[name] = time.monotonic()
        run(runs[name][0], stops[name])

    threads = [threading.Thread(target=start, args=(name,)) for name in runs]
    for thread in threads:
        thread.start()
    time.sleep(2.2)
    stopping = time.monotonic()
    for stop in stops.values():
        stop.request()
    stopped = time.monotonic()
    for thread in threads:
        thread.join(10)
    for stop in stops.values():
        stop.close()
    for name, (_, out) in runs.items():
        probes = records(out, "probe")
        # One record per slot of this loop before the stop, but the last
        # slot's probe may not have started yet on a loaded machine.
        most = int((stopped - began[name]) / base.interval) + 1
        least = int((stopping - began[name]) / base.interval)
        assert least <= len(probes) <= most, (name, len(probes), least, most)
        assert [p["seq"] for p in probes] == list(range(1, len(probes) + 1))
        for record in records(out):
            assert schema_errors(record) == [], (name, record)


@pytest.fixture
def otlp() -> Iterator[Callable[[str], OTLPReceiver]]:
    yield from stand_ins(OTLPReceiver)


def test_a_heartbeat_that_cannot_be_written_stops_no_verdict(
    tmp_path: Path, go_server: Callable[..., GoServer], otlp: Callable[[str], OTLPReceiver]
) -> None:
    """The heartbeat's directory removed mid-run, then the server set to 503:
    the verdict still changes and the spans still come; the failing
    heartbeat is said once, and once again when it works again."""
    server = go_server()
    receiver = otlp("ok")
    beat_dir = tmp_path / "run"
    beat_dir.mkdir()
    out = io.StringIO()
    config = parse_config(["--target", server.url, "--interval", "0.2", "--timeout", "0.15",
                           "--summary-interval", "1", "--flaky-interval", "0"], {})  # fmt: skip
    tracing = Tracing(TraceSettings(receiver.url + "/v1/traces", 2.0), drain=5)
    monitor = Monitor(config, Logs(config, out).events, heartbeat=beat_dir / "beat", tracing=tracing)
    stop = Stop()
    thread = threading.Thread(target=run, args=(monitor, stop))
    thread.start()
    try:
        wait_until(lambda: monitor.probes >= 3, 10)
        (beat_dir / "beat").unlink()
        beat_dir.rmdir()
        requests.post(server.url + "/status/503", timeout=5).raise_for_status()
        wait_until(lambda: monitor.verdict == "down", 10)
        failing_since = monitor.probes
        beat_dir.mkdir()
        wait_until(lambda: monitor.probes >= failing_since + 3, 10)
    finally:
        stop.request()
        thread.join(10)
        stop.close()
    tracing.close()
    beats = records(out, "heartbeat")
    assert [b["state"] for b in beats] == ["failing", "recovered"], beats
    assert not records(out, "internal_error")
    assert [r["verdict"] for r in records(out, "health_changed")][-1] == "down"
    probes = records(out, "probe")
    wait_until(lambda: len({s.trace_id for s in receiver.spans}) >= len(probes), 10)
    assert {p["trace_id"] for p in probes} <= {s.trace_id for s in receiver.spans}


@pytest.mark.parametrize("step", [-20.0, 20.0])
def test_a_wall_clock_step_changes_neither_rhythm_nor_count(step: float) -> None:
    """The wall clock stepped back or forward mid-run (NTP, a resumed VM):
    the probes keep one interval apart and none is lost or added."""
    config = parse_config(["--interval", "0.2", "--timeout", "0.1", "--summary-interval", "10",
                           "--flaky-interval", "0"], {})  # fmt: skip
    starts: list[float] = []

    def probe(*_: object) -> ProbeResult:
        starts.append(time.monotonic())
        return ok()

    monitor = Monitor(config, Logs(config, io.StringIO()).events, probe_fn=probe)
    with time_machine.travel(datetime.datetime.now(), tick=True) as traveller:
        stepped = threading.Timer(0.7, traveller.shift, args=(step,))
        stepped.start()
        ran = run_for(monitor, lambda: len(starts) >= 12)
        stepped.join()
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(starts) >= 12, f"{len(starts)} probes in {ran:.1f} s"
    assert max(gaps) < 1.0, gaps  # stepped back, schedule stalled for the step (20 s)
    assert len(starts) <= (starts[-1] - starts[0]) / config.interval + 2, gaps  # and none came extra


def test_toggles_run_on_their_own_slots() -> None:
    """Every --flaky-interval from start, not after the next probe: toggles
    at 0.6, 1.2, 1.8 s with probes every 3 s (not at 3 s)."""
    config = parse_config(["--interval", "3", "--timeout", "0.1", "--summary-interval", "10",
                           "--flaky-interval", "0.6"], {})  # fmt: skip
    began = time.monotonic()
    toggled: list[float] = []

    def toggle(url: str, budget: float) -> ToggleResult:
        toggled.append(time.monotonic() - began)
        return ToggleResult("POST", url, 202, 1.0, True, None, None, "0" * 32, True)

    monitor = Monitor(config, Logs(config, io.StringIO()).events, probe_fn=lambda *_: ok(), toggle_fn=toggle)
    run_for(monitor, lambda: len(toggled) >= 3)
    late = [at - 0.6 * k for k, at in enumerate(toggled[:3], 1)]
    # After the probes they came at 3, 6 and 9 s; a busy machine may add some lag.
    assert all(-0.05 < lag < 1.0 for lag in late), toggled


def test_the_grid_keeps_its_slots_through_overruns_and_stalls() -> None:
    now = [100.0]
    grid = Grid(lambda: now[0])
    ran: list[tuple[str, float]] = []
    fast = grid.every(1.0, lambda: ran.append(("fast", now[0])), first=0)
    grid.every(2.0, lambda: ran.append(("slow", now[0])))
    assert grid.run_pending() == 1  # the first slot is at once
    now[0] = 102.0  # fast is due at 101 and 102, slow at 102: the earliest slot first, then by order
    assert grid.run_pending() == 3
    assert [name for name, _ in ran] == ["fast", "fast", "fast", "slow"]
    now[0] = 102.5
    assert grid.seconds_to(fast) == 0.5
    now[0] = 110.2  # a stall of more than two periods: on to the next slot of the same grid
    grid.run_pending()
    assert grid.seconds_to(fast) == pytest.approx(0.8)
    assert grid.idle_seconds() == pytest.approx(0.8)


def test_a_grid_of_a_thousand_jobs_runs_them_in_slot_order() -> None:
    """1,000 jobs spread over a period (the fleet's targets): each due job
    runs once per slot, earliest slot first, ties by registration, and each
    knows its slot (due_at)."""
    now = [0.0]
    grid = Grid(lambda: now[0])
    ran: list[tuple[float, int]] = []
    for i in range(1000):
        grid.every(10.0, lambda i=i: ran.append((grid.due_at, i)), first=(i * 7 % 1000) / 100)
    now[0] = 9.995  # every job's first slot has come, no second one
    assert grid.run_pending() == 1000
    now[0] = 19.995
    assert grid.run_pending() == 1000
    assert ran == sorted(ran)
    assert len({i for _, i in ran[:1000]}) == 1000
    assert grid.idle_seconds() == pytest.approx(0.005)  # the job whose slots are 0, 10, 20...


def test_a_summary_at_the_defaults_counts_10_probes() -> None:
    """The README's "10 probes in its 30 s window": probes every 3 s, each
    counted from its slot, the summary at 30 s after that slot's probe. (By
    their end times, a slow first probe made it 11.)"""
    config = parse_config([], {})
    now = [1000.0]
    out = io.StringIO()

    def probe(*_: object) -> ProbeResult:
        took = 0.4 if now[0] < 1001 else 0.005  # the first probe is slow: a cold start
        now[0] += took
        return ok(took * 1000)

    monitor = Monitor(config, Logs(config, out).events, clock=lambda: now[0], probe_fn=probe)
    for k in range(31):
        now[0] = 1000.0 + 0.002 + 3 * k  # each probe starts 2 ms after its slot
        monitor.probe_once()
        if k % 10 == 0 and k:
            monitor.summarize()
    assert [s["probes"] for s in records(out, "summary")] == [10, 10, 10]


def test_an_unknown_flaky_mode_is_said_not_guessed() -> None:
    config = parse_config(["--flaky-interval", "1"], {})
    sent: list[float] = []

    def toggle(url: str, budget: float) -> ToggleResult:
        sent.append(budget)
        return ToggleResult("POST", url, None, 1.0, False, "read_timeout", "timed out", "0" * 32, None)

    monitor = Monitor(config, Logs(config, io.StringIO()).events, toggle_fn=toggle)
    assert monitor.restore_flaky() == "", "no toggle sent: nothing to restore"
    monitor.toggle(2.0)
    assert "unknown" in monitor.restore_flaky()
    assert len(sent) == 1, "no restoring toggle on a guess"


def test_only_skipped_toggles_leave_nothing_to_restore() -> None:
    """A skipped toggle was never sent: it changed nothing and says nothing
    of the flaky mode."""
    config = parse_config(["--flaky-interval", "1"], {})
    sent: list[float] = []

    def toggle(url: str, budget: float) -> ToggleResult:
        sent.append(budget)
        return ToggleResult("POST", url, 202, 1.0, True, None, None, "0" * 32, True)

    monitor = Monitor(config, Logs(config, io.StringIO()).events, toggle_fn=toggle)
    monitor.toggle(0.0)  # no room before the next probe: skipped
    assert monitor.toggles == 1
    assert monitor.restore_flaky() == ""
    assert sent == []


def test_a_window_that_fails_loses_no_probe_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """The window is one side effect among others: its failure is an
    internal_error, and the probe's record is still written."""
    out = io.StringIO()
    config = parse_config(["--interval", "1", "--timeout", "0.5"], {})
    monitor = Monitor(config, Logs(config, out).events, clock=lambda: 5.0, probe_fn=lambda *_: ok())

    def broken(*_: object) -> None:
        raise RuntimeError("a bug in the window")

    monkeypatch.setattr(monitor.window, "add", broken)
    monitor.probe_once()
    assert [p["seq"] for p in records(out, "probe")] == [1]
    assert [e["job"] for e in records(out, "internal_error")] == ["probe"]


def test_a_bug_that_quotes_the_url_shows_no_password() -> None:
    """A probe that raises (a bug) with the target's URL in its message:
    the internal_error record hides the password as the probe record does."""
    out = io.StringIO()
    config = parse_config(["--target", "http://user:s3cret@127.0.0.1:9", "--interval", "1", "--timeout", "0.5"], {})

    def broken(url: str, *_: object) -> ProbeResult:
        raise RuntimeError(f"cannot probe {url}")

    monitor = Monitor(config, Logs(config, out).events, clock=lambda: 5.0, probe_fn=broken)
    monitor.probe_once()
    assert [r["event"] for r in records(out)] == ["internal_error", "probe", "health_changed"]
    assert "s3cret" not in out.getvalue()
    assert "user:***@127.0.0.1:9" in records(out, "internal_error")[0]["error"]
