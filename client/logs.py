"""Log setup: JSON (or text) lines on stdout, and the same JSON to Loki.

The Loki path guards against python-logging-loki's traps: LokiQueueHandler
moves the HTTP off the probing thread, every push has a timeout, the queue
is bounded, failures are counted instead of printing a traceback per
record, entries carry the record's time rather than the send time, and
shutdown drains within a bound.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

import requests
from logging_loki import LokiQueueHandler
from logging_loki.emitter import LokiEmitterV1
from pythonjsonlogger.json import JsonFormatter

from client.config import Config
from client.grid import Clock
from client.records import COMMON_FIELDS, Events

#: The app's logger; never the root logger.
LOGGER_NAME = "monitor"
#: Loki labels: few and bounded. The library adds severity and logger.
LOKI_LABELS = {"service_name": "status-monitor"}
#: The header that names the Loki tenant of a push (--loki-tenant).
TENANT_HEADER = "X-Scope-OrgID"
#: Seconds one push to Loki may take.
LOKI_TIMEOUT = 3.0
#: Records waiting for Loki beyond this are dropped (and counted).
LOKI_QUEUE_SIZE = 10_000
#: Seconds shutdown spends shipping what is still queued.
LOKI_DRAIN = 3.0
#: The OpenTelemetry SDK's logger, whose lines become telemetry_error records.
OTEL_LOGGER = "opentelemetry"
#: Seconds between two telemetry_error records of the same kind.
TELEMETRY_ERROR_EVERY = 300.0
#: Kinds of SDK messages remembered (the SDK has a few dozen).
TELEMETRY_ERROR_KINDS = 100


class JsonLines(JsonFormatter):
    """One JSON object per line: timestamp (UTC, ISO 8601), level, event and
    message first, then the event's fields."""

    def __init__(self) -> None:
        super().__init__("{levelname}{message}", style="{")

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data.pop("levelname", None)
        log_data["timestamp"] = _iso(record.created)
        log_data["level"] = record.levelname.lower()
        ordered = {k: log_data[k] for k in COMMON_FIELDS if k in log_data} | log_data
        log_data.clear()
        log_data.update(ordered)


class TextLines(logging.Formatter):
    """One readable line per record, for people watching the logs. Control
    characters (some come from the network, in error messages) are escaped:
    a server cannot clear the terminal or forge a line."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_iso(record.created)} {record.levelname:<7} {getattr(record, 'event', '-'):<14} {record.getMessage()}"
        return _CONTROL.sub(lambda m: repr(m[0])[1:-1], line)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _iso(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Records to stdout. When stdout is closed under it (`python -m client |
    head -1`), logging would print a "Logging error" traceback per record,
    forever: this handler tells on_closed once and writes nothing more."""

    def __init__(self, stream: TextIO, on_closed: Callable[[], None]) -> None:
        super().__init__(stream)
        self.on_closed = on_closed
        self.closed = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.closed:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        if isinstance(sys.exc_info()[1], BrokenPipeError):
            if not self.closed:
                self.closed = True
                self.on_closed()
            return
        super().handleError(record)


def discard_stdout() -> None:
    """Point the stdout descriptor at /dev/null: what is still buffered for
    a closed pipe then goes nowhere at exit instead of raising there (the
    recipe in Python's docs on SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


class TelemetryErrors(logging.Handler):
    """The OpenTelemetry SDK's own log lines (failed exports, a full queue)
    as telemetry_error records instead of plain text on stderr. Each kind
    of message (its format string) is reported at once the first time, then
    at most once per TELEMETRY_ERROR_EVERY seconds with the number of
    repeats left out in between: a collector that stays down costs one
    record per kind every few minutes, not one per export."""

    def __init__(self, events: Events, every: float = TELEMETRY_ERROR_EVERY, clock: Clock = time.monotonic) -> None:
        super().__init__(logging.WARNING)
        self.events = events
        self.every = every
        self.clock = clock
        self._last: dict[tuple[str, str], tuple[float, int]] = {}  # kind: (last reported, repeats since)
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        kind = (record.name, str(record.msg))
        now = self.clock()
        with self._lock:
            last, suppressed = self._last.get(kind, (-math.inf, 0))
            if now - last < self.every:
                self._last[kind] = (last, suppressed + 1)
                return
            if len(self._last) >= TELEMETRY_ERROR_KINDS and kind not in self._last:
                return  # a bound on the memory, should the SDK ever vary its format strings
            self._last[kind] = (now, 0)
        error = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            error += f": {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        error = " ".join(error.split())[:500]
        level = logging.ERROR if record.levelno >= logging.ERROR else logging.WARNING
        message = f"OpenTelemetry: {error}" + (f" (and {suppressed} more like it)" if suppressed else "")
        self.events.emit(level, "telemetry_error", message, logger=record.name, error=error, suppressed=suppressed)


@dataclass
class ShippingStats:
    """What happened to the records meant for Loki."""

    sent: int = 0
    failed: int = 0  # pushes Loki refused or that timed out
    dropped: int = 0  # records that found the queue full
    abandoned: int = 0  # records still queued when shutdown gave up
    last_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class _TimeoutSession(requests.Session):
    """The library's session has no timeout; this one gives every request one,
    and the tenant header if there is a tenant."""

    def __init__(self, timeout: float, tenant: str | None = None) -> None:
        super().__init__()
        self.timeout = timeout
        if tenant is not None:
            self.headers[TENANT_HEADER] = tenant

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return super().request(*args, **kwargs)


class _Emitter(LokiEmitterV1):
    def __init__(
        self,
        url: str,
        tags: dict[str, str],
        timeout: float,
        stats: ShippingStats,
        on_change: Callable[[str], None],
        tenant: str | None = None,
    ) -> None:
        super().__init__(url, tags)
        self.session_class = functools.partial(_TimeoutSession, timeout, tenant)
        self.stats = stats
        self.on_change = on_change  # told "failing" or "recovered"
        self.give_up_at: float | None = None  # monotonic deadline at shutdown

    def build_payload(self, record: logging.LogRecord, line: str) -> dict[str, Any]:
        payload: dict[str, Any] = super().build_payload(record, line)
        # The library stamps the send time; a record queued while Loki was
        # away would land at the wrong time.
        payload["streams"][0]["values"][0][0] = str(int(record.created * 1e9))
        return payload

    def __call__(self, record: logging.LogRecord, line: str) -> None:
        if self.give_up_at is not None and time.monotonic() > self.give_up_at:
            with self.stats.lock:
                self.stats.abandoned += 1
            return
        try:
            super().__call__(record, line)
        except Exception as exc:  # noqa: BLE001 - counted and reported, never raised
            self.close()  # a fresh connection for the next push
            with self.stats.lock:
                was_ok = self.stats.last_error is None
                self.stats.failed += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"[:300]
            if was_ok:
                self.on_change("failing")
            return
        with self.stats.lock:
            self.stats.sent += 1
            recovered = self.stats.last_error is not None
            self.stats.last_error = None
        if recovered:
            self.on_change("recovered")


class LokiShipper(LokiQueueHandler):
    """LokiQueueHandler with a bounded queue, pushes with a timeout, counted
    failures and a bounded drain."""

    def __init__(
        self,
        url: str,
        stats: ShippingStats,
        on_change: Callable[[str], None],
        timeout: float = LOKI_TIMEOUT,
        maxsize: int = LOKI_QUEUE_SIZE,
        tenant: str | None = None,
    ) -> None:
        super().__init__(queue.Queue(maxsize), url=url, tags=dict(LOKI_LABELS), version="1")
        self.timeout = timeout
        self.stats = stats
        self.emitter = _Emitter(url, dict(LOKI_LABELS), timeout, stats, on_change, tenant)
        self.handler.emitter = self.emitter
        # urllib3 and requests log through their own loggers; should one ever
        # reach this handler, shipping it would log again, without end.
        self.addFilter(lambda r: not r.name.startswith(("urllib3", "requests")))

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            with self.stats.lock:
                self.stats.dropped += 1

    def stop(self, drain: float = LOKI_DRAIN) -> None:
        """Ship what is queued for at most drain seconds (plus one push in
        flight); count the rest as abandoned."""
        self.emitter.give_up_at = time.monotonic() + drain
        stopper = threading.Thread(target=self._stop_listener, name="loki-drain", daemon=True)
        stopper.start()
        stopper.join(drain + self.timeout + 0.5)
        if stopper.is_alive():  # a push is stuck beyond its timeout
            with self.stats.lock:
                self.stats.abandoned += self.queue.qsize()

    def _stop_listener(self) -> None:
        while True:
            try:
                self.listener.stop()  # its sentinel needs room in the queue
                return
            except queue.Full:
                time.sleep(0.01)


class Logs:
    """The app's logger, its events, and the Loki shipper if configured."""

    def __init__(
        self,
        config: Config,
        stream: TextIO = sys.stdout,
        loki_timeout: float = LOKI_TIMEOUT,
        loki_drain: float = LOKI_DRAIN,
        on_stdout_closed: Callable[[], None] = lambda: None,
    ) -> None:
        formatter: logging.Formatter = JsonLines() if config.log_format == "json" else TextLines()
        self.stdout = stdout = StdoutHandler(stream, on_stdout_closed)
        stdout.setFormatter(formatter)

        self.logger = logging.getLogger(LOGGER_NAME)
        self.logger.handlers.clear()
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        self.logger.addHandler(stdout)
        self.events = Events(self.logger)

        # Reports about shipping go to stdout only: with Loki failing they
        # could not go there, and shipping them would feed back.
        local = logging.getLogger(LOGGER_NAME + ".local")
        local.handlers.clear()
        local.propagate = False
        local.addHandler(stdout)
        self._local_events = Events(local)

        # The SDK's own lines: records, not plain text on stderr.
        sdk = logging.getLogger(OTEL_LOGGER)
        sdk.handlers.clear()
        sdk.propagate = False
        sdk.addHandler(TelemetryErrors(self.events))

        self.stats = ShippingStats()
        self.loki_drain = loki_drain
        self.shipper: LokiShipper | None = None
        if config.loki_url:
            self.shipper = LokiShipper(
                config.loki_url, self.stats, self._report, timeout=loki_timeout, tenant=config.loki_tenant
            )
            self.shipper.setFormatter(JsonLines())  # Loki's line is JSON, whatever stdout shows
            self.logger.addHandler(self.shipper)

    def _report(self, state: str) -> None:
        with self.stats.lock:
            fields = {
                "sent": self.stats.sent,
                "failed": self.stats.failed,
                "dropped": self.stats.dropped,
                "abandoned": self.stats.abandoned,
                "error": self.stats.last_error,
            }
        level = logging.INFO if state != "failing" else logging.WARNING
        message = {
            "failing": f"shipping logs to Loki fails: {fields['error']}",
            "recovered": "shipping logs to Loki works again",
            "stopped": "stopped shipping logs to Loki",
        }[state]
        message += " (sent {sent}, failed {failed}, dropped {dropped}, abandoned {abandoned})".format(**fields)
        self._local_events.emit(level, "loki_shipping", message, state=state, **fields)

    def close(self) -> None:
        """Drain the Loki queue within its bound and report what happened."""
        if self.shipper is not None:
            self.logger.removeHandler(self.shipper)
            self.shipper.stop(self.loki_drain)
            self._report("stopped")
