"""Traces without Tempo: a loopback OTLP/HTTP receiver decodes what the real
client and the real server export, and the spans must tell the story of
each probe: one client root span per probe record, a child per phase, the
server's span under the client's. With the receiver slow, failing, down or
black-holed, probes keep their rhythm and shutdown stays bounded."""

from __future__ import annotations

import gzip
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from client import __version__
from client.__main__ import main
from client.config import ConfigError, parse_config
from client.logs import Logs
from client.monitor import Monitor, Stop, run
from client.otel_env import Batching
from client.probe import ProbeResult, probe
from client.tracing import TraceSettings, Tracing, trace_settings
from client.transport import Phase
from tests.conftest import (
    ROOT,
    ClientProcess,
    GoServer,
    PushStandIn,
    free_port,
    schema_errors,
    stand_ins,
    wait_until,
)


@dataclass(frozen=True)
class Received:
    """One span as it arrived, with its service's name."""

    service: str
    span: Span

    @property
    def trace_id(self) -> str:
        return self.span.trace_id.hex()

    @property
    def span_id(self) -> str:
        return self.span.span_id.hex()

    @property
    def parent_id(self) -> str:
        return self.span.parent_span_id.hex()

    @property
    def ms(self) -> float:
        return (self.span.end_time_unix_nano - self.span.start_time_unix_nano) / 1e6

    def attributes(self) -> dict[str, Any]:
        return {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in self.span.attributes}


class OTLPReceiver(PushStandIn):
    """An OTLP/HTTP collector: keeps the spans POSTed to /v1/traces, answers
    200 with an empty ExportTraceServiceResponse."""

    def __init__(self, mode: str = "ok") -> None:
        self.spans: list[Received] = []
        super().__init__(mode)

    def answer(self, request: BaseHTTPRequestHandler, body: bytes) -> tuple[int, str, bytes]:
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if request.path == "/v1/traces":
            self.add(ExportTraceServiceRequest.FromString(body))
        return 200, "application/x-protobuf", ExportTraceServiceResponse().SerializeToString()

    def add(self, request: ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            names = [a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"]
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(Received(names[0] if names else "", span) for span in scope_spans.spans)

    def of(self, service: str) -> list[Received]:
        return [s for s in self.spans if s.service == service]


@pytest.fixture
def otlp() -> Iterator[Callable[[str], OTLPReceiver]]:
    """Start stand-ins for an OTLP/HTTP collector in the given mode."""
    yield from stand_ins(OTLPReceiver)


# The settings: the standard variables, and nothing exported without them.


@pytest.mark.parametrize(
    ("environ", "want"),
    [
        ({}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://tempo:4318"}, TraceSettings("http://tempo:4318/v1/traces", 10.0)),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://tempo:4318/"}, TraceSettings("http://tempo:4318/v1/traces", 10.0)),
        (
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:4318/x", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://o:1"},
            TraceSettings("http://t:4318/x", 10.0),
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://t:4318", "OTEL_EXPORTER_OTLP_TIMEOUT": "2500"},
            TraceSettings("http://t:4318/v1/traces", 2.5),
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://t:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
            TraceSettings("http://t:4318/v1/traces", 10.0),
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://t:4318", "OTEL_TRACES_EXPORTER": "none"}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://t:4318", "OTEL_SDK_DISABLED": "true"}, None),
        ({"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://loki:3100/otlp/v1/logs"}, None),
    ],
)
def test_settings_from_the_standard_variables(environ: dict[str, str], want: TraceSettings | None) -> None:
    assert trace_settings(environ) == want


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "tempo:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:99999"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://t", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "PROTOCOL"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://t", "OTEL_EXPORTER_OTLP_TIMEOUT": "3s"}, "OTEL_EXPORTER_OTLP_TIMEOUT"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://t", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "0"}, "TRACES_TIMEOUT"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://t", "OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://t", "OTEL_BSP_SCHEDULE_DELAY": "-5"}, "OTEL_BSP_SCHEDULE_DELAY"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://t", "OTEL_BSP_SCHEDULE_DELAY": "0"}, "OTEL_BSP_SCHEDULE_DELAY"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://t", "OTEL_BSP_MAX_QUEUE_SIZE": "1.5"}, "OTEL_BSP_MAX_QUEUE_SIZE"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://t", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "4000"}, "BATCH_SIZE: 4000"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://t", "OTEL_BSP_EXPORT_TIMEOUT": "x"}, "OTEL_BSP_EXPORT_TIMEOUT"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://t", "OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, "_COMPRESSION"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://t", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "a=1,b"},
            "_HEADERS: entry 2",
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://t", "OTEL_EXPORTER_OTLP_CERTIFICATE": "/nonexistent"}, "CERTIFICATE"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://t", "OTEL_RESOURCE_ATTRIBUTES": "a=1,oops"}, "ATTRIBUTES: entry 2"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://t:0"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        # The SDK reads the span limits itself, and raises a traceback on a bad one.
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://t", "OTEL_ATTRIBUTE_COUNT_LIMIT": "abc"}, "ATTRIBUTE_COUNT_LIMIT"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://t", "OTEL_SPAN_EVENT_COUNT_LIMIT": "-1"}, "SPAN_EVENT_COUNT_LIMIT"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://t", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "1.5"}, "VALUE_LENGTH"),
    ],
)
def test_bad_settings_are_refused_by_name(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        trace_settings(environ)


def test_batching_follows_the_variables() -> None:
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://t", "OTEL_BSP_SCHEDULE_DELAY": "200",
               "OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_EXPORTER_OTLP_HEADERS": "api-key=s3cret"}  # fmt: skip
    settings = trace_settings(environ)
    assert settings is not None
    assert settings.batching == Batching(schedule_delay_ms=200, max_queue_size=100, max_export_batch_size=100)


def test_a_secret_header_is_never_shown() -> None:
    with pytest.raises(ConfigError) as refused:
        trace_settings({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://t", "OTEL_EXPORTER_OTLP_HEADERS": "s3cret"})
    assert "s3cret" not in str(refused.value)


def test_bsp_schedule_delay_minus_5_exits_2_naming_it() -> None:
    """It ended in a traceback, exit 1."""
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_BSP_SCHEDULE_DELAY": "-5"}
    result = subprocess.run([sys.executable, "-m", "client", "--target", "http://127.0.0.1:9"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=30)  # fmt: skip
    assert result.returncode == 2
    assert (
        result.stderr
        == "python -m client: error: invalid OTEL_BSP_SCHEDULE_DELAY: '-5' is not a whole number of at least 1\n"
    )


def test_a_bad_variable_stops_the_client_at_start(capsys: pytest.CaptureFixture[str]) -> None:
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://tempo:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    assert main(["--target", "http://127.0.0.1:9"], environ) == 2
    assert "OTEL_EXPORTER_OTLP_PROTOCOL" in capsys.readouterr().err


# The spans of one result, without a server.


def _result(**changes: Any) -> ProbeResult:
    """A probe's result: 30 ms, every phase but TLS, a 200."""
    fields: dict[str, Any] = {
        "method": "GET", "endpoint": "http://127.0.0.1:8080/status", "status_code": 200, "duration_ms": 30.0,
        "success": True, "error_type": None, "error": None, "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "span_id": "b7ad6b7169203331", "started_at": 1_800_000_000.0,
        "phases": (Phase("dns", 0, 0.001), Phase("connect", 0.001, 0.003), Phase("wait", 0.003, 0.028),
                   Phase("transfer", 0.028, 0.030)),
    }  # fmt: skip
    return ProbeResult(**(fields | changes))


def _export(receiver: OTLPReceiver, *results: ProbeResult) -> None:
    tracing = Tracing(TraceSettings(receiver.url + "/v1/traces", 5.0))
    for r in results:
        tracing.record(r)
    tracing.close()


def test_a_result_is_a_root_span_with_a_child_per_phase(otlp: Callable[[str], OTLPReceiver]) -> None:
    receiver = otlp("ok")
    _export(receiver, _result())
    (root,) = [s for s in receiver.spans if not s.parent_id]
    children = [s for s in receiver.spans if s.parent_id]
    assert root.service == "status-monitor"
    assert (root.trace_id, root.span_id) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
    assert root.span.name == "GET /status"
    assert root.span.kind == Span.SPAN_KIND_CLIENT
    assert root.span.status.code == Status.STATUS_CODE_UNSET
    assert root.span.start_time_unix_nano == 1_800_000_000 * 10**9
    assert root.ms == pytest.approx(30.0)
    assert root.attributes() == {
        "http.request.method": "GET",
        "url.full": "http://127.0.0.1:8080/status",
        "url.template": "/status",
        "server.address": "127.0.0.1",
        "server.port": 8080,
        "user_agent.original": f"status-monitor/{__version__}",
        "http.response.status_code": 200,
        "network.protocol.version": "1.1",
    }
    assert [c.span.name for c in children] == ["dns", "connect", "wait", "transfer"]
    assert all(c.parent_id == root.span_id and c.trace_id == root.trace_id for c in children)
    assert [round(c.ms, 3) for c in children] == [1.0, 2.0, 25.0, 2.0]
    assert children[0].span.start_time_unix_nano == root.span.start_time_unix_nano
    assert children[-1].span.end_time_unix_nano == root.span.end_time_unix_nano


@pytest.mark.parametrize(
    ("failure", "error_type", "failed_phase"),
    [
        ({"status_code": 503, "error_type": "http_status", "error": "503 Service Unavailable"}, "503", None),
        ({"status_code": None, "error_type": "read_timeout", "error": "timed out"}, "read_timeout", "transfer"),
    ],
)
def test_a_failed_result_has_error_status(
    otlp: Callable[[str], OTLPReceiver], failure: dict[str, Any], error_type: str, failed_phase: str | None
) -> None:
    receiver = otlp("ok")
    result = _result(success=False, **failure)
    _export(receiver, result)
    (root,) = [s for s in receiver.spans if not s.parent_id]
    assert root.span.status.code == Status.STATUS_CODE_ERROR
    assert root.span.status.message == result.error
    assert root.attributes()["error.type"] == error_type
    failed = [c.span.name for c in receiver.spans if c.parent_id and c.span.status.code == Status.STATUS_CODE_ERROR]
    assert failed == ([failed_phase] if failed_phase else [])


def test_nothing_is_recorded_without_settings() -> None:
    tracing = Tracing(None)
    tracing.record(_result())  # no exporter, no thread, no error
    tracing.close()


def test_an_unsent_toggle_has_no_span(otlp: Callable[[str], OTLPReceiver]) -> None:
    receiver = otlp("ok")
    _export(receiver, _result(method="POST", trace_id="", span_id="", phases=()))
    assert receiver.spans == []


@pytest.mark.parametrize("mode", ["slow", "fail", "blackhole", "down"])
def test_collector_trouble_never_delays_a_probe(
    mode: str,
    otlp: Callable[[str], OTLPReceiver],
    go_server: Callable[..., GoServer],
    capfd: pytest.CaptureFixture[str],
) -> None:
    url = f"http://127.0.0.1:{free_port()}" if mode == "down" else otlp(mode).url
    server = go_server()
    interval, timeout = 0.2, 0.15
    config = parse_config(
        ["--target", server.url, "--interval", str(interval), "--timeout", str(timeout),
         "--summary-interval", "0.5", "--flaky-interval", "0"], {},
    )  # fmt: skip
    logs = Logs(config, io.StringIO())
    # Exported on the probing thread, a span would cost the export's 5 s;
    # the queue overflows after a few probes.
    tracing = Tracing(
        TraceSettings(url + "/v1/traces", 5.0, Batching(max_queue_size=16, max_export_batch_size=16)), drain=0.5
    )
    starts: list[float] = []

    def timed_probe(*args: Any) -> ProbeResult:
        starts.append(time.monotonic())
        return probe(*args)

    monitor = Monitor(config, logs.events, probe_fn=timed_probe, tracing=tracing)
    stop = Stop()
    thread = threading.Thread(target=run, args=(monitor, stop))
    thread.start()
    wait_until(lambda: len(starts) >= 15, timeout=30)
    stop.request()
    thread.join(5)
    stop.close()
    began = time.monotonic()
    tracing.close()
    closing = time.monotonic() - began
    logs.close()

    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert max(gaps) <= interval + timeout + 0.5, gaps
    assert closing <= 0.5 + 1.0, f"close took {closing:.2f} s"
    assert "Traceback" not in capfd.readouterr().err, "a failed export must not print a traceback"


# The real client against the real server, both exporting to the receiver.


def test_each_probe_is_a_trace_from_client_phases_to_server_span(
    otlp: Callable[[str], OTLPReceiver],
    go_server: Callable[..., GoServer],
    client: ClientProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver = otlp("ok")
    # The client inherits the environment; the server gets it too.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
    # Flaky, with delays beyond the client's budget: successes, unwanted
    # codes and read timeouts.
    server = go_server("-flaky", "-max-delay", "400ms", "-seed", "3")
    proc, lines, reader = client(
        "--target", server.url, "--interval", "0.4", "--timeout", "0.25",
        "--flaky-interval", "1.5", "--summary-interval", "5",
    )  # fmt: skip
    wait_until(lambda: sum(r["event"] == "flaky_toggle" for r in lines) >= 3, timeout=60)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    reader.join(5)
    server.stop()  # the server exports what it still holds

    records = [r for r in lines if r["event"] in ("probe", "flaky_toggle") and r["trace_id"]]
    client_spans = receiver.of("status-monitor")
    roots = {s.trace_id: s for s in client_spans if not s.parent_id}
    server_spans = {s.trace_id: s for s in receiver.of("status-server")}
    assert len(roots) == len([s for s in client_spans if not s.parent_id]), "one root span per trace"
    assert set(roots) == {r["trace_id"] for r in records}, "one root span per record"
    assert any(not r["success"] for r in records), "the run had no failure to look at"
    assert any(r["success"] for r in records)

    for record in records:
        root = roots[record["trace_id"]]
        assert root.span.kind == Span.SPAN_KIND_CLIENT
        assert root.span.name == f"{record['method']} {urlsplit(record['endpoint']).path}"
        assert root.ms == pytest.approx(record["duration_ms"], abs=0.001)
        failed = root.span.status.code == Status.STATUS_CODE_ERROR
        assert failed == (not record["success"]), record
        if failed:
            assert root.span.status.message == record["error"]
        assert root.attributes().get("http.response.status_code") == record["status_code"]

        phases = [s for s in client_spans if s.parent_id == root.span_id]
        reached = {name: ms for name, ms in record["phases_ms"].items() if ms is not None}
        assert {p.span.name: round(p.ms, 3) for p in phases} == pytest.approx(reached, abs=0.002)
        assert sum(p.ms for p in phases) == pytest.approx(record["duration_ms"], abs=1.0)

        # The server's span is the client span's child, when the request
        # reached the server's handler.
        server_span = server_spans.get(record["trace_id"])
        if record["status_code"] is not None:
            assert server_span is not None, record
        if server_span is not None:
            assert server_span.parent_id == root.span_id
            assert server_span.span.kind == Span.SPAN_KIND_SERVER
            assert server_span.attributes()["http.request.method"] == record["method"]
            # The HTTP semantic conventions: the route names the span and is an attribute.
            route = urlsplit(record["endpoint"]).path  # /status and /flaky are routes as they are
            assert server_span.attributes()["http.route"] == route
            assert server_span.span.name == f"{record['method']} {route}"


def test_the_sdks_complaints_are_records_and_few(go_server: Callable[..., GoServer]) -> None:
    """The collector down: the SDK's failed exports become telemetry_error
    records on stdout, one per kind (then one per 5 minutes), instead of a
    plain-text line on stderr per export."""
    server = go_server()
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",
           "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_EXPORTER_OTLP_TIMEOUT": "300"}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "client", "--target", server.url, "--interval", "0.1", "--timeout", "0.05"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stderr is not None
    lines: list[dict[str, Any]] = []
    watchdog = threading.Timer(60, proc.kill)  # a slow start on a busy machine is waited for, a hang is not
    watchdog.start()
    try:
        for raw in proc.stdout:  # up to the first complaint
            lines.append(json.loads(raw))
            if lines[-1]["event"] == "telemetry_error":
                break
        time.sleep(2)  # about 20 more exports fail
        proc.send_signal(signal.SIGTERM)
        lines += [json.loads(raw) for raw in proc.stdout]
        err = proc.stderr.read()
        proc.wait(20)
    finally:
        watchdog.cancel()
    assert proc.returncode == 0
    assert err == "", "the SDK wrote plain text to stderr"
    for line in lines:
        assert schema_errors(line) == [], line
    complaints = [line for line in lines if line["event"] == "telemetry_error"]
    assert complaints, "no telemetry_error record while every export failed"
    # About 20 exports failed: one record per kind of complaint (here one
    # or two: the failed export, a retry), the next due in 5 minutes.
    assert len(complaints) <= 3, complaints
    assert sum(c["suppressed"] for c in complaints) == 0  # none was due again yet
    assert all(c["logger"].startswith("opentelemetry") for c in complaints)
