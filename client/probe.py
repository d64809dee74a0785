"""One HTTP exchange with the server, measured and classified.

Every exchange uses a fresh connection that is closed afterwards, as
blackbox_exporter does: a stray 1xx, a 101 with bytes after it, a truncated
body or a server-side close can then never make a later probe read an
earlier answer. The timeout is one budget for the whole exchange: resolving
the name, connecting, TLS, sending, waiting for the answer and reading its
body (client/transport.py enforces it and times each phase).
"""

from __future__ import annotations

import http.client
import json
import secrets
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3

from client import __version__
from client.transport import PHASES, TIMEOUT_OF_PHASE, Attempt, Clock, DNSTimeoutError, Phase, session

#: Bodies beyond this many bytes are not read: a status answer is a line.
MAX_BODY_BYTES = 64 * 1024

#: The closed vocabulary of error_type, with what each means.
ERROR_TYPES = {
    "dns": "the host name did not resolve, or cannot be encoded",
    "dns_timeout": "the host name did not resolve within the budget",
    "connect_refused": "nothing listens on the port",
    "connect_timeout": "no connection (or TLS handshake) within the budget",
    "connect_error": "the connection failed otherwise (no route, unreachable)",
    "tls": "the TLS handshake or certificate failed",
    "read_timeout": "no complete answer within the budget",
    "connection_reset": "the server reset the connection",
    "connection_closed": "the server closed the connection without answering",
    "protocol": "the answer was not valid HTTP",
    "body": "the body was cut short, malformed or over 64 KiB",
    "informational": "no final answer: the connection closed after an interim 1xx, or a 101 switched protocols",
    "http_status": "a final answer whose status code is not a success",
    "header_mismatch": "a response header is missing, or does (not) match its expression (targets file)",
    "body_mismatch": "the body does not match, or matches, an expression it must not (targets file)",
    "json_mismatch": "the body is not JSON, or a query on it gave another value (targets file)",
    "tls_expiring": "the earliest certificate expiry is fewer days away than the target allows (targets file)",
    "skipped": "a flaky toggle not sent: no room for it before the next probe (toggles only)",
    "unknown": "anything else (a bug in the client: please report it)",
}


@dataclass(frozen=True)
class Exchange:
    """What one request got. status_code is None when no final answer came."""

    method: str
    endpoint: str
    status_code: int | None
    duration_ms: float
    error_type: str | None
    error: str | None
    trace_id: str
    headers: dict[str, str]
    body: bytes
    interim_codes: tuple[int, ...]
    started_at: float
    phases: tuple[Phase, ...]
    span_id: str
    tls_not_after: float | None = None  # the peer certificates' earliest expiry (Unix seconds), https only
    header_lines: tuple[tuple[str, str], ...] = ()  # every header line, a repeated header's values apart


@dataclass(frozen=True)
class ProbeResult:
    """One request's outcome, as its record reports it. started_at is the
    wall-clock start (Unix seconds); each phase's start and end count from it."""

    method: str
    endpoint: str
    status_code: int | None
    duration_ms: float
    success: bool
    error_type: str | None
    error: str | None
    trace_id: str
    interim_codes: tuple[int, ...] = field(default=(), kw_only=True)
    started_at: float = field(default=0.0, kw_only=True)
    phases: tuple[Phase, ...] = field(default=(), kw_only=True)
    span_id: str = field(default="", kw_only=True)  # the parent its traceparent sent
    tls_days_left: float | None = field(default=None, kw_only=True)  # https only

    @property
    def phases_ms(self) -> dict[str, float | None]:
        """Milliseconds spent in each phase; None for a phase not reached."""
        spent = {p.name: p.ms for p in self.phases}
        return {name: spent.get(name) for name in PHASES}


@dataclass(frozen=True)
class ToggleResult(ProbeResult):
    flaky: bool | None  # the server's new state when it says so, else None


TWO_XX = frozenset(range(200, 300))


def probe(
    url: str, budget: float, success_codes: frozenset[int], clock: Clock = time.perf_counter, *, ca_bundle: str = ""
) -> ProbeResult:
    """GET url once and judge the answer. An https server's certificate is
    verified against certifi's bundle, or the CA certificates in the file
    ca_bundle names."""
    return _judge(exchange("GET", url, budget, clock, ca_bundle=ca_bundle), success_codes)


def toggle_flaky(url: str, budget: float, clock: Clock = time.perf_counter) -> ToggleResult:
    """POST url once (never retried) and read the new flaky state if told."""
    ex = exchange("POST", url, budget, clock)
    result = _judge(ex, TWO_XX)
    fields = {f: getattr(result, f) for f in result.__dataclass_fields__}
    return ToggleResult(**fields, flaky=_flaky_state(ex) if result.success else None)


def skipped_toggle(url: str, why: str) -> ToggleResult:
    """The record of a toggle that was not sent."""
    return ToggleResult("POST", redact(url), None, 0.0, False, "skipped", why, "", started_at=time.time(), flaky=None)


def _judge(ex: Exchange, success_codes: frozenset[int]) -> ProbeResult:
    """An answer is a success when its code is one of success_codes; a 1xx
    is no final answer."""
    error_type, error = ex.error_type, ex.error
    if error_type is None and ex.status_code is not None:
        error_type, error = status_failure(ex.status_code, success_codes) or (None, None)
    success = error_type is None and ex.status_code is not None
    return ProbeResult(
        ex.method, ex.endpoint, ex.status_code, ex.duration_ms, success, error_type, error, ex.trace_id,
        interim_codes=ex.interim_codes, started_at=ex.started_at, phases=ex.phases, span_id=ex.span_id,
        tls_days_left=days_left(ex.tls_not_after, ex.started_at),
    )  # fmt: skip


def status_failure(code: int, success_codes: frozenset[int]) -> tuple[str, str] | None:
    """None when code is one of success_codes; else its error_type and
    message: a 1xx is no final answer, any other code a wrong one."""
    if code in success_codes:
        return None
    return ("informational" if code < 200 else "http_status"), f"{code} {_reason(code)}"


def days_left(not_after: float | None, now: float) -> float | None:
    """Days from now until not_after, to 0.01 day (negative once expired)."""
    return None if not_after is None else round((not_after - now) / 86400, 2)


def exchange(
    method: str,
    url: str,
    budget: float,
    clock: Clock = time.perf_counter,
    *,
    headers: tuple[tuple[str, str], ...] = (),
    ca_bundle: str = "",
) -> Exchange:
    """Send one request on a fresh connection within budget seconds, with
    the caller's headers (never logged). An https server's certificate is
    verified against certifi's bundle, or the CA file ca_bundle names."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    sent = {
        **dict(headers),
        "Connection": "close",
        "User-Agent": f"status-monitor/{__version__}",
        # W3C trace context: the server's span and log line join this trace.
        "traceparent": f"00-{trace_id}-{span_id}-01",
    }
    attempt = Attempt(budget, clock)
    with session(ca_bundle) as s:
        try:
            # Building the request is the client's business, not the
            # server's: it is done before the clock starts (which is when
            # the transport starts resolving the host).
            prepared = s.prepare_request(requests.Request(method, url, headers=sent))
        except (requests.RequestException, ValueError) as exc:  # e.g. a host name IDNA cannot encode
            answer = _Answer(error_type="dns", error=_short(hide_password(f"bad host in the URL: {exc}", url)))
        else:
            answer = _send(s, prepared, attempt)
    _explain(answer, attempt)
    return Exchange(
        method, redact(url), answer.status_code, round((attempt.end - attempt.start) * 1000, 3),
        answer.error_type, answer.error, trace_id, answer.headers, answer.body,
        tuple(attempt.interim_codes), attempt.started_at, attempt.phases(), span_id, attempt.tls_not_after,
        answer.header_lines,
    )  # fmt: skip


@dataclass
class _Answer:
    """What came back. status_code stays as sent when the headers came and
    the body failed."""

    status_code: int | None = None
    headers: dict[str, str] = field(default_factory=dict)  # a repeated header's values joined by ", "
    header_lines: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    error_type: str | None = None
    error: str | None = None


def _send(s: requests.Session, prepared: requests.PreparedRequest, attempt: Attempt) -> _Answer:
    answer = _Answer()
    with attempt:
        try:
            with s.send(prepared, timeout=(attempt.budget,) * 2, allow_redirects=False, stream=True) as resp:
                answer.status_code = resp.status_code
                answer.body = _read_body(resp)
                attempt.finish()  # the answer is in: closing is the client's business
                answer.headers = dict(resp.headers)
                answer.header_lines = tuple(resp.raw.headers.items())
        except _BodyTooLargeError:
            attempt.finish()
            answer.error_type, answer.error = "body", f"body larger than {MAX_BODY_BYTES // 1024} KiB"
        except Exception as exc:  # noqa: BLE001 - every failure is a result
            attempt.finish()
            answer.error_type, answer.error = classify(exc)
    return answer


def _explain(answer: _Answer, attempt: Attempt) -> None:
    """Name a timeout after the phase it interrupted, and a close after an
    interim answer for what it is."""
    if attempt.expired:
        # Whatever the interrupted call raised, the cause is the budget.
        answer.error_type = TIMEOUT_OF_PHASE[attempt.phase]
        answer.status_code = answer.status_code if attempt.phase == "transfer" else None
    if answer.error_type in _TIMEOUT_MESSAGES:
        answer.error = _TIMEOUT_MESSAGES[answer.error_type].format(attempt.budget)
    elif answer.error_type == "connection_closed" and attempt.interim_codes:
        answer.error_type = "informational"
        answer.error = f"closed after {attempt.interim_codes[-1]} without a final answer"


_TIMEOUT_MESSAGES = {
    "dns_timeout": "no address for the host within {:.3g} s",
    "connect_timeout": "no connection within {:.3g} s",
    "read_timeout": "no complete answer within {:.3g} s",
}


def redact(url: str) -> str:
    """url with the password, if any, replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))


def hide_password(text: str, url: str) -> str:
    """text with the password of url, if any, replaced by *** where text
    quotes the URL (an error message may quote the URL it failed on)."""
    try:
        password = urlsplit(url.strip()).password
    except ValueError:  # not a URL: nothing to hide
        return text
    return text.replace(f":{password}@", ":***@") if password else text


class _BodyTooLargeError(Exception):
    pass


def _read_body(resp: requests.Response) -> bytes:
    body = bytearray()
    for chunk in resp.iter_content(chunk_size=16 * 1024):
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _BodyTooLargeError
    return bytes(body)


def classify(exc: BaseException) -> tuple[str, str]:
    """Map an exception from requests, urllib3 or http.client to
    (error_type, short message)."""
    chain = list(_causes(exc))

    def has(*types: type[BaseException]) -> bool:
        return any(isinstance(e, types) for e in chain)

    root = chain[-1]
    detail = _short(str(root) or type(root).__name__)
    if has(DNSTimeoutError):
        return "dns_timeout", detail
    if has(urllib3.exceptions.NameResolutionError, socket.gaierror):
        return "dns", detail
    if has(ConnectionRefusedError):
        return "connect_refused", detail
    if has(ssl.SSLError, urllib3.exceptions.SSLError, requests.exceptions.SSLError):
        return "tls", detail
    # urllib3's NewConnectionError subclasses ConnectTimeoutError, whatever the cause.
    if has(requests.exceptions.ConnectTimeout) or any(
        isinstance(e, urllib3.exceptions.ConnectTimeoutError)
        and not isinstance(e, urllib3.exceptions.NewConnectionError)
        for e in chain
    ):
        return "connect_timeout", detail
    if has(urllib3.exceptions.NewConnectionError):
        return "connect_error", detail
    if has(urllib3.exceptions.ReadTimeoutError, requests.exceptions.ReadTimeout, TimeoutError):
        return "read_timeout", detail
    if has(http.client.RemoteDisconnected):  # a ConnectionResetError too, so first
        return "connection_closed", detail
    if has(ConnectionResetError, BrokenPipeError):
        return "connection_reset", detail
    if has(
        http.client.IncompleteRead,
        urllib3.exceptions.IncompleteRead,
        urllib3.exceptions.InvalidChunkLength,
        urllib3.exceptions.DecodeError,
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ContentDecodingError,
    ):
        return "body", detail
    if has(http.client.HTTPException, urllib3.exceptions.ProtocolError, requests.exceptions.InvalidHeader):
        return "protocol", detail
    return "unknown", _short(f"{type(exc).__name__}: {exc}")


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """exc and everything it wraps, outermost first."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        wrapped: list[Any] = [e.__cause__, e.__context__, getattr(e, "reason", None), *e.args]
        todo.extend(w for w in wrapped if isinstance(w, BaseException))


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reason(code: int) -> str:
    return http.client.responses.get(code, "Unknown")


def _flaky_state(ex: Exchange) -> bool | None:
    header = {k.lower(): v for k, v in ex.headers.items()}.get("x-flaky", "").strip().lower()
    if header in ("true", "false"):
        return header == "true"
    try:
        value = json.loads(ex.body).get("flaky")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, bool) else None
