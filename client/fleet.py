"""Many targets on one loop, none waiting for another.

The loop is the status server's: a plain synchronous loop of schedule
jobs, each on its own slots of a monotonic clock (client.grid), and the
only owner of time. Each target is one job, every interval from a stable
offset; its job hands the probe to a bounded thread pool and returns at
once, so the loop never waits for a probe: a hung target holds one worker
for at most its timeout, which is shorter than its interval, so its own
next slot finds it done, and no other target's slot waits behind it.

Targets of the same interval are spread over it by their offsets (a hash
of the name), so 1,000 targets never fire in one burst, and a target's
slots are the same from one run to the next. Per-target state (window,
verdict, count) lives here, keyed by name, under one lock.
"""

from __future__ import annotations

import contextlib
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
from client.grid import Grid
from client.monitor import RESTORE_BUDGET_S, Heartbeat, Stop, crashed, each, restore_flaky
from client.probe import ProbeResult, ToggleResult, toggle_flaky
from client.records import Events
from client.summary import DEGRADED, DEGRADED_BELOW, HEALTHY, Summary, Window
from client.targets import Target
from client.tracing import Tracing
from client.transport import Clock

#: The pool never grows beyond this many threads.
MAX_WORKERS = 512
#: Seconds between touches of the heartbeat file (a job on the loop itself:
#: the file says the loop is alive, whatever the probes do).
HEARTBEAT_S = 0.5

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
    started: float = 0.0  # the grid's origin, by clock: slots count from it
    flaky_after: bool | None = None  # the flaky mode after this client's last toggle, if told

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        # Tracing hands a root span its IDs through a generator shared by
        # every span: one result at a time, or a child could take them.
        self._tracing_lock = threading.Lock()
        origin = self.clock()
        self._states = {t.name: _State(t, Window(self.summary_interval, origin=origin)) for t in self.targets}

    def probe_once(self, target: Target, slot: float) -> None:
        """One probe, one record, whatever happens in the probe (in a worker).
        Each side effect (the record, the verdict, the span) runs even when
        another one failed."""
        started = self.clock()  # the window counts a probe from its start, not from its end
        if self.on_start is not None:
            self.on_start(target.name, slot, started)
        try:
            result = self.probe_fn(target)
        except Exception as exc:  # noqa: BLE001 - a bug in the probe is still a probe's outcome
            result = crashed(self.events, exc, target.method, target.url)
        with self._lock:
            state = self._states[target.name]
            state.seq += 1
            self.probes += 1
            now = self.clock()
            each(
                self.events, "probe", (
                    lambda: self.events.probe(state.seq, result, target.name),
                    lambda: state.window.add(started, result),
                    lambda: self._judge(state, now),
                ),
                target.url,
            )  # fmt: skip
        with self._tracing_lock:  # last: the record and the verdict come first
            each(self.events, "probe", (lambda: self.tracing.record(result),), target.url)

    def _judge(self, state: _State, now: float) -> None:
        summary = judged(state.window.summary(now), state.target.expect.max_duration)
        if summary.verdict != state.verdict:
            self.events.health_changed(state.verdict, summary, state.target.name)
            state.verdict = summary.verdict

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

    def toggle_once(self, toggle: Toggle, restore: bool = False) -> ToggleResult:
        with self._lock:
            self.toggles += 1
            seq = self.toggles
        result = self.toggle_fn(toggle.url, toggle.budget)
        self.flaky_after = result.flaky
        self.events.flaky_toggle(seq, result, restore=restore)
        with self._tracing_lock:
            self.tracing.record(result)
        return result

    def restore_flaky(self) -> str:
        """At stop: turn flaky mode back off if this client's toggles left
        it on, as the status server's loop does (see monitor.restore_flaky)."""
        if self.toggle is None:
            return ""
        last = replace(self.toggle, budget=min(self.toggle.budget, RESTORE_BUDGET_S))
        return restore_flaky(self.flaky_after, self.toggles, lambda: self.toggle_once(last, restore=True))

    def run(self, stop: Stop) -> None:
        """Probe every target on its slots until a stop is requested; the
        probes in flight then end within their timeouts, and no queued one
        starts. Every job on the grid returns at once: probes, summaries
        and toggles run on the pool, the heartbeat on the loop."""
        grid = Grid(self.clock)
        self.started = grid.origin
        pool = ThreadPoolExecutor(pool_size(self.targets), thread_name_prefix="probe")
        probe = self._guarded("probe", self.probe_once)

        def on_pool(job: Callable[..., None], *args: object) -> Callable[[], None]:
            """A grid job that hands job to the pool and returns at once."""

            def submit() -> None:
                pool.submit(job, *args)

            return submit

        def start(target: Target) -> Callable[[], None]:
            """Target's grid job: its probe, told the slot it is for, on the pool."""

            def submit() -> None:
                pool.submit(probe, target, grid.due_at)

            return submit

        for target in self.targets:
            grid.every(target.interval, start(target), first=offset(target.name, target.interval))
        grid.every(self.summary_interval, on_pool(self._guarded("summary", self.summarize)))
        if self.toggle is not None:
            grid.every(self.toggle.interval, on_pool(self._guarded("flaky_toggle", self.toggle_once), self.toggle))
        if self.heartbeat is not None:
            grid.every(HEARTBEAT_S, self._guarded("heartbeat", Heartbeat(self.heartbeat, self.events).beat), first=0)
        try:
            while not stop.requested:
                grid.run_pending(lambda: not stop.requested)
                stop.wait(grid.idle_seconds())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _guarded(self, name: str, job: Callable[..., object]) -> Callable[..., None]:
        """job, with any exception logged: a worker's exception would
        otherwise vanish into its future."""

        def run_job(*args: object) -> None:
            try:
                job(*args)
            except Exception as exc:  # noqa: BLE001
                with contextlib.suppress(Exception):
                    self.events.internal_error(name, exc)

        return run_job
