"""Many targets on one loop, none waiting for another.

The loop is plain and synchronous, and the only owner of time: it keeps
each target's next slot in a heap on time.monotonic() (a wall-clock step
cannot stall it), and when slots come due it hands their probes to a
bounded thread pool and goes straight back to its slots. It never waits
for a probe: a hung target holds one worker for at most its timeout, which
is shorter than its interval, so its own next slot finds it done, and no
other target's slot waits behind it.

Targets of the same interval are spread over it by a stable offset (a hash
of the name), so 1,000 targets never fire in one burst, and a target's
slots are the same from one run to the next. Per-target state (window,
verdict, count) lives here, keyed by name, under one lock.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import math
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from client.config import Config
from client.expectations import probe_target
from client.monitor import Stop
from client.probe import ProbeResult, ToggleResult, hide_password, redact, toggle_flaky
from client.records import Events
from client.summary import DEGRADED, DEGRADED_BELOW, HEALTHY, Summary, Window
from client.targets import Target
from client.tracing import Tracing
from client.transport import Clock

#: The pool never grows beyond this many threads.
MAX_WORKERS = 512
#: The loop wakes at least this often (to touch the heartbeat file).
MAX_SLEEP_S = 1.0

#: Called in the worker as a probe starts, with the target's name, its slot
#: and the start (both by the loop's clock): for tests and the benchmark.
OnStart = Callable[[str, float, float], None]


def offset(name: str, interval: float) -> float:
    """Where in its interval a target's slots fall: stable across runs."""
    return zlib.crc32(name.encode()) / 2**32 * interval


def pool_size(targets: tuple[Target, ...]) -> int:
    """Enough workers for every target's probe to hang for its whole
    timeout at once, with room for offsets that bunch up: the mean number
    busy plus four standard deviations and four."""
    busy = sum(t.timeout / t.interval for t in targets)
    return min(MAX_WORKERS, math.ceil(busy + 4 * math.sqrt(busy) + 4))


def next_slot(slot: float, interval: float, now: float) -> float:
    """The slot after slot; after a stall longer than an interval (a
    suspended machine), the first slot of the grid still to come."""
    following = slot + interval
    if following + interval > now:
        return following
    return slot + math.ceil((now - slot) / interval) * interval


def judged(s: Summary, max_duration: float) -> Summary:
    """The summary judged by the target's own max_duration instead of the
    default p95 threshold: slower is degraded, never down."""
    if s.verdict not in (HEALTHY, DEGRADED) or s.p95_ms is None or s.availability is None:
        return s
    if s.availability < DEGRADED_BELOW:
        return s
    if s.p95_ms >= max_duration * 1000:
        return replace(s, verdict=DEGRADED, reason=f"p95 latency {s.p95_ms:.0f} ms >= {max_duration * 1000:g} ms")
    return replace(s, verdict=HEALTHY, reason=f"availability {s.availability}%, p95 latency {s.p95_ms:.0f} ms")


@dataclass(frozen=True)
class Toggle:
    """The status server's flaky toggle: POST url every interval."""

    url: str
    interval: float
    budget: float


def fleet_toggle(config: Config) -> Toggle | None:
    """With --targets, the flaky toggle goes to --target's status server
    only when --target (or TARGET_URL) was given."""
    if not config.target_given or config.flaky_interval <= 0:
        return None
    return Toggle(config.flaky_url, config.flaky_interval, min(config.timeout, config.flaky_interval * 0.9))


@dataclass
class _State:
    target: Target
    window: Window
    verdict: str | None = None
    seq: int = 0


@dataclass
class Fleet:
    """The targets, their state, and the jobs that probe and summarise them."""

    targets: tuple[Target, ...]
    events: Events
    summary_interval: float
    clock: Clock = time.monotonic
    probe_fn: Callable[[Target], ProbeResult] = probe_target
    toggle: Toggle | None = None
    toggle_fn: Callable[[str, float], ToggleResult] = toggle_flaky
    heartbeat: Path | None = None
    tracing: Tracing = field(default_factory=lambda: Tracing(None))
    on_start: OnStart | None = None
    probes: int = 0
    toggles: int = 0
    started: float = 0.0  # when run() began, by clock: slots count from it

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        # Tracing hands a root span its IDs through a generator shared by
        # every span: one result at a time, or a child could take them.
        self._tracing_lock = threading.Lock()
        self._states = {t.name: _State(t, Window(self.summary_interval)) for t in self.targets}

    def probe_once(self, target: Target, slot: float) -> None:
        """One probe, one record, whatever happens in the probe (in a worker)."""
        if self.on_start is not None:
            self.on_start(target.name, slot, self.clock())
        try:
            result = self.probe_fn(target)
        except Exception as exc:  # noqa: BLE001 - a bug in the probe is still a probe's outcome
            self.events.internal_error("probe", exc)
            error = hide_password(f"{type(exc).__name__}: {exc}", target.url)[:200]
            result = ProbeResult(target.method, redact(target.url), None, 0.0, False, "unknown", error, "")
        with self._lock:
            state = self._states[target.name]
            state.seq += 1
            self.probes += 1
            now = self.clock()
            state.window.add(now, result)
            self.events.probe(state.seq, result, target.name)
            summary = judged(state.window.summary(now), target.expect.max_duration)
            if summary.verdict != state.verdict:
                self.events.health_changed(state.verdict, summary, target.name)
                state.verdict = summary.verdict
        with self._tracing_lock:
            self.tracing.record(result)

    def summarize(self) -> None:
        """A summary record per target, then the fleet's."""
        with self._lock:
            now = self.clock()
            summaries = [
                (s.target.name, judged(s.window.summary(now), s.target.expect.max_duration))
                for s in self._states.values()
            ]
        for name, summary in summaries:
            self.events.summary(summary, name)
        self.events.fleet({name: summary.verdict for name, summary in summaries})

    def toggle_once(self, toggle: Toggle) -> None:
        with self._lock:
            self.toggles += 1
            seq = self.toggles
        result = self.toggle_fn(toggle.url, toggle.budget)
        self.events.flaky_toggle(seq, result)
        with self._tracing_lock:
            self.tracing.record(result)

    def run(self, stop: Stop) -> None:
        """Probe every target on its slots until a stop is requested; the
        probes in flight then end within their timeouts, and no queued one
        starts."""
        start = self.started = self.clock()
        slots = [(start + offset(t.name, t.interval), i) for i, t in enumerate(self.targets)]
        heapq.heapify(slots)
        jobs = [_Job(start + self.summary_interval, self.summary_interval, self._guarded("summary", self.summarize))]
        if self.toggle is not None:
            toggle_job = functools.partial(self._guarded("flaky_toggle", self.toggle_once), self.toggle)
            jobs.append(_Job(start + self.toggle.interval, self.toggle.interval, toggle_job))
        pool = ThreadPoolExecutor(pool_size(self.targets), thread_name_prefix="probe")
        touched = start
        try:
            while not stop.requested:
                now = self.clock()
                while slots[0][0] <= now and not stop.requested:
                    slot, i = slots[0]
                    target = self.targets[i]
                    pool.submit(self._guarded("probe", self.probe_once), target, slot)
                    heapq.heapreplace(slots, (next_slot(slot, target.interval, now), i))
                for job in jobs:
                    if job.due <= now and not stop.requested:
                        pool.submit(job.run)
                        job.due = next_slot(job.due, job.period, now)
                if self.heartbeat is not None and now - touched >= MAX_SLEEP_S / 2:
                    self.heartbeat.touch()
                    touched = now
                wake = min(slots[0][0], *(job.due for job in jobs), now + MAX_SLEEP_S)
                stop.wait(wake - self.clock())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _guarded(self, name: str, job: Callable[..., None]) -> Callable[..., None]:
        """job, with any exception logged: a worker's exception would
        otherwise vanish into its future."""

        def run_job(*args: object) -> None:
            try:
                job(*args)
            except Exception as exc:  # noqa: BLE001
                with contextlib.suppress(Exception):
                    self.events.internal_error(name, exc)

        return run_job


@dataclass
class _Job:
    due: float
    period: float
    run: Callable[[], None]
