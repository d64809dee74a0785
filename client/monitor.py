"""The loop: a plain synchronous schedule that probes, toggles and
summarises, and never lets a job's exception escape."""

from __future__ import annotations

import contextlib
import datetime
import threading
import time
from collections.abc import Callable
from pathlib import Path

import schedule

from client.config import Config
from client.probe import ProbeResult, ToggleResult, probe, toggle_flaky
from client.records import Events
from client.summary import Window
from client.transport import Clock


class Monitor:
    """The jobs, and the state they share: counters, the window, the verdict."""

    def __init__(
        self,
        config: Config,
        events: Events,
        clock: Clock = time.monotonic,
        probe_fn: Callable[[str, float, frozenset[int]], ProbeResult] = probe,
        toggle_fn: Callable[[str, float], ToggleResult] = toggle_flaky,
        heartbeat: Path | None = None,
    ) -> None:
        self.config = config
        self.events = events
        self.clock = clock
        self.probe_fn = probe_fn
        self.toggle_fn = toggle_fn
        self.heartbeat = heartbeat
        self.window = Window(config.summary_interval)
        self.verdict: str | None = None
        self.probes = 0
        self.toggles = 0

    def probe_once(self) -> None:
        self.probes += 1
        result = self.probe_fn(self.config.status_url, self.config.timeout, self.config.success_codes)
        now = self.clock()
        self.window.add(now, result)
        self.events.probe(self.probes, result)
        if self.heartbeat is not None:
            self.heartbeat.touch()
        summary = self.window.summary(now)
        if summary.verdict != self.verdict:
            self.events.health_changed(self.verdict, summary)
            self.verdict = summary.verdict

    def toggle_once(self) -> None:
        self.toggles += 1
        self.events.flaky_toggle(self.toggles, self.toggle_fn(self.config.flaky_url, self.config.timeout))

    def summarize(self) -> None:
        self.events.summary(self.window.summary(self.clock()))


def run(monitor: Monitor, stop: threading.Event) -> None:
    """Run the jobs until stop is set. The first probe runs at once."""
    config = monitor.config
    steady = _Steady(schedule.Scheduler())
    steady.every(config.interval, _guarded(monitor, "probe", monitor.probe_once))
    steady.every(config.summary_interval, _guarded(monitor, "summary", monitor.summarize))
    if config.flaky_interval > 0:
        steady.every(config.flaky_interval, _guarded(monitor, "flaky_toggle", monitor.toggle_once))

    _guarded(monitor, "probe", monitor.probe_once)()  # schedule's first run would be one interval late
    while not stop.is_set():
        steady.run_pending()
        idle = steady.scheduler.idle_seconds
        stop.wait(min(max(idle if idle is not None else 1.0, 0.0), 1.0))


def _guarded(monitor: Monitor, name: str, job: Callable[[], None]) -> Callable[[], None]:
    """job, with any exception logged instead of raised: an exception that
    escapes a job escapes run_pending, and schedule would re-run the job on
    every tick because its next run was never computed."""

    def run_job() -> None:
        try:
            job()
        except Exception as exc:  # noqa: BLE001
            with contextlib.suppress(Exception):  # if logging fails too, the loop still goes on
                monitor.events.internal_error(name, exc)

    return run_job


class _Steady:
    """schedule, keeping each job on its period. schedule computes the next
    run from the end of a job, so every run would drift later by the job's
    duration; this pins it to the start of the run instead. Missed runs are
    not caught up."""

    def __init__(self, scheduler: schedule.Scheduler) -> None:
        self.scheduler = scheduler
        self._ran: list[tuple[schedule.Job, datetime.datetime]] = []  # (job, start of its next run)

    def every(self, seconds: float, job: Callable[[], None]) -> None:
        scheduled = self.scheduler.every(seconds).seconds  # type: ignore[arg-type]
        period = datetime.timedelta(seconds=seconds)

        def run_job() -> None:
            self._ran.append((scheduled, datetime.datetime.now() + period))  # the clock schedule uses
            job()

        scheduled.do(run_job)

    def run_pending(self) -> None:
        self.scheduler.run_pending()
        now = datetime.datetime.now()
        for scheduled, next_run in self._ran:
            scheduled.next_run = max(next_run, now)
        self._ran.clear()
