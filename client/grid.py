"""Jobs on fixed slots of a monotonic clock.

schedule (the library) keeps the registry of jobs: each is made with
`schedule.Scheduler.every(period).seconds.do(job)`, as in any schedule loop.
Its timing is not used: schedule computes a job's next run from
`datetime.now()` at the end of the job, so the rhythm drifts by each job's
duration, and a wall clock stepped back (NTP, a VM resumed) stalls every
job for the length of the step. Here each job runs on its own slots,
origin + first + k x period, on `time.monotonic()`: a wall-clock step either
way changes neither the rhythm nor the count.

A job that overran its next slot runs once at once rather than being
dropped; after a longer stall (more than two periods: a suspended machine)
it moves on to the next slot to come, on the same grid. When several jobs
are due, the one with the earliest slot runs first; at the same slot, the
one registered first. The slots wait in a heap ordered that way, so
finding the next due job costs the same for 1,000 jobs as for three.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import schedule

Clock = Callable[[], float]

#: Slots closer than this (seconds) are the same slot: 3 x 0.1 and 0.3 differ
#: in floating point, and a tie must go to the job registered first.
SAME_SLOT_S = 1e-6


@dataclass
class Slot:
    """A job's place on the grid: its period, and the k of its next slot."""

    job: schedule.Job
    period: float
    first: float  # seconds from the origin to slot 0
    order: int  # registration order, for ties
    k: int = 0

    def at(self, origin: float) -> float:
        """When the next slot is, on the grid's clock."""
        return origin + self.first + self.k * self.period

    def key(self, origin: float) -> tuple[int, int]:
        """Its place among the slots: the earliest first, then the first registered."""
        return round(self.at(origin) / SAME_SLOT_S), self.order


class Grid:
    """Jobs, each run on the slots origin + first + k x period of a
    monotonic clock. The origin is the clock's time when the grid is made."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.origin = clock()
        self.scheduler = schedule.Scheduler()  # the registry of jobs
        self.due_at = self.origin  # the slot (by the clock) of the job running, or last run
        self._slots: list[tuple[tuple[int, int], Slot]] = []  # a heap, by Slot.key
        self._count = 0

    def every(self, period: float, job: Callable[[], None], first: float | None = None) -> Slot:
        """Run job every period seconds, the first time first seconds after
        the origin (default: one period, as schedule does; 0 = at once)."""
        if not period > 0:
            raise ValueError(f"period {period!r} is not positive")
        registered: schedule.Job = self.scheduler.every(period).seconds.do(job)  # type: ignore[arg-type]
        slot = Slot(registered, period, period if first is None else first, self._count)
        self._count += 1
        heapq.heappush(self._slots, (slot.key(self.origin), slot))
        return slot

    def seconds_to(self, slot: Slot) -> float:
        """Seconds until slot's job is next due (negative when overdue)."""
        return slot.at(self.origin) - self.clock()

    def idle_seconds(self) -> float:
        """Seconds until the next job is due; 0 when one is due now."""
        if not self._slots:
            return math.inf
        return max(self.seconds_to(self._slots[0][1]), 0.0)

    def run_pending(self, go_on: Callable[[], bool] = lambda: True) -> int:
        """Run every job that is due, earliest slot first; before each one,
        stop if go_on() is false. Returns how many jobs ran."""
        ran = 0
        while go_on() and (slot := self._due()) is not None:
            self.due_at = slot.at(self.origin)
            self._advance(slot)
            slot.job.job_func()  # type: ignore[misc]
            ran += 1
        return ran

    def _due(self) -> Slot | None:
        if not self._slots or self._slots[0][1].at(self.origin) > self.clock():
            return None
        return self._slots[0][1]

    def _advance(self, slot: Slot) -> None:
        """Move slot to its next slot, before its job runs: one slot on, or
        after a stall of more than two periods, the first slot to come."""
        now = self.clock()
        slot.k += 1
        if slot.at(self.origin) + slot.period <= now:
            slot.k = math.floor((now - self.origin - slot.first) / slot.period) + 1
        heapq.heapreplace(self._slots, (slot.key(self.origin), slot))
