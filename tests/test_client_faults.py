"""Probes against real loopback servers that misbehave: each record must say
what that server sent on that connection, within the probe's budget."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable

import pytest

from client.probe import MAX_BODY_BYTES, TWO_XX, probe
from tests.conftest import FaultServer, answer, free_port, read_request

BUDGET = 0.5


def respond(data: bytes) -> Callable[[socket.socket], None]:
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


def reset(conn: socket.socket) -> None:
    read_request(conn)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST


def close_silently(conn: socket.socket) -> None:
    read_request(conn)


def trickle_body(conn: socket.socket) -> None:
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    for _ in range(100):
        conn.sendall(b"x")
        time.sleep(0.05)


def trickle_headers(conn: socket.socket) -> None:
    read_request(conn)
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 200:
        conn.sendall(bytes([byte]))
        time.sleep(0.01)


def early_hints_then_late_final(conn: socket.socket) -> None:
    read_request(conn)
    conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n")
    time.sleep(0.05)  # the final answer comes after the client is done
    conn.sendall(answer("200 OK", b"OK\n"))


FAULTS = {
    # name: (handler, status_code, success, error_type, min_ms, max_ms)
    "ok": (respond(answer("200 OK", b"OK\n")), 200, True, None, 0, 400),
    "slow": (slow, 200, True, None, 300, 800),
    "hanging": (hang, None, False, "read_timeout", 500, 900),
    "resetting": (reset, None, False, "connection_reset", 0, 400),
    "closing without answer": (close_silently, None, False, "connection_closed", 0, 400),
    "trickling body": (trickle_body, 200, False, "read_timeout", 500, 900),
    # The status line came, the headers never ended: http.client either gives
    # up (no code) or takes the cut-off headers as complete (the code sent).
    "trickling headers": (trickle_headers, (None, 200), False, "read_timeout", 500, 900),
    "truncated body": (
        respond(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b"),
        200, False, "body", 0, 400,
    ),
    "bad chunk": (
        respond(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnot hex\r\n"),
        200, False, "body", 0, 400,
    ),
    "body over 64 KiB": (
        respond(answer("200 OK", b"x" * (MAX_BODY_BYTES + 1))),
        200, False, "body", 0, 400,
    ),
    "103 then 200": (early_hints_then_late_final, 103, False, "informational", 0, 400),
    "101 with a body": (respond(b"HTTP/1.1 101 Switching Protocols\r\n\r\nSwitching Protocols\n"),
                        101, False, "informational", 0, 400),
    "204": (respond(b"HTTP/1.1 204 No Content\r\n\r\n"), 204, True, None, 0, 400),
    "304": (respond(b"HTTP/1.1 304 Not Modified\r\n\r\n"), 304, False, "http_status", 0, 400),
    "503": (respond(answer("503 Service Unavailable", b"Service Unavailable\n")), 503, False, "http_status", 0, 400),
    "not HTTP": (respond(b"hello\r\n\r\n"), None, False, "protocol", 0, 400),
}  # fmt: skip


@pytest.mark.parametrize("name", FAULTS)
def test_fault(fault_server: Callable[..., FaultServer], name: str) -> None:
    handler, status, success, error_type, min_ms, max_ms = FAULTS[name]
    server = fault_server(handler)
    r = probe(server.url + "/status", BUDGET, TWO_XX)
    assert r.status_code in (status if isinstance(status, tuple) else (status,)), r
    assert (r.success, r.error_type) == (success, error_type), r
    assert min_ms <= r.duration_ms <= max_ms, r
    assert (r.error is None) == success


def test_refused() -> None:
    r = probe(f"http://127.0.0.1:{free_port()}/status", BUDGET, TWO_XX)
    assert (r.status_code, r.success, r.error_type) == (None, False, "connect_refused"), r


def test_each_probe_reports_its_own_answer(fault_server: Callable[..., FaultServer]) -> None:
    """Connection n gets answer n; a late final answer after a 103 and bytes
    after a 101 stay on their own connection."""
    server = fault_server(
        early_hints_then_late_final,
        respond(answer("500 Internal Server Error", b"Internal Server Error\n")),
        respond(b"HTTP/1.1 101 Switching Protocols\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        respond(answer("418 I'm a teapot", b"I'm a teapot\n")),
        close_silently,
        respond(b"HTTP/1.1 204 No Content\r\n\r\n"),
        respond(answer("200 OK", b"OK\n")),
    )
    got = [probe(server.url + "/status", BUDGET, TWO_XX).status_code for _ in range(7)]
    assert got == [103, 500, 101, 418, None, 204, 200]
    assert server.connections == 7, "every probe must open a fresh connection"
