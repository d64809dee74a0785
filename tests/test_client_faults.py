"""Probes against real loopback servers that misbehave: each record must say
what that server sent on that connection, within the probe's budget, and
how far the exchange got (its phases).

FAULTS is shared with the differential test against blackbox_exporter
(test_client_blackbox.py): one row per fault, one server per row. Each row
runs over http and over https (the same handler behind TLS, its certificate
signed by a CA made for the test run), but rows that only make sense for one.
"""

from __future__ import annotations

import functools
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from client import resolve, transport
from client.probe import MAX_BODY_BYTES, TWO_XX, probe
from client.transport import PHASES
from tests.conftest import (
    FULL_QUEUE,
    REFUSED,
    BeforeTLS,
    FaultServer,
    LoopbackCA,
    answer,
    read_request,
    wait_until,
)

#: Long enough that a loaded machine answers a healthy server within it.
BUDGET = 1.0
#: time.perf_counter's and the timer's granularity, generously.
GRANULARITY_S = 0.02
#: What a loaded machine may add to a probe that runs into its budget.
MARGIN_S = 2.0

Handler = Callable[[socket.socket], None]


def respond(data: bytes) -> Handler:
    def handler(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(data)

    return handler


def slow(conn: socket.socket) -> None:
    read_request(conn)
    time.sleep(0.3)
    conn.sendall(answer("200 OK", b"OK\n"))


def hang(conn: socket.socket) -> None:
    read_request(conn)
    conn.recv(1)  # until the client gives up and closes


def hang_after_headers(conn: socket.socket) -> None:
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n")
    conn.recv(1)


def reset(conn: socket.socket) -> None:
    read_request(conn)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST


def close_silently(conn: socket.socket) -> None:
    read_request(conn)


def trickle_body(conn: socket.socket, pause: float = 0.05) -> None:
    """A body of 100 bytes, one every pause seconds."""
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    for _ in range(100):
        conn.sendall(b"x")
        time.sleep(pause)


def trickle_headers(conn: socket.socket) -> None:
    read_request(conn)
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 200:
        conn.sendall(bytes([byte]))
        time.sleep(0.02)


def no_server_hello(conn: socket.socket) -> None:
    """Takes a TLS ClientHello and never answers it."""
    while conn.recv(65536):  # until the client gives up and closes
        pass


def trickle_server_hello(conn: socket.socket) -> None:
    """Takes a TLS ClientHello and answers with the header of a 16 KiB
    handshake record, then its bytes one at a time."""
    conn.recv(65536)
    conn.sendall(bytes([0x16, 0x03, 0x03, 0x40, 0x00]))
    for _ in range(100):
        conn.sendall(b"\x00")
        time.sleep(0.05)


def interim_then_final(*codes: int) -> Handler:
    """The exercise's server: interim answers, a pause, then the final 200."""

    def handler(conn: socket.socket) -> None:
        read_request(conn)
        for code in codes:
            conn.sendall(f"HTTP/1.1 {code} Interim\r\nLink: </x>\r\n\r\n".encode())
            time.sleep(0.05)
        conn.sendall(answer("200 OK", b"OK\n"))

    return handler


@dataclass(frozen=True)
class Fault:
    server: Handler | BeforeTLS | str  # a connection handler, or REFUSED or FULL_QUEUE
    status: int | None
    success: bool
    error_type: str | None
    last_phase: str  # the last phase the exchange reached
    interim: tuple[int, ...] = ()
    hangs: bool = False  # runs into the budget
    schemes: tuple[str, ...] = ("http", "https")


FAULTS = {
    "ok": Fault(respond(answer("200 OK", b"OK\n")), 200, True, None, "transfer"),
    "slow": Fault(slow, 200, True, None, "transfer"),
    "100 then 200": Fault(interim_then_final(100), 200, True, None, "transfer", (100,)),
    "102 then 200": Fault(interim_then_final(102), 200, True, None, "transfer", (102,)),
    "103 then 200": Fault(interim_then_final(103), 200, True, None, "transfer", (103,)),
    "102, 103 then 200": Fault(interim_then_final(102, 103), 200, True, None, "transfer", (102, 103)),
    "six 103s then 200": Fault(interim_then_final(*[103] * 6), None, False, "protocol", "wait", (103,) * 5),
    "103 then close": Fault(respond(b"HTTP/1.1 103 Early Hints\r\n\r\n"), None, False, "informational", "wait", (103,)),
    "101 with a body": Fault(respond(b"HTTP/1.1 101 Switching Protocols\r\n\r\nSwitching Protocols\n"),
                             101, False, "informational", "transfer"),
    "204": Fault(respond(b"HTTP/1.1 204 No Content\r\n\r\n"), 204, True, None, "transfer"),
    "304": Fault(respond(b"HTTP/1.1 304 Not Modified\r\n\r\n"), 304, False, "http_status", "transfer"),
    "503": Fault(respond(answer("503 Service Unavailable", b"Service Unavailable\n")),
                 503, False, "http_status", "transfer"),
    "refused": Fault(REFUSED, None, False, "connect_refused", "connect"),
    "full accept queue": Fault(FULL_QUEUE, None, False, "connect_timeout", "connect", hangs=True),
    "hanging": Fault(hang, None, False, "read_timeout", "wait", hangs=True),
    "hanging after headers": Fault(hang_after_headers, 200, False, "read_timeout", "transfer", hangs=True),
    "trickling body": Fault(trickle_body, 200, False, "read_timeout", "transfer", hangs=True),
    "trickling headers": Fault(trickle_headers, None, False, "read_timeout", "wait", hangs=True),
    "resetting": Fault(reset, None, False, "connection_reset", "wait"),
    "closing without answer": Fault(close_silently, None, False, "connection_closed", "wait"),
    "truncated body": Fault(respond(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b"),
                            200, False, "body", "transfer"),
    "bad chunk": Fault(respond(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnot hex\r\n"),
                       200, False, "body", "transfer"),
    "body over 64 KiB": Fault(respond(answer("200 OK", b"x" * (MAX_BODY_BYTES + 1))), 200, False, "body", "transfer"),
    "not HTTP": Fault(respond(b"hello\r\n\r\n"), None, False, "protocol", "wait"),
    "stalled TLS handshake": Fault(BeforeTLS(no_server_hello), None, False, "connect_timeout", "tls", hangs=True,
                                   schemes=("https",)),
    "trickling TLS handshake": Fault(BeforeTLS(trickle_server_hello), None, False, "connect_timeout", "tls",
                                     hangs=True, schemes=("https",)),
}  # fmt: skip

#: Where a row's error_type differs over https, and why.
OVER_TLS = {
    # Python's ssl module (with OpenSSL 3) reports a reset under TLS as an
    # EOF ("EOF occurred in violation of protocol"): the probe sees a close.
    "resetting": "connection_closed",
}

#: Every row over each of its schemes.
CASES = [pytest.param(name, scheme, id=f"{name} ({scheme})") for name, f in FAULTS.items() for scheme in f.schemes]


@pytest.mark.parametrize(("name", "scheme"), CASES)
def test_fault(fault_url: Callable[..., str], test_ca: LoopbackCA, name: str, scheme: str) -> None:
    fault = FAULTS[name]
    if scheme == "https" and name in OVER_TLS:
        fault = replace(fault, error_type=OVER_TLS[name])
    url = fault_url(fault, scheme) + "/status"
    started = time.perf_counter()
    r = probe(url, BUDGET, TWO_XX, ca_bundle=test_ca.bundle)
    wall = time.perf_counter() - started
    assert (r.status_code, r.success, r.error_type) == (fault.status, fault.success, fault.error_type), r
    assert r.interim_codes == fault.interim, r
    assert (r.error is None) == fault.success
    if fault.hangs:
        assert BUDGET - GRANULARITY_S <= r.duration_ms / 1000 <= BUDGET + MARGIN_S, r
    else:
        assert r.duration_ms / 1000 < BUDGET, r
    assert wall - r.duration_ms / 1000 < MARGIN_S / 2, f"the probe took {wall:.3f} s: {r}"
    reached = PHASES[: PHASES.index(fault.last_phase) + 1]
    if scheme == "http":
        reached = tuple(p for p in reached if p != "tls")
    assert {p for p, ms in r.phases_ms.items() if ms is not None} == set(reached), r.phases_ms
    assert sum(ms for ms in r.phases_ms.values() if ms is not None) == pytest.approx(r.duration_ms, abs=0.01)


def test_slow_answer_is_waited_for(fault_url: Callable[..., str]) -> None:
    r = probe(fault_url(FAULTS["slow"]) + "/status", BUDGET, TWO_XX)
    assert r.phases_ms["wait"] is not None
    assert r.phases_ms["wait"] >= 300 - GRANULARITY_S * 1000, r.phases_ms


def test_a_tls_server_trickling_cannot_hold_a_probe(
    fault_server: Callable[..., FaultServer], test_ca: LoopbackCA
) -> None:
    """The deadline watches the socket read from, the TLS one over https:
    the probe ends at its budget and its record says how long it took."""
    server = fault_server(functools.partial(trickle_body, pause=0.2), tls=test_ca.server)  # 20 s in all
    started = time.perf_counter()
    r = probe(server.url + "/status", BUDGET, TWO_XX, ca_bundle=test_ca.bundle)
    wall = time.perf_counter() - started
    assert (r.status_code, r.error_type) == (200, "read_timeout"), r
    assert wall <= BUDGET + MARGIN_S, f"the probe took {wall:.3f} s: {r}"
    assert r.duration_ms / 1000 == pytest.approx(wall, abs=MARGIN_S / 2), f"the probe took {wall:.3f} s: {r}"


def test_an_https_probe_verifies_the_certificate(fault_server: Callable[..., FaultServer], test_ca: LoopbackCA) -> None:
    server = fault_server(respond(answer("200 OK", b"OK\n")), tls=test_ca.server)
    r = probe(server.url + "/status", BUDGET, TWO_XX, ca_bundle=test_ca.bundle)
    assert (r.status_code, r.success, r.error_type) == (200, True, None), r
    assert all(ms is not None for ms in r.phases_ms.values()), r.phases_ms
    untrusted = probe(server.url + "/status", BUDGET, TWO_XX)  # certifi's bundle does not hold the test CA
    assert (untrusted.status_code, untrusted.success, untrusted.error_type) == (None, False, "tls"), untrusted
    assert "certificate verify failed" in (untrusted.error or ""), untrusted


@pytest.mark.parametrize(
    ("scheme", "fault"),
    [pytest.param(scheme, FAULTS[name], id=f"{name} ({scheme})")
     for name in ("full accept queue", "stalled TLS handshake", "hanging", "hanging after headers")
     for scheme in FAULTS[name].schemes],
)  # fmt: skip
def test_a_timeout_is_named_after_its_phase_when_the_timer_is_late(
    monkeypatch: pytest.MonkeyPatch, fault_url: Callable[..., str], test_ca: LoopbackCA, scheme: str, fault: Fault
) -> None:
    """On a loaded machine the sockets' own timeouts can beat the budget's
    timer; whatever urllib3 calls them, the phase names the timeout."""
    monkeypatch.setattr(transport.Attempt, "_expire", lambda _: None)  # a timer that never gets the CPU
    r = probe(fault_url(fault, scheme) + "/status", 0.3, TWO_XX, ca_bundle=test_ca.bundle)
    assert (r.status_code, r.error_type) == (fault.status, fault.error_type), r


def test_name_resolution_is_timed(fault_url: Callable[..., str]) -> None:
    url = fault_url(FAULTS["ok"]).replace("127.0.0.1", "localhost")
    r = probe(url + "/status", BUDGET, TWO_XX)
    assert r.success, r
    assert r.phases_ms["dns"] is not None


@pytest.fixture
def resolver_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, ...]]:
    """The resolver's calls; each fails."""
    calls: list[tuple[object, ...]] = []

    def record(*args: object) -> list[object]:
        calls.append(args)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(resolve, "getaddrinfo", record)
    return calls


class OneThreadServer:
    """An HTTP server that answers 200 on the one thread it started with:
    serving a probe starts no thread in the test process."""

    def __init__(self) -> None:
        class OK(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), OK)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/status"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def one_thread_server() -> Iterator[OneThreadServer]:
    server = OneThreadServer()
    yield server
    server.close()


def test_an_ip_target_is_never_resolved(one_thread_server: OneThreadServer, resolver_calls: list[object]) -> None:
    """An IP literal needs no resolver: its address is built from it."""
    r = probe(one_thread_server.url, BUDGET, TWO_XX)
    assert (r.status_code, r.success) == (200, True), r
    assert resolver_calls == []
    assert r.phases_ms["dns"] is not None, r.phases_ms


def test_an_ipv6_target_is_never_a_dns_failure(resolver_calls: list[object]) -> None:
    """Nothing listens on port 1 of ::1 (or the host has no IPv6): refused
    or a connection error, never dns."""
    r = probe("http://[::1]:1/status", BUDGET, TWO_XX)
    assert r.error_type in ("connect_refused", "connect_error"), r
    assert resolver_calls == []


def test_a_probe_starts_no_thread(monkeypatch: pytest.MonkeyPatch, one_thread_server: OneThreadServer) -> None:
    """Neither the name lookup nor the deadline costs a thread per probe
    (the long-lived ones start with the first probes)."""
    by_name = one_thread_server.url.replace("127.0.0.1", "localhost")
    probe(by_name, BUDGET, TWO_XX)  # the long-lived threads start
    started: list[threading.Thread] = []
    monkeypatch.setattr(threading.Thread, "start", lambda thread: started.append(thread))
    ip, name = probe(one_thread_server.url, BUDGET, TWO_XX), probe(by_name, BUDGET, TWO_XX)
    assert (ip.success, name.success) == (True, True), (ip, name)
    assert started == []


@pytest.fixture
def stalled_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """getaddrinfo hangs until the test is over."""
    release = threading.Event()

    def stalled(*_: object) -> list[object]:
        release.wait(30)
        raise socket.gaierror(socket.EAI_AGAIN, "stalled")

    monkeypatch.setattr(resolve, "getaddrinfo", stalled)
    yield
    release.set()
    wait_until(lambda: resolve.resolver.pending() == 0)  # the next test starts with a free resolver


@pytest.mark.usefixtures("stalled_resolver")
def test_stalled_resolver_is_a_dns_timeout() -> None:
    """getaddrinfo cannot be interrupted: the probe stops waiting for it at
    the deadline, and the budget counts the time spent resolving."""
    r = probe("http://status.invalid/status", BUDGET, TWO_XX)
    assert (r.status_code, r.success, r.error_type) == (None, False, "dns_timeout"), r
    assert BUDGET - GRANULARITY_S <= r.duration_ms / 1000 <= BUDGET + MARGIN_S, r
    assert r.phases_ms == {"dns": r.duration_ms, "connect": None, "tls": None, "wait": None, "transfer": None}


@pytest.mark.usefixtures("stalled_resolver")
def test_a_stalled_resolver_costs_a_few_threads_not_one_per_probe() -> None:
    """Abandoned lookups are bounded: once MAX_PENDING_LOOKUPS hang, a probe
    fails at once as dns (not a dns_timeout it never waited for)."""
    results = [probe("http://status.invalid/status", 0.05, TWO_XX) for _ in range(resolve.MAX_PENDING_LOOKUPS + 1)]
    assert {r.error_type for r in results[:-1]} <= {"dns_timeout", "dns"}, results
    assert results[-1].error_type == "dns", results[-1]
    assert "the resolver is stalled" in (results[-1].error or ""), results[-1]


@pytest.mark.usefixtures("stalled_resolver")
def test_an_ip_target_is_probed_while_the_resolver_is_stalled(one_thread_server: OneThreadServer) -> None:
    for _ in range(resolve.MAX_PENDING_LOOKUPS):
        probe("http://status.invalid/status", 0.01, TWO_XX)
    r = probe(one_thread_server.url, BUDGET, TWO_XX)
    assert (r.status_code, r.success, r.error_type) == (200, True, None), r


def test_unknown_host_is_a_dns_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def unknown(*_: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(resolve, "getaddrinfo", unknown)
    r = probe("http://status.invalid/status", BUDGET, TWO_XX)
    assert (r.status_code, r.error_type) == (None, "dns"), r
    assert "Name or service not known" in (r.error or "")


def test_a_resolver_that_raises_keeps_its_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lookup that raises what getaddrinfo never should (a bug) is the
    probe's outcome; its resolver thread lives on and frees its place."""

    def broken(*_: object) -> list[object]:
        raise RuntimeError("a bug in the resolver")

    monkeypatch.setattr(resolve, "getaddrinfo", broken)
    for _ in range(resolve.MAX_PENDING_LOOKUPS + 1):
        r = probe("http://status.invalid/status", BUDGET, TWO_XX)
        assert (r.status_code, r.error_type) == (None, "unknown"), r
        assert "a bug in the resolver" in (r.error or ""), r
    wait_until(lambda: resolve.resolver.pending() == 0)


@pytest.mark.parametrize("url", ["http://.invalid/status", "http://exa mple.invalid/status", "http://a..b/status"])
def test_a_host_that_cannot_be_encoded_is_a_dns_error(url: str) -> None:
    r = probe(url, BUDGET, TWO_XX)
    assert (r.status_code, r.success, r.error_type) == (None, False, "dns"), r
    assert r.error


def test_credentials_never_reach_the_result(fault_url: Callable[..., str]) -> None:
    url = fault_url(FAULTS["ok"]).replace("http://", "http://user:s3cret@")
    r = probe(url + "/status", BUDGET, TWO_XX)
    assert r.endpoint == url.replace("s3cret", "***") + "/status"
    assert "s3cret" not in repr(r)


def test_a_bad_url_never_shows_its_password() -> None:
    r = probe("http://u:s3cret@/status", BUDGET, TWO_XX)
    assert (r.error_type, r.endpoint) == ("dns", "http://u:***@/status"), r
    assert "s3cret" not in repr(r)


def test_each_probe_reports_its_own_answer(fault_server: Callable[..., FaultServer]) -> None:
    """Connection n gets answer n; bytes after a 101 stay on their own
    connection."""
    server = fault_server(
        interim_then_final(103),
        respond(answer("500 Internal Server Error", b"Internal Server Error\n")),
        respond(b"HTTP/1.1 101 Switching Protocols\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        respond(answer("418 I'm a teapot", b"I'm a teapot\n")),
        close_silently,
        respond(b"HTTP/1.1 204 No Content\r\n\r\n"),
        respond(answer("200 OK", b"OK\n")),
    )
    got = [probe(server.url + "/status", BUDGET, TWO_XX).status_code for _ in range(7)]
    assert got == [200, 500, 101, 418, None, 204, 200]
    assert server.connections == 7, "every probe must open a fresh connection"
