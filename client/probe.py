"""One HTTP exchange with the server, measured and classified.

Every exchange uses a fresh connection that is closed afterwards, as
blackbox_exporter does: a stray 1xx, a 101 with bytes after it, a truncated
body or a server-side close can then never make a later probe read an
earlier answer. The timeout is a budget for the whole exchange (connecting,
headers and body): a watchdog shuts the socket down when it runs out, so a
server that trickles bytes cannot hold a probe longer.
"""

from __future__ import annotations

import contextlib
import contextvars
import http.client
import json
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from client import __version__

#: Bodies beyond this many bytes are not read: a status answer is a line.
MAX_BODY_BYTES = 64 * 1024

#: The closed vocabulary of error_type, with what each means.
ERROR_TYPES = {
    "dns": "the host name did not resolve",
    "connect_refused": "nothing listens on the port",
    "connect_timeout": "no connection within the budget",
    "connect_error": "the connection failed otherwise (no route, unreachable)",
    "tls": "the TLS handshake or certificate failed",
    "read_timeout": "no complete answer within the budget",
    "connection_reset": "the server reset the connection",
    "connection_closed": "the server closed the connection without answering",
    "protocol": "the answer was not valid HTTP",
    "body": "the body was cut short, malformed or over 64 KiB",
    "informational": "the answer was a 1xx: the final answer was never seen",
    "http_status": "a final answer whose status code is not a success",
    "unknown": "anything else (a bug in the client: please report it)",
}

Clock = Callable[[], float]


@dataclass(frozen=True)
class Exchange:
    """What one request got. status_code is None when no answer came."""

    method: str
    endpoint: str
    status_code: int | None
    duration_ms: float
    error_type: str | None
    error: str | None
    trace_id: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class ProbeResult:
    """One request's outcome, as its record reports it."""

    method: str
    endpoint: str
    status_code: int | None
    duration_ms: float
    success: bool
    error_type: str | None
    error: str | None
    trace_id: str


@dataclass(frozen=True)
class ToggleResult(ProbeResult):
    flaky: bool | None  # the server's new state when it says so, else None


TWO_XX = frozenset(range(200, 300))


def probe(url: str, budget: float, success_codes: frozenset[int], clock: Clock = time.perf_counter) -> ProbeResult:
    """GET url once and judge the answer."""
    return _judge(exchange("GET", url, budget, clock), success_codes)


def toggle_flaky(url: str, budget: float, clock: Clock = time.perf_counter) -> ToggleResult:
    """POST url once (never retried) and read the new flaky state if told."""
    ex = exchange("POST", url, budget, clock)
    result = _judge(ex, TWO_XX)
    return ToggleResult(**asdict(result), flaky=_flaky_state(ex) if result.success else None)


def _judge(ex: Exchange, success_codes: frozenset[int]) -> ProbeResult:
    """An answer is a success when its code is one of success_codes; a 1xx
    is no final answer."""
    success = ex.error_type is None and ex.status_code in success_codes
    error_type, error = ex.error_type, ex.error
    if error_type is None and not success and ex.status_code is not None:
        error_type = "informational" if ex.status_code < 200 else "http_status"
        error = f"{ex.status_code} {_reason(ex.status_code)}"
    return ProbeResult(ex.method, ex.endpoint, ex.status_code, ex.duration_ms, success, error_type, error, ex.trace_id)


def exchange(method: str, url: str, budget: float, clock: Clock = time.perf_counter) -> Exchange:
    """Send one request on a fresh connection within budget seconds."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    headers = {
        "Connection": "close",
        "User-Agent": f"status-monitor/{__version__}",
        # W3C trace context: the server's span and log line join this trace.
        "traceparent": f"00-{trace_id}-{span_id}-01",
    }
    status_code: int | None = None
    resp_headers: dict[str, str] = {}
    body = b""
    error_type: str | None = None
    error: str | None = None

    with _session() as session:
        # Building the request is the client's business, not the server's:
        # it is done before the clock starts.
        prepared = session.prepare_request(requests.Request(method, url, headers=headers))
        settings = session.merge_environment_settings(prepared.url, {}, True, None, None)
        with _Watchdog(budget) as watchdog:
            start = end = clock()
            try:
                # The connect timeout bounds connecting, the watchdog
                # everything after; the read timeout only matters if the
                # watchdog is late.
                with session.send(prepared, timeout=(budget, budget), allow_redirects=False, **settings) as resp:
                    status_code = resp.status_code
                    body = _read_body(resp)
                    end = clock()  # the answer is in: closing is the client's business
                    resp_headers = dict(resp.headers)
            except _BodyTooLargeError:
                end = clock()
                error_type, error = "body", f"body larger than {MAX_BODY_BYTES // 1024} KiB"
            except Exception as exc:  # noqa: BLE001 - every failure is a result
                end = clock()
                error_type, error = classify(exc)
            duration = end - start
    if watchdog.expired:
        # Whatever the interrupted read raised, the cause is the budget.
        error_type, error = "read_timeout", f"no complete answer within {budget:g} s"
    # status_code stays as sent when the headers came and the body failed.
    return Exchange(
        method, url, status_code, round(duration * 1000, 3), error_type, error, trace_id, resp_headers, body
    )


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


# The watchdog: the connection classes below hand their socket to the
# watchdog of the exchange running in this thread, which shuts it down when
# the budget runs out. That wakes any blocked read, whatever phase it is in.

_current: contextvars.ContextVar[_Watchdog | None] = contextvars.ContextVar("watchdog", default=None)


class _Watchdog:
    def __init__(self, budget: float) -> None:
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(budget, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._token = _current.set(self)
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        _current.reset(self._token)

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            socks = list(self._sockets)
        for sock in socks:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


class _WatchedHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        if (watchdog := _current.get()) is not None and self.sock is not None:
            watchdog.watch(self.sock)


class _WatchedHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        if (watchdog := _current.get()) is not None and self.sock is not None:
            watchdog.watch(self.sock)


class _WatchedPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter with the watched connections; max_retries stays 0,
    so nothing, the POST least of all, is ever retried."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedPool, "https": _WatchedHTTPSPool}


def _session() -> requests.Session:
    session = requests.Session()
    # No proxies or .netrc from the environment: the monitor measures the
    # server, not a proxy in front of it (and skips scanning both per request).
    session.trust_env = False
    adapter = _WatchedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
