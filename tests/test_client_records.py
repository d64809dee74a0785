"""The log records are a contract: fixed keys per event, in a fixed order,
with the record's time in UTC."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from client.config import parse_config
from client.logs import Logs
from client.probe import ERROR_TYPES, ProbeResult, ToggleResult
from client.records import COMMON_FIELDS, EVENT_FIELDS, SCHEMA
from client.summary import Window
from tests.conftest import schema_errors

PROBE = ProbeResult("GET", "http://x/status", 503, 12.5, False, "http_status", "503 Service Unavailable", "a" * 32)
TOGGLE = ToggleResult("POST", "http://x/flaky", 202, 3.0, True, None, None, "b" * 32, True)


def emit_all(logs: Logs) -> None:
    window = Window(30)
    window.add(0, PROBE)
    logs.events.probe(1, PROBE)
    logs.events.flaky_toggle(1, TOGGLE)
    logs.events.summary(window.summary(0))
    logs.events.health_changed(None, window.summary(0))
    logs.events.internal_error("probe", RuntimeError("boom"))
    logs.events.emit(logging.INFO, "started", "m", version="1", target="t", interval=1, timeout=1,
                     flaky_interval=1, summary_interval=1, success_codes="200-299", log_format="json",
                     loki_url=None, heartbeat_file=None)  # fmt: skip
    logs.events.emit(logging.INFO, "stopped", "m", probes=1, toggles=1)
    logs.events.emit(logging.WARNING, "loki_shipping", "m", state="failing", sent=0, failed=1, dropped=0,
                     abandoned=0, error="x")  # fmt: skip


def test_every_event_has_exactly_its_keys_in_order() -> None:
    out = io.StringIO()
    before = datetime.now(UTC) - timedelta(seconds=1)
    emit_all(Logs(parse_config([], {}), out))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert {line["event"] for line in lines} == set(EVENT_FIELDS)
    for line in lines:
        assert tuple(line) == COMMON_FIELDS + EVENT_FIELDS[line["event"]], line
        stamp = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))
        assert stamp.tzinfo == UTC
        assert before <= stamp <= datetime.now(UTC)
        assert line["level"] in ("info", "warning", "error")


def test_probe_record_values() -> None:
    out = io.StringIO()
    Logs(parse_config([], {}), out).events.probe(7, PROBE)
    line = json.loads(out.getvalue())
    assert line == line | {
        "level": "warning",
        "event": "probe",
        "seq": 7,
        "method": "GET",
        "endpoint": "http://x/status",
        "status_code": 503,
        "duration_ms": 12.5,
        "success": False,
        "error_type": "http_status",
        "error": "503 Service Unavailable",
        "trace_id": "a" * 32,
    }


@pytest.mark.parametrize(
    ("error_type", "level"),
    [(None, "info"), ("http_status", "warning"), ("body", "warning"), ("read_timeout", "error"), ("dns", "error")],
)
def test_probe_levels(error_type: str | None, level: str) -> None:
    out = io.StringIO()
    r = ProbeResult("GET", "u", None, 1.0, error_type is None, error_type, error_type, "c" * 32)
    Logs(parse_config([], {}), out).events.probe(1, r)
    assert json.loads(out.getvalue())["level"] == level


def test_a_record_with_other_keys_is_refused() -> None:
    logs = Logs(parse_config([], {}), io.StringIO())
    with pytest.raises(ValueError, match="probe record with keys"):
        logs.events.emit(logging.INFO, "probe", "m", seq=1)


def test_text_format_is_one_readable_line_per_record() -> None:
    out = io.StringIO()
    emit_all(Logs(parse_config(["--log-format", "text"], {}), out))
    lines = out.getvalue().splitlines()
    assert len(lines) == len(EVENT_FIELDS)
    assert "WARNING probe          GET http://x/status failed after 12.5 ms: http_status: 503" in lines[0]
    assert "flaky mode on" in lines[1]


def test_text_format_escapes_control_characters() -> None:
    out = io.StringIO()
    hostile = ProbeResult("GET", "http://x/status", None, 1.0, False, "protocol", "\x1b[2J\x9bforged\nline", "c" * 32)
    Logs(parse_config(["--log-format", "text"], {}), out).events.probe(1, hostile)
    text = out.getvalue()
    assert text.count("\n") == 1
    assert "\\x1b[2J\\x9bforged\\nline" in text
    assert not any(ch in text[:-1] for ch in "\x1b\x9b\n")


def test_every_record_keeps_the_schema() -> None:
    out = io.StringIO()
    emit_all(Logs(parse_config([], {}), out))
    for line in out.getvalue().splitlines():
        record = json.loads(line)
        assert schema_errors(record) == [], record


def test_the_schema_refuses_what_breaks_the_contract() -> None:
    out = io.StringIO()
    Logs(parse_config([], {}), out).events.probe(1, PROBE)
    record = json.loads(out.getvalue())
    assert schema_errors(record) == []
    assert schema_errors(record | {"extra": 1})
    assert schema_errors({k: v for k, v in record.items() if k != "phases_ms"})
    assert schema_errors(record | {"error_type": "teapot"})
    assert schema_errors(record | {"phases_ms": {"dns": 1.0}})
    assert schema_errors(record | {"interim_codes": [200]})


def test_error_types_are_the_schemas() -> None:
    assert SCHEMA["$defs"]["error_type"]["enum"] == [*ERROR_TYPES, None]
