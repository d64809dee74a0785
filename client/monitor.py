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
from client.probe import Clock, ProbeResult, ToggleResult, probe, toggle_flaky
from client.records import Events
from client.summary import Window


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
    scheduler = schedule.Scheduler()
    steady = _Steady()
    jobs = [(config.interval, "probe", monitor.probe_once), (config.summary_interval, "summary", monitor.summarize)]
    if config.flaky_interval > 0:
        jobs.append((config.flaky_interval, "flaky_toggle", monitor.toggle_once))
    for seconds, name, job in jobs:
        scheduler.every(seconds).seconds.do(steady.wrap(_guarded(monitor, name, job), seconds))  # type: ignore[arg-type]

    _guarded(monitor, "probe", monitor.probe_once)()  # schedule's first run would be one interval late
    while not stop.is_set():
        scheduler.run_pending()
        steady.pin(scheduler)
        idle = scheduler.idle_seconds
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
    """Keeps each job on its period. schedule computes the next run from the
    end of a job, so every run would drift later by the job's duration; this
    pins it to the start of the run instead. Missed runs are not caught up."""

    def __init__(self) -> None:
        self._periods: dict[Callable[[], None], datetime.timedelta] = {}
        self._started: dict[Callable[[], None], datetime.datetime] = {}

    def wrap(self, job: Callable[[], None], seconds: float) -> Callable[[], None]:
        def run_job() -> None:
            self._started[run_job] = datetime.datetime.now()  # the clock schedule uses
            job()

        self._periods[run_job] = datetime.timedelta(seconds=seconds)
        return run_job

    def pin(self, scheduler: schedule.Scheduler) -> None:
        """Call after run_pending: move the jobs that ran to start + period."""
        if not self._started:
            return
        now = datetime.datetime.now()
        for job in scheduler.get_jobs():
            func = getattr(job.job_func, "func", None)  # do() wraps the job in a partial
            if func in self._started:
                job.next_run = max(self._started[func] + self._periods[func], now)
        self._started.clear()
