"""The OpenTelemetry variables the client's span export depends on,
checked at start: a bad one stops the client (exit 2) naming it, where the
SDK would raise a traceback (OTEL_BSP_SCHEDULE_DELAY=-5) or log a warning
and carry on with a default.

The batch processor's four variables are read here and handed to the SDK;
the exporter's compression, headers and TLS files, the span limits and
the resource attributes are only checked here, and read by the SDK itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from client.config import ConfigError

#: Spans waiting for export beyond this are dropped: about 15 minutes of
#: probes and toggles at the default intervals.
QUEUE_SIZE = 2048
#: Spans per export.
BATCH_SIZE = 512
#: Milliseconds between exports (the specification's default).
SCHEDULE_DELAY_MS = 5000
#: Milliseconds an export may take, per OTEL_BSP_EXPORT_TIMEOUT (the SDK
#: reads it but does not use it: OTEL_EXPORTER_OTLP_TIMEOUT bounds exports).
BSP_EXPORT_TIMEOUT_MS = 30000

#: The span limits, which the SDK reads itself: it raises (a traceback)
#: on one that is not a whole number.
SPAN_LIMITS = (
    "OTEL_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_EVENT_COUNT_LIMIT",
    "OTEL_SPAN_LINK_COUNT_LIMIT",
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
)

_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_KEY_VALUE = re.compile(r"[ \t]*[!#-'*+\-.0-9A-Z^-z|~]+[ \t]*=.*", re.ASCII | re.DOTALL)
_COMPRESSIONS = ("none", "gzip", "deflate")


@dataclass(frozen=True)
class Batching:
    """The batch span processor's settings (OTEL_BSP_*)."""

    schedule_delay_ms: int = SCHEDULE_DELAY_MS
    max_queue_size: int = QUEUE_SIZE
    max_export_batch_size: int = BATCH_SIZE
    export_timeout_ms: int = BSP_EXPORT_TIMEOUT_MS


def batching(environ: Mapping[str, str]) -> Batching:
    delay = _integer(environ, "OTEL_BSP_SCHEDULE_DELAY", SCHEDULE_DELAY_MS, least=1)
    queue = _integer(environ, "OTEL_BSP_MAX_QUEUE_SIZE", QUEUE_SIZE, least=1)
    batch = _integer(environ, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", min(BATCH_SIZE, queue), least=1)
    if batch > queue:
        raise ConfigError(
            f"invalid OTEL_BSP_MAX_EXPORT_BATCH_SIZE: {batch} is more than the queue's {queue} "
            "(OTEL_BSP_MAX_QUEUE_SIZE)"
        )
    timeout = _integer(environ, "OTEL_BSP_EXPORT_TIMEOUT", BSP_EXPORT_TIMEOUT_MS, least=0)
    return Batching(delay, queue, batch, timeout)


def check_exporter(environ: Mapping[str, str]) -> None:
    """The exporter's own variables, the span limits and the resource
    attributes, which the SDK reads itself."""
    for signal_var, general_var in _pairs("COMPRESSION"):
        name = first_set(environ, signal_var, general_var)
        if name and environ[name].strip().lower() not in _COMPRESSIONS:
            raise ConfigError(f"invalid {name}: {environ[name]!r} is not one of {', '.join(_COMPRESSIONS)}")
    for signal_var, general_var in _pairs("HEADERS"):
        if name := first_set(environ, signal_var, general_var):
            _key_values(name, environ[name], quote=False)  # values may be secrets: never shown
    for kind in ("CERTIFICATE", "CLIENT_KEY", "CLIENT_CERTIFICATE"):
        for signal_var, general_var in _pairs(kind):
            if name := first_set(environ, signal_var, general_var):
                _readable(name, environ[name])
    for name in SPAN_LIMITS:
        _integer(environ, name, 0, least=0)
    if environ.get("OTEL_RESOURCE_ATTRIBUTES", "").strip():
        _key_values("OTEL_RESOURCE_ATTRIBUTES", environ["OTEL_RESOURCE_ATTRIBUTES"], quote=True)


def _pairs(kind: str) -> list[tuple[str, str]]:
    """The traces variable, which wins, and the general one."""
    return [(f"OTEL_EXPORTER_OTLP_TRACES_{kind}", f"OTEL_EXPORTER_OTLP_{kind}")]


def first_set(environ: Mapping[str, str], *names: str) -> str | None:
    """The first of names set to something other than blanks."""
    return next((name for name in names if environ.get(name, "").strip()), None)


def _integer(environ: Mapping[str, str], name: str, default: int, least: int) -> int:
    value = environ.get(name, "").strip()
    if not value:
        return default
    if not _DIGITS.fullmatch(value) or int(value) < least:
        raise ConfigError(f"invalid {name}: {value!r} is not a whole number of at least {least}")
    return int(value)


def _key_values(name: str, value: str, quote: bool) -> None:
    for number, item in enumerate(value.split(","), 1):
        if item.strip() and not _KEY_VALUE.fullmatch(item):
            shown = f" ({item.strip()!r})" if quote else ""
            raise ConfigError(f"invalid {name}: entry {number}{shown} is not key=value")


def _readable(name: str, path: str) -> None:
    try:
        with open(path.strip(), "rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"invalid {name}: cannot read {path.strip()!r}: {exc.strerror or exc}") from None
