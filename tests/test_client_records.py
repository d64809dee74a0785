"""The log records are a contract: fixed keys per event, in a fixed order,
with the record's time in UTC."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from client.config import parse_config
from client.logs import Logs, TelemetryErrors
from client.probe import ERROR_TYPES, ProbeResult, ToggleResult
from client.records import COMMON_FIELDS, EVENT_FIELDS, SCHEMA
from client.summary import Window
from tests.conftest import ROOT, schema_errors

PROBE = ProbeResult("GET", "http://x/status", 503, 12.5, False, "http_status", "503 Service Unavailable", "a" * 32)
TOGGLE = ToggleResult("POST", "http://x/flaky", 202, 3.0, True, None, None, "b" * 32, True)


def emit_all(logs: Logs) -> None:
    window = Window(30)
    window.add(0, PROBE)
    logs.events.probe(1, PROBE)
    logs.events.flaky_toggle(1, TOGGLE)
    logs.events.summary(window.summary(0))
    logs.events.health_changed(None, window.summary(0))
    logs.events.fleet({"a": "healthy", "b": None})
    logs.events.internal_error("probe", RuntimeError("boom"))
    logs.events.heartbeat("failing", "run/beat", "FileNotFoundError: gone")
    logs.events.emit(logging.WARNING, "telemetry_error", "m", logger="opentelemetry.x", error="e", suppressed=0)
    logs.events.emit(logging.INFO, "started", "m", version="1", target="t", interval=1, timeout=1,
                     flaky_interval=1, summary_interval=1, success_codes="200-299", log_format="json",
                     loki_url=None, heartbeat_file=None, loki_tenant=None, targets_file=None)  # fmt: skip
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


DOCS = ROOT / "docs" / "client.md"
BEGIN = (
    "<!-- The record tables below are generated from client/records.schema.json: see tests/test_client_records.py -->"
)
END = "<!-- end of the generated record tables -->"


def record_tables() -> str:
    """docs/client.md's record reference, rendered from the schema and the
    probe's error vocabulary."""
    defs = SCHEMA["$defs"]
    lines = [BEGIN, "", "Every record starts with:", "", "| Key | Type | Meaning |", "|---|---|---|"]
    lines += [_row(key, prop) for key, prop in defs["common"]["properties"].items()]
    for ref in SCHEMA["oneOf"]:
        name = ref["$ref"].rpartition("/")[2]
        lines += ["", f"`{name}`: {defs[name]['description']}.", "", "| Key | Type | Meaning |", "|---|---|---|"]
        lines += [_row(k, p) for k, p in defs[name]["properties"].items() if k != "event"]
    lines += ["", "`error_type`, a closed vocabulary:", "", "| `error_type` | Meaning |", "|---|---|"]
    lines += [f"| `{name}` | {meaning} |" for name, meaning in ERROR_TYPES.items()]
    return "\n".join([*lines, "", END])


def _row(key: str, prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        prop = SCHEMA["$defs"][prop["$ref"].rpartition("/")[2]]
    return f"| `{key}` | {_type(prop)} | {prop['description']} |"


def _type(prop: dict[str, Any]) -> str:
    if "const" in prop:
        return f'`"{prop["const"]}"`'
    if "enum" in prop:
        return (
            "one of the names below, or null"
            if len(prop["enum"]) > 8
            else " or ".join("null" if v is None else f"`{v}`" for v in prop["enum"])
        )
    kinds = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
    names = {"array": "list of integers", "object": "object", "boolean": "boolean", "integer": "integer",
             "number": "number", "string": "string", "null": "null"}  # fmt: skip
    text = " or ".join(names[k] for k in kinds)
    if "properties" in prop:
        text += ": " + ", ".join(f"`{k}`" for k in prop["properties"])
    return text


def test_the_docs_record_tables_are_the_schemas() -> None:
    text = DOCS.read_text()
    assert BEGIN in text, f"docs/client.md lacks the generated tables; they are:\n{record_tables()}"
    assert END in text
    shown = text[text.index(BEGIN) : text.index(END) + len(END)]
    assert shown == record_tables(), f"docs/client.md's record tables are stale; they should read:\n{record_tables()}"


def test_the_sdks_complaints_are_rate_limited_per_kind() -> None:
    out = io.StringIO()
    events = Logs(parse_config([], {}), out).events
    now = [0.0]
    handler = TelemetryErrors(events, every=300, clock=lambda: now[0])
    sdk = logging.getLogger("opentelemetry.test")
    for second in range(0, 700, 30):  # an export failing every 30 s
        now[0] = second
        handler.handle(sdk.makeRecord(sdk.name, logging.ERROR, "f", 1, "Failed to export %s batch", ("spans",), None))
    handler.handle(sdk.makeRecord(sdk.name, logging.WARNING, "f", 1, "Queue full, dropping %s.", ("Span",), None))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["level"], r["error"], r["suppressed"]) for r in lines] == [
        ("error", "Failed to export spans batch", 0),
        ("error", "Failed to export spans batch", 9),  # at 300 s
        ("error", "Failed to export spans batch", 9),  # at 600 s
        ("warning", "Queue full, dropping Span.", 0),
    ]
