"""Loki: its configuration, and every LogQL expression of the dashboard and
the Loki rules. Each must parse (with Grafana's own LogQL grammar) and may
name only labels and fields that the client or the server really emits:
checked against records the real programs produce in this test."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from client.records import EVENT_FIELDS
from tests.conftest import GoServer, LokiReceiver
from tests.stack import ROOT, compose, dashboard_queries, expand, grammar, load_yaml, rule_exprs

LOGQL = ROOT / "tests/logql"
RULE_FILES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "loki/rules").rglob("*.yml"))
# The ready-to-paste queries of docs/explore.md, one per logql block.
EXPLORE = re.findall(r"^```logql\n(.*?)\n```$", (ROOT / "docs/explore.md").read_text(), re.M | re.S)
QUERIES = dashboard_queries("loki") + [e for f in RULE_FILES for e in rule_exprs(f)] + EXPLORE
# Labels Loki itself adds to every stream or line.
LOKI_BUILTINS = {"__error__", "__error_details__", "__line__", "detected_level"}


def config() -> dict[str, Any]:
    c: dict[str, Any] = load_yaml("loki/loki.yml")
    return c


def test_schema_is_tsdb_v13() -> None:
    (period,) = config()["schema_config"]["configs"]
    assert (period["store"], period["schema"], period["object_store"]) == ("tsdb", "v13", "filesystem")


def test_retention_has_its_delete_request_store() -> None:
    c = config()
    assert c["compactor"]["retention_enabled"] is True
    assert c["compactor"]["delete_request_store"] == "filesystem"
    assert c["limits_config"]["retention_period"]


def test_paths_are_in_the_mounts() -> None:
    loki = compose()["services"]["loki"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in loki["volumes"]}
    assert mounts["/loki"] == "loki-data", "Loki runs as UID 10001: a named volume, not a host directory"
    c = config()
    for path in (c["common"]["path_prefix"], c["compactor"]["working_directory"], c["ruler"]["rule_path"]):
        assert path.startswith("/loki"), path
    rules = c["ruler"]["storage"]["local"]["directory"]
    assert mounts[rules] == "./loki/rules"
    assert (ROOT / mounts[rules]).is_dir()
    # The ruler reads only its own storage setting: a common rules directory
    # would be unused, and would name a path no rule is in.
    assert set(c["common"]["storage"]["filesystem"]) == {"chunks_directory"}
    assert loki["command"] == [f"-config.file={next(k for k, v in mounts.items() if v == './loki/loki.yml')}"]


def test_rules_are_in_the_single_tenants_directory() -> None:
    assert config()["auth_enabled"] is False  # the one tenant is then called "fake"
    assert RULE_FILES
    assert all(f.startswith("loki/rules/fake/") for f in RULE_FILES)
    for f in RULE_FILES:
        for group in load_yaml(f)["groups"]:
            for rule in group["rules"]:
                assert {"alert", "expr", "labels", "annotations"} <= set(rule) or {"record", "expr"} <= set(rule)


def test_otlp_needs_structured_metadata() -> None:
    assert config()["limits_config"]["allow_structured_metadata"] is True


def test_real_loki_accepts_the_config(tmp_path: Path) -> None:
    """With a loki binary on PATH (not installed by make test), let it judge."""
    loki = shutil.which("loki")
    if not loki:
        pytest.skip("no loki binary on PATH")
    result = subprocess.run(
        [loki, f"-config.file={ROOT / 'loki/loki.yml'}", "-verify-config"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def analyse(exprs: list[str]) -> list[dict[str, Any]]:
    return grammar(LOGQL, exprs)


@pytest.mark.parametrize("expr", QUERIES)
def test_logql_parses(expr: str) -> None:
    (result,) = analyse([expand(expr)])
    assert not result["errors"], f"syntax error at {result['errors']}: {expr}"


def test_explore_has_its_queries() -> None:
    assert len(EXPLORE) >= 10
    assert all("\n" not in q for q in EXPLORE), "one line each, to paste"


def test_the_grammar_rejects_bad_logql() -> None:
    bad = ['sum(rate({a="b"}[1m])', '{a="b"} | json | success = false', "{a=b}"]
    assert all(r["errors"] for r in analyse(bad))


def flatten(record: dict[str, Any], prefix: str = "") -> set[str]:
    """The names Loki's json parser gives a record's fields."""
    names: set[str] = set()
    for key, value in record.items():
        if isinstance(value, dict):
            names |= flatten(value, f"{prefix}{key}_")
        else:
            names.add(prefix + key)
    return names


class OTLPReceiver:
    """Collects OTLP/HTTP log exports, as Loki's /otlp/v1/logs would."""

    def __init__(self) -> None:
        self.exports: list[ExportLogsServiceRequest] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                export = ExportLogsServiceRequest()
                export.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.exports.append(export)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/otlp/v1/logs"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def emitted(server_binary: Path) -> dict[str, dict[str, set[str]]]:
    """What the real client and server emit, in Loki's terms:
    {"status-monitor": {"labels", "fields", "event"}, "status-server": {...}}."""
    otlp = OTLPReceiver()
    loki = LokiReceiver("ok")
    env = {"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": otlp.url, "OTEL_SERVICE_NAME": "status-server",
           "OTEL_BLRP_SCHEDULE_DELAY": "100"}  # fmt: skip
    server = GoServer(server_binary, "-max-delay", "20ms", "-seed", "5", env=env)
    client = subprocess.Popen(
        [str(ROOT / ".venv/bin/python"), "-m", "client", "--target", server.url, "--loki-url", loki.url,
         "--interval", "0.05", "--timeout", "0.04", "--flaky-interval", "0.3", "--summary-interval", "0.5"],
        cwd=ROOT, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        events: set[str] = set()
        while not {"probe", "flaky_toggle", "summary", "health_changed"} <= events or not has_error_logs(otlp):
            assert time.monotonic() < deadline, f"saw only {events}"
            time.sleep(0.1)
            events = {json.loads(p["payload"]["streams"][0]["values"][0][1])["event"] for p in list(loki.pushes)}
    finally:
        client.terminate()
        client.wait(10)
        server.stop()

    records = [json.loads(v[1]) for p in loki.pushes for s in p["payload"]["streams"] for v in s["values"]]
    client_side = {
        "labels": {k for p in loki.pushes for s in p["payload"]["streams"] for k in s["stream"]},
        "fields": set().union(*(flatten(r) for r in records)),
        "event": {r["event"] for r in records},
        "service_name": {s["stream"]["service_name"] for p in loki.pushes for s in p["payload"]["streams"]},
    }
    server_side: dict[str, set[str]] = {"labels": set(), "fields": set(), "service_name": set(), "severity_text": set()}
    for export in otlp.exports:
        for rl in export.resource_logs:
            attrs = {a.key: a.value.string_value for a in rl.resource.attributes}
            server_side["service_name"].add(attrs["service.name"])
            server_side["labels"].add("service_name")  # Loki's default index label
            server_side["fields"] |= {k.replace(".", "_") for k in attrs}  # the rest: structured metadata
            for sl in rl.scope_logs:
                for r in sl.log_records:
                    server_side["fields"] |= {a.key.replace(".", "_") for a in r.attributes}
                    server_side["fields"] |= {"severity_text", "severity_number", "observed_timestamp"}
                    server_side["severity_text"].add(r.severity_text)
                    if r.trace_id:
                        server_side["fields"] |= {"trace_id", "span_id"}
    otlp.close()
    loki.close()
    return {"status-monitor": client_side, "status-server": server_side}


def has_error_logs(otlp: OTLPReceiver) -> bool:
    return any(r.severity_text == "ERROR" for e in otlp.exports for rl in e.resource_logs
               for sl in rl.scope_logs for r in sl.log_records)  # fmt: skip


@pytest.mark.parametrize("expr", QUERIES)
def test_logql_names_only_what_is_emitted(expr: str, emitted: dict[str, dict[str, set[str]]]) -> None:
    (result,) = analyse([expand(expr)])
    (service,) = set(result["values"]["service_name"])
    source = emitted[service]
    assert set(result["stream_labels"]) <= source["labels"], f"stream labels {result['stream_labels']}"
    known = source["labels"] | source["fields"] | set(result["defined"]) | LOKI_BUILTINS
    unknown = set(result["fields"]) - known
    assert not unknown, f"{expr} names {unknown}, which {service} never emits"
    for name in ("event", "service_name", "severity_text"):
        for value in result["values"].get(name, []):
            # An event this short run cannot provoke (internal_error) must be in the records' contract.
            known_values = source[name] | (set(EVENT_FIELDS) - {"loki_shipping"} if name == "event" else set())
            assert value in known_values, f"{name}={value!r}: {service} emits only {source[name]}"
