"""Spans for the probes: each probe and each flaky toggle is one trace.

The probe has measured everything by the time it returns, so its spans are
recorded after the fact from its result: a root span (kind CLIENT, HTTP
semantic conventions) over the whole exchange, and one child per phase the
probe reached (dns, connect, tls, wait, transfer) at the times it took, so a
trace viewer shows where the time went. The root span carries the IDs that
the probe's traceparent sent: the server's span, which joined that
traceparent, is its child.

Export follows the standard OTEL_* variables, as the server's does: nothing
is recorded or sent unless OTEL_EXPORTER_OTLP_ENDPOINT or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set. Spans leave through a batch
processor, on its own thread with a bounded queue; each export has a
timeout, retries included; closing waits a bounded time. A collector that is
down, slow or black-holed never delays a probe.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from client import __version__
from client.config import ConfigError, _url
from client.otel_env import Batching, batching, check_exporter, first_set
from client.probe import ProbeResult
from client.transport import Phase

SERVICE_NAME = "status-monitor"
#: Seconds one export may take, retries included, unless the environment
#: says otherwise (the specification's default).
EXPORT_TIMEOUT = 10.0
#: Seconds closing spends exporting what is still queued.
TRACES_DRAIN = 2.0


@dataclass(frozen=True)
class TraceSettings:
    endpoint: str  # the full URL spans are POSTed to
    timeout: float  # seconds per export, retries included
    batching: Batching = field(default_factory=Batching)


def trace_settings(environ: Mapping[str, str]) -> TraceSettings | None:
    """Where to export spans, from the standard OTEL_* variables; None when
    they do not ask for trace export. Raises ConfigError naming a bad one."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() or "otlp"
    if exporter == "none":
        return None
    if exporter != "otlp":
        raise ConfigError(f"invalid OTEL_TRACES_EXPORTER: {exporter!r} is not otlp or none")
    protocol_var = first_set(environ, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
    if protocol_var and environ[protocol_var].strip() != "http/protobuf":
        raise ConfigError(f"invalid {protocol_var}: {environ[protocol_var]!r}: only http/protobuf is supported")

    if environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        endpoint_var, endpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    elif environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        # The signal-less endpoint is a base URL: the signal's path is appended.
        endpoint_var = "OTEL_EXPORTER_OTLP_ENDPOINT"
        endpoint = environ[endpoint_var].rstrip("/") + "/v1/traces"
    else:
        return None
    try:
        _url(endpoint.strip())
    except ValueError as exc:
        raise ConfigError(f"invalid {endpoint_var}: {exc}") from None

    timeout = EXPORT_TIMEOUT
    if timeout_var := first_set(environ, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"):
        timeout = _milliseconds(timeout_var, environ[timeout_var]) / 1000
    check_exporter(environ)
    return TraceSettings(endpoint.strip(), timeout, batching(environ))


def _milliseconds(name: str, value: str) -> float:
    # The specification counts OTLP timeouts in milliseconds, as the Go SDK
    # (the server) does; the Python exporter would read seconds.
    try:
        millis = float(value)
    except ValueError:
        raise ConfigError(f"invalid {name}: {value!r} is not a number of milliseconds") from None
    if not 0 < millis <= 600_000:  # also rejects NaN
        raise ConfigError(f"invalid {name}: {value!r} must be more than 0 and at most 600000 milliseconds")
    return millis


class Tracing:
    """Records results as spans and exports them, or does nothing when
    settings is None."""

    def __init__(
        self,
        settings: TraceSettings | None,
        drain: float = TRACES_DRAIN,
    ) -> None:
        self.drain = drain
        self._tracer: trace.Tracer | None = None
        if settings is None:
            return
        self._ids = _GivenIds()
        self._processor = BatchSpanProcessor(
            OTLPSpanExporter(endpoint=settings.endpoint, timeout=settings.timeout),
            # All four given: the SDK reads none of the OTEL_BSP_* variables
            # itself (trace_settings checked them).
            max_queue_size=settings.batching.max_queue_size,
            schedule_delay_millis=settings.batching.schedule_delay_ms,
            max_export_batch_size=settings.batching.max_export_batch_size,
            export_timeout_millis=settings.batching.export_timeout_ms,
        )
        resource = Resource.create({"service.name": SERVICE_NAME, "service.version": __version__})
        provider = TracerProvider(
            # Every probe is a trace: its traceparent said "sampled" to the server.
            sampler=ALWAYS_ON,
            # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win, as in the server.
            resource=resource.merge(OTELResourceDetector().detect()),
            id_generator=self._ids,
            # The SDK's own exit hook would wait up to 30 s for a dead collector.
            shutdown_on_exit=False,
        )
        provider.add_span_processor(self._processor)
        self._tracer = provider.get_tracer("client")

    def record(self, result: ProbeResult) -> None:
        """One span for the exchange, one child per phase it reached."""
        if self._tracer is None or not (result.trace_id and result.span_id):  # nothing was sent
            return
        start = _ns(result.started_at)
        with self._ids.given(int(result.trace_id, 16), int(result.span_id, 16)):
            root = self._tracer.start_span(
                _span_name(result), kind=SpanKind.CLIENT, start_time=start, attributes=http_attributes(result)
            )
        parent = trace.set_span_in_context(root)
        for phase in result.phases:
            span = self._tracer.start_span(phase.name, context=parent, start_time=start + _ns(phase.start))
            if _failed_in(result, phase):
                span.set_status(Status(StatusCode.ERROR, result.error))
            span.end(end_time=start + _ns(phase.end))
        if not result.success:
            root.set_status(Status(StatusCode.ERROR, result.error))
        root.end(end_time=start + round(result.duration_ms * 1_000_000))

    @contextlib.contextmanager
    def closing(self) -> Iterator[None]:
        """Export what is queued while the block runs, and after it for at
        most what is left of drain seconds; what is still queued then is
        dropped. (The SDK's own shutdown could wait 30 s.)"""
        if self._tracer is None:
            yield
            return
        stopper = threading.Thread(target=self._processor.shutdown, name="traces-drain", daemon=True)
        deadline = time.monotonic() + self.drain
        stopper.start()
        yield
        stopper.join(max(deadline - time.monotonic(), 0))

    def close(self) -> None:
        with self.closing():
            pass


def http_attributes(result: ProbeResult) -> dict[str, AttributeValue]:
    """The HTTP client span's attributes, per the semantic conventions."""
    url = urlsplit(result.endpoint)
    attributes: dict[str, AttributeValue] = {
        "http.request.method": result.method,
        "url.full": result.endpoint,  # credentials are already redacted
        "url.template": url.path or "/",
        "server.address": url.hostname or "",
        "server.port": url.port or (443 if url.scheme == "https" else 80),
        "user_agent.original": f"status-monitor/{__version__}",
    }
    if result.status_code is not None:
        attributes["http.response.status_code"] = result.status_code
        attributes["network.protocol.version"] = "1.1"
    if not result.success:
        # The convention: the status code when the answer came but was not a
        # success, else a low-cardinality name for what failed.
        attributes["error.type"] = (
            str(result.status_code) if result.error_type == "http_status" else result.error_type or "unknown"
        )
    return attributes


def _span_name(result: ProbeResult) -> str:
    return f"{result.method} {urlsplit(result.endpoint).path or '/'}"


def _failed_in(result: ProbeResult, phase: Phase) -> bool:
    """A failure other than an unwanted status code happened in the last
    phase the probe reached."""
    return not result.success and result.error_type != "http_status" and phase is result.phases[-1]


def _ns(seconds: float) -> int:
    return round(seconds * 1_000_000_000)


class _GivenIds(IdGenerator):
    """The SDK takes a new span's IDs from its IdGenerator. A probe's root
    span must carry the IDs its traceparent sent, so they are handed over
    here while that span starts; every other span gets random ones."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()
        self._lock = threading.Lock()
        self._given: tuple[int, int] | None = None

    @contextlib.contextmanager
    def given(self, trace_id: int, span_id: int) -> Iterator[None]:
        with self._lock:
            self._given = (trace_id, span_id)
            try:
                yield
            finally:
                self._given = None

    def generate_trace_id(self) -> int:
        return self._given[0] if self._given else self._random.generate_trace_id()

    def generate_span_id(self) -> int:
        return self._given[1] if self._given else self._random.generate_span_id()
