"""The loop: a plain synchronous schedule of jobs that probe, toggle and
summarise, each on its own slots of a monotonic clock (client.grid).
Every scheduled probe yields exactly one probe record, started on its
slot: the probe's budget is shorter than the interval, and a flaky toggle
runs in the gap between probes, with what is left of the gap as its budget
(or is recorded as skipped)."""

from __future__ import annotations

import contextlib
import os
import select
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from client.config import Config
from client.grid import Grid
from client.probe import ProbeResult, ToggleResult, hide_password, probe, redact, skipped_toggle, toggle_flaky
from client.records import Events
from client.summary import Window
from client.tracing import Tracing
from client.transport import Clock

#: What a toggle leaves free before the next probe's slot (a tenth of the
#: interval when that is less), for the records and the loop; a probe starts
#: within this of its slot.
SLOT_SLACK_S = 0.1
#: A toggle is not sent with less budget than this (the smallest --timeout).
MIN_TOGGLE_BUDGET_S = 0.01
#: Seconds the toggle that restores flaky mode at stop may take (at most
#: --timeout): with a probe in flight and Loki black-holed, stopping stays
#: under Docker's 10 s grace.
RESTORE_BUDGET_S = 1.0


class Stop:
    """A stop request that a signal handler can make safely: it sets a flag
    and writes a byte to a pipe, and takes no lock (Event.set would, and the
    handler runs in the main thread, which may hold it). The loop sleeps on
    the pipe."""

    def __init__(self) -> None:
        self.requested = False
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def request(self) -> None:
        self.requested = True
        with contextlib.suppress(OSError):  # the pipe is full: the loop is woken already
            os.write(self._write, b"\0")

    def wait(self, seconds: float) -> None:
        """Sleep until seconds have passed or a stop is requested."""
        if self.requested:
            return
        readable, _, _ = select.select([self._read], [], [], max(seconds, 0.0))
        if readable:
            with contextlib.suppress(OSError):
                os.read(self._read, 512)

    def close(self) -> None:
        # The handler stays installed: a late signal must find no descriptor
        # (os.write(-1) fails, quietly) rather than one reused by a file.
        read, write = self._read, self._write
        self._read = self._write = -1
        os.close(read)
        os.close(write)


def each(events: Events, job: str, effects: Iterable[Callable[[], None]], url: str = "") -> None:
    """Run every effect, even when an earlier one failed: one failing side
    effect (a record, the verdict, a span) must not cancel the others. Each
    failure is an internal_error record, if that can be written, with the
    password of url hidden."""
    for effect in effects:
        try:
            effect()
        except Exception as exc:  # noqa: BLE001 - one failing side effect must not cancel the others
            with contextlib.suppress(Exception):
                events.internal_error(job, exc, url)


def crashed(events: Events, exc: Exception, method: str, url: str) -> ProbeResult:
    """The result of a probe that raised (a bug in the client): still a
    probe's outcome, `unknown`, and an internal_error record, the password
    of url hidden in both."""
    with contextlib.suppress(Exception):
        events.internal_error("probe", exc, url)
    error = hide_password(f"{type(exc).__name__}: {exc}", url)[:200]
    return ProbeResult(method, redact(url), None, 0.0, False, "unknown", error, "")


class Heartbeat:
    """The heartbeat file: touched on every beat; a heartbeat record says
    once when touching starts failing and once when it works again, not
    once per beat."""

    def __init__(self, path: Path | None, events: Events) -> None:
        self.path = path
        self.events = events
        self.error: str | None = None  # why the file cannot be touched

    def beat(self) -> None:
        if self.path is None:
            return
        try:
            self.path.touch()
        except OSError as exc:
            if self.error is None:
                self.error = f"{type(exc).__name__}: {exc}"[:300]
                self.events.heartbeat("failing", str(self.path), self.error)
            return
        if self.error is not None:
            self.error = None
            self.events.heartbeat("recovered", str(self.path), None)


def restore_flaky(flaky_after: bool | None, toggles: int, send: Callable[[], ToggleResult]) -> str:
    """At stop: turn flaky mode back off with send() if this client's
    toggles left it on. Returns what happened, for the stopped record; ""
    when the toggles left it off or none was sent."""
    if flaky_after is False or (flaky_after is None and toggles == 0):
        return ""
    if flaky_after is None:
        return "flaky mode unknown (the last toggle got no answer that says): not restored"
    if send().flaky is False:
        return "flaky mode turned back off"
    return "flaky mode may still be on: the restoring toggle failed"


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
        tracing: Tracing | None = None,
    ) -> None:
        self.config = config
        self.events = events
        self.clock = clock
        self.probe_fn = probe_fn
        self.toggle_fn = toggle_fn
        self.heartbeat = Heartbeat(heartbeat, events)
        self.tracing = tracing or Tracing(None)
        self.window = Window(config.summary_interval, origin=clock())
        self.verdict: str | None = None
        self.flaky_after: bool | None = None  # the flaky mode after this client's last toggle, if told
        self.toggles_sent = 0  # toggles counts the skipped ones too
        self.probes = 0
        self.toggles = 0

    def probe_once(self) -> None:
        """One probe, one record, whatever happens in the probe. Each side
        effect (the record, the window, the heartbeat, the verdict, the
        span) runs even when another one failed."""
        self.probes += 1
        started = self.clock()  # the window counts a probe from its slot, not from its end
        try:
            result = self.probe_fn(self.config.status_url, self.config.timeout, self.config.success_codes)
        except Exception as exc:  # noqa: BLE001 - a bug in the probe is still a probe's outcome
            result = crashed(self.events, exc, "GET", self.config.status_url)
        now = self.clock()
        each(
            self.events, "probe", (
                lambda: self.events.probe(self.probes, result),
                lambda: self.window.add(started, result),
                self.heartbeat.beat,
                lambda: self._judge(now),
                lambda: self.tracing.record(result),  # last: the record, the heartbeat and the verdict come first
            ),
            self.config.target,
        )  # fmt: skip

    def _judge(self, now: float) -> None:
        summary = self.window.summary(now)
        if summary.verdict != self.verdict:
            self.events.health_changed(self.verdict, summary)
            self.verdict = summary.verdict

    def toggle(self, room: float) -> None:
        """Toggle the flaky mode within room seconds (what is left before
        the next probe's slot): with too little, the toggle is recorded as
        skipped rather than sent late."""
        budget = min(self.config.timeout, room - min(SLOT_SLACK_S, self.config.interval / 10))
        if budget < MIN_TOGGLE_BUDGET_S:
            self.toggles += 1
            why = f"only {max(room, 0):.3f} s left before the next probe"
            self.events.flaky_toggle(self.toggles, skipped_toggle(self.config.flaky_url, why))
            return
        self.toggle_once(budget)

    def toggle_once(self, budget: float, restore: bool = False) -> ToggleResult:
        self.toggles += 1
        self.toggles_sent += 1
        result = self.toggle_fn(self.config.flaky_url, budget)
        self.flaky_after = result.flaky
        self.events.flaky_toggle(self.toggles, result, restore=restore)
        self.tracing.record(result)
        return result

    def restore_flaky(self) -> str:
        """At stop: turn flaky mode back off if this client's toggles left
        it on, with one more toggle within RESTORE_BUDGET_S (at most
        --timeout). Returns what happened, for the stopped record; "" when
        the toggles left it off or none was sent."""
        budget = min(self.config.timeout, RESTORE_BUDGET_S)
        return restore_flaky(self.flaky_after, self.toggles_sent, lambda: self.toggle_once(budget, restore=True))

    def summarize(self) -> None:
        self.events.summary(self.window.summary(self.clock()))


def run(monitor: Monitor, stop: Stop) -> None:
    """Run the jobs until a stop is requested; no job starts after that.
    The first probe runs at once; toggles and summaries each run on their
    own slots, one period after start and every period after that."""
    config = monitor.config
    grid = Grid(monitor.clock)
    probes = grid.every(config.interval, _guarded(monitor, "probe", monitor.probe_once), first=0)
    if config.flaky_interval > 0:
        toggle = _guarded(monitor, "flaky_toggle", lambda: monitor.toggle(grid.seconds_to(probes)))
        grid.every(config.flaky_interval, toggle)
    grid.every(config.summary_interval, _guarded(monitor, "summary", monitor.summarize))
    while not stop.requested:
        grid.run_pending(lambda: not stop.requested)
        stop.wait(grid.idle_seconds())


def _guarded(monitor: Monitor, name: str, job: Callable[[], None]) -> Callable[[], None]:
    """job, with any exception logged instead of raised: one job's bug must
    not stop the loop or the other jobs."""

    def run_job() -> None:
        try:
            job()
        except Exception as exc:  # noqa: BLE001
            with contextlib.suppress(Exception):  # if logging fails too, the loop still goes on
                monitor.events.internal_error(name, exc, monitor.config.target)

    return run_job
