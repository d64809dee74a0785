"""Traces without Tempo: a loopback OTLP/HTTP receiver decodes what the real
client and the real server export, and the spans must tell the story of
each probe: one client root span per probe record, a child per phase, the
server's span under the client's. With the receiver slow, failing, down or
black-holed, probes keep their rhythm and shutdown stays bounded."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from client.config import ConfigError
from client.tracing import TraceSettings, Tracing, trace_settings
from tests.conftest import free_port


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


class OTLPReceiver:
    """Answers POST /v1/traces like an OTLP/HTTP collector (200 with an empty
    ExportTraceServiceResponse) or, by mode, slowly, with 500, or never."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.spans: list[Received] = []
        self.requests = 0
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests += 1
                if receiver.mode == "blackhole":
                    receiver.release.wait(30)
                    return
                if receiver.mode == "slow":
                    time.sleep(2)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path == "/v1/traces" and receiver.mode != "fail":
                    receiver.add(ExportTraceServiceRequest.FromString(body))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if receiver.mode != "fail" else 500)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def add(self, request: ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            names = [a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"]
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(Received(names[0] if names else "", span) for span in scope_spans.spans)

    def of(self, service: str) -> list[Received]:
        return [s for s in self.spans if s.service == service]

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def otlp() -> Iterator[Callable[[str], OTLPReceiver]]:
    receivers: list[OTLPReceiver] = []

    def start(mode: str = "ok") -> OTLPReceiver:
        receivers.append(OTLPReceiver(mode))
        return receivers[-1]

    yield start
    for r in receivers:
        r.close()


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
    ],
)
def test_bad_settings_are_refused_by_name(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        trace_settings(environ)


# The spans of one result, without a server.


@dataclass(frozen=True)
class _Phase:
    name: str
    start: float
    end: float


@dataclass(frozen=True)
class _Result:
    method: str = "GET"
    endpoint: str = "http://127.0.0.1:8080/status"
    status_code: int | None = 200
    duration_ms: float = 30.0
    success: bool = True
    error_type: str | None = None
    error: str | None = None
    trace_id: str = "0af7651916cd43dd8448eb211c80319c"
    span_id: str = "b7ad6b7169203331"
    started_at: float = 1_800_000_000.0
    phases: tuple[_Phase, ...] = field(
        default=(_Phase("dns", 0, 0.001), _Phase("connect", 0.001, 0.003), _Phase("wait", 0.003, 0.028),
                 _Phase("transfer", 0.028, 0.030))
    )  # fmt: skip


def _export(receiver: OTLPReceiver, *results: _Result) -> None:
    tracing = Tracing(TraceSettings(receiver.url + "/v1/traces", 5.0))
    for r in results:
        tracing.record(r)
    tracing.close()


def test_a_result_is_a_root_span_with_a_child_per_phase(otlp: Callable[[str], OTLPReceiver]) -> None:
    receiver = otlp("ok")
    _export(receiver, _Result())
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
        "user_agent.original": root.attributes()["user_agent.original"],
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
    result = _Result(success=False, **failure)
    _export(receiver, result)
    (root,) = [s for s in receiver.spans if not s.parent_id]
    assert root.span.status.code == Status.STATUS_CODE_ERROR
    assert root.span.status.message == result.error
    assert root.attributes()["error.type"] == error_type
    failed = [c.span.name for c in receiver.spans if c.parent_id and c.span.status.code == Status.STATUS_CODE_ERROR]
    assert failed == ([failed_phase] if failed_phase else [])


def test_nothing_is_recorded_without_settings() -> None:
    tracing = Tracing(None)
    tracing.record(_Result())  # no exporter, no thread, no error
    tracing.close()


def test_an_unsent_toggle_has_no_span(otlp: Callable[[str], OTLPReceiver]) -> None:
    receiver = otlp("ok")
    _export(receiver, _Result(method="POST", trace_id="", span_id="", phases=()))
    assert receiver.spans == []


@pytest.mark.parametrize("mode", ["slow", "fail", "blackhole", "down"])
def test_collector_trouble_costs_a_record_nothing(mode: str, otlp: Callable[[str], OTLPReceiver]) -> None:
    url = f"http://127.0.0.1:{free_port()}" if mode == "down" else otlp(mode).url
    # Exported in the caller's thread, a record would take the export's 5 s.
    tracing = Tracing(TraceSettings(url + "/v1/traces", 5.0), queue_size=16, drain=0.5)
    longest = 0.0
    for _ in range(100):  # beyond the queue: the overflow is dropped
        began = time.monotonic()
        tracing.record(_Result())
        longest = max(longest, time.monotonic() - began)
    began = time.monotonic()
    tracing.close()
    closing = time.monotonic() - began
    assert longest < 1.0, f"a record took {longest:.2f} s"
    assert closing <= 0.5 + 1.0, f"close took {closing:.2f} s"
