"""The log records: one event name per outcome and a fixed set of keys per
event. Dashboards and alert rules query these keys, so they are a contract:
records.schema.json holds it (keys, types, meanings), docs/client.md's
record table is checked against it, and the tests validate every record
the client emits against it."""

from __future__ import annotations

import json
import logging
import traceback
from pathlib import Path
from typing import Any

from client.probe import ProbeResult, ToggleResult, hide_password
from client.summary import DEGRADED, DOWN, HEALTHY, UNKNOWN, Summary

#: The target of the records of --target (client.targets.STATUS_SERVER).
STATUS_SERVER = "status-server"

SCHEMA: dict[str, Any] = json.loads((Path(__file__).parent / "records.schema.json").read_text())

#: Keys every record has, in this order.
COMMON_FIELDS = tuple(SCHEMA["$defs"]["common"]["properties"])

#: The keys of each event beyond COMMON_FIELDS, in order.
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    name: tuple(k for k in SCHEMA["$defs"][name]["properties"] if k != "event")
    for name in (ref["$ref"].rpartition("/")[2] for ref in SCHEMA["oneOf"])
}

#: error_types that mean the server answered, badly; the others mean no answer.
ANSWERED_ERRORS = frozenset(
    {"http_status", "informational", "body", "header_mismatch", "body_mismatch", "json_mismatch", "tls_expiring"}
)

VERDICT_LEVELS = {HEALTHY: logging.INFO, DEGRADED: logging.WARNING, DOWN: logging.ERROR}


class Events:
    """Writes the records through one logger."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def emit(self, level: int, event: str, message: str, **fields: Any) -> None:
        if tuple(fields) != EVENT_FIELDS[event]:
            raise ValueError(f"{event} record with keys {tuple(fields)}, want {EVENT_FIELDS[event]}")
        self.logger.log(level, message, extra={"event": event, **fields})

    def probe(self, seq: int, r: ProbeResult, target: str = STATUS_SERVER) -> None:
        if r.success:
            level, message = logging.INFO, f"{r.method} {r.endpoint} -> {_final(r)} in {r.duration_ms:.1f} ms"
        else:
            level = logging.WARNING if r.error_type in ANSWERED_ERRORS else logging.ERROR
            message = f"{r.method} {r.endpoint} failed after {r.duration_ms:.1f} ms: {r.error_type}: {r.error}"
        self.emit(
            level, "probe", message,
            target=target, seq=seq, method=r.method, endpoint=r.endpoint, status_code=r.status_code,
            interim_codes=list(r.interim_codes), duration_ms=r.duration_ms, phases_ms=r.phases_ms,
            success=r.success, error_type=r.error_type, error=r.error, trace_id=r.trace_id,
            tls_days_left=r.tls_days_left,
        )  # fmt: skip

    def flaky_toggle(self, seq: int, r: ToggleResult, restore: bool = False) -> None:
        state = {True: "on", False: "off", None: "not told"}[r.flaky]
        if r.success:
            level = logging.INFO
            message = f"{r.method} {r.endpoint} -> {_final(r)} in {r.duration_ms:.1f} ms; flaky mode {state}"
        else:
            level = logging.WARNING
            message = f"{r.method} {r.endpoint} failed after {r.duration_ms:.1f} ms: {r.error_type}: {r.error}"
        if restore:
            message = "restoring flaky mode at stop: " + message
        self.emit(
            level, "flaky_toggle", message,
            seq=seq, method=r.method, endpoint=r.endpoint, status_code=r.status_code,
            interim_codes=list(r.interim_codes), duration_ms=r.duration_ms, phases_ms=r.phases_ms,
            success=r.success, error_type=r.error_type, error=r.error, trace_id=r.trace_id, flaky=r.flaky,
            restore=restore,
        )  # fmt: skip

    def summary(self, s: Summary, target: str = STATUS_SERVER) -> None:
        self.emit(
            VERDICT_LEVELS.get(s.verdict, logging.WARNING), "summary",
            f"{target} {s.verdict}: {s.successes} of {s.probes} probes succeeded in the last {s.window_s:g} s; "
            f"{s.reason}",
            target=target, window_s=s.window_s, probes=s.probes, successes=s.successes,
            availability=s.availability, p50_ms=s.p50_ms, p95_ms=s.p95_ms, p99_ms=s.p99_ms,
            errors=s.errors, verdict=s.verdict, reason=s.reason,
        )  # fmt: skip

    def health_changed(self, previous: str | None, s: Summary, target: str = STATUS_SERVER) -> None:
        self.emit(
            VERDICT_LEVELS.get(s.verdict, logging.WARNING), "health_changed",
            f"{target} health {previous or 'unknown'} -> {s.verdict}: {s.reason}",
            target=target, verdict=s.verdict, previous=previous, reason=s.reason,
            availability=s.availability, p95_ms=s.p95_ms, probes=s.probes,
        )  # fmt: skip

    def heartbeat(self, state: str, file: str, error: str | None) -> None:
        if state == "failing":
            level, message = logging.ERROR, f"cannot touch the heartbeat file {file}: {error}"
        else:
            level, message = logging.INFO, f"the heartbeat file {file} is touched again"
        self.emit(level, "heartbeat", message, state=state, file=file, error=error)

    def fleet(self, verdicts: dict[str, str | None]) -> None:
        """How many targets are in each verdict; verdicts maps name to verdict."""
        counts = {v: sum(1 for got in verdicts.values() if (got or UNKNOWN) == v) for v in (HEALTHY, DEGRADED, DOWN)}
        unknown = len(verdicts) - sum(counts.values())
        level = logging.INFO if counts[HEALTHY] == len(verdicts) else logging.WARNING
        self.emit(
            level, "fleet",
            f"{counts[HEALTHY]} of {len(verdicts)} targets healthy, {counts[DEGRADED]} degraded, "
            f"{counts[DOWN]} down, {unknown} unknown",
            targets=len(verdicts), healthy=counts[HEALTHY], degraded=counts[DEGRADED], down=counts[DOWN],
            unknown=unknown,
        )  # fmt: skip

    def internal_error(self, job: str, exc: BaseException, url: str = "") -> None:
        """A job's bug; where its message quotes url, the password is hidden."""
        error = hide_password(f"{type(exc).__name__}: {exc}", url)
        self.emit(
            logging.ERROR, "internal_error", f"{job} failed: {error}",
            job=job, error=error, traceback=hide_password("".join(traceback.format_exception(exc)), url),
        )  # fmt: skip


def _final(r: ProbeResult) -> str:
    """The final status code, and the interim answers before it if any."""
    interim = f" (after {', '.join(map(str, r.interim_codes))})" if r.interim_codes else ""
    return f"{r.status_code}{interim}"
