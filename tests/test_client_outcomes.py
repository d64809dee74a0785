"""The outcome table: what each answer or exception becomes in a record.
requests-mock stands in for the network here only; timing and faults are
tested against real servers (test_client_faults.py)."""

from __future__ import annotations

import http.client
import itertools
import ssl
from typing import Any

import pytest
import requests
import requests_mock
import urllib3
from urllib3.exceptions import NameResolutionError, NewConnectionError, ReadTimeoutError

from client.probe import ERROR_TYPES, TWO_XX, classify, probe, toggle_flaky
from client.transport import Attempt, DNSTimeoutError

URL = "http://status.test/status"


def chain(*excs: BaseException) -> BaseException:
    """Link excs as each one raised while handling the next, the way the
    libraries wrap socket errors; returns the outermost."""
    for outer, inner in itertools.pairwise(excs):
        outer.__context__ = inner
    return excs[0]


def conn_error(*inner: Any) -> requests.exceptions.ConnectionError:
    return requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, URL, chain(*inner)))


@pytest.mark.parametrize(
    ("response", "status", "success", "error_type"),
    [
        ({"status_code": 200, "text": "OK\n"}, 200, True, None),
        ({"status_code": 204}, 204, True, None),
        ({"status_code": 299}, 299, True, None),
        ({"status_code": 503, "text": "Service Unavailable\n"}, 503, False, "http_status"),
        ({"status_code": 404}, 404, False, "http_status"),
        # Redirects are answers, not followed (elsewhere.test would raise NoMockAddress).
        ({"status_code": 301, "headers": {"Location": "http://elsewhere.test/"}}, 301, False, "http_status"),
        ({"status_code": 103}, 103, False, "informational"),
        ({"status_code": 101}, 101, False, "informational"),
        ({"exc": requests.exceptions.ConnectTimeout("timed out")}, None, False, "connect_timeout"),
        ({"exc": requests.exceptions.ReadTimeout("timed out")}, None, False, "read_timeout"),
        ({"exc": requests.exceptions.SSLError(ssl.SSLError("bad cert"))}, None, False, "tls"),
        ({"exc": requests.exceptions.ChunkedEncodingError("broken")}, None, False, "body"),
        ({"exc": requests.exceptions.ContentDecodingError("bad gzip")}, None, False, "body"),
        ({"exc": conn_error(NameResolutionError("status.test", None, OSError("no such host")))}, None, False, "dns"),
        ({"exc": conn_error(NewConnectionError(None, "x"), ConnectionRefusedError(111, "refused"))},
         None, False, "connect_refused"),
        ({"exc": conn_error(NewConnectionError(None, "x"), OSError(113, "No route to host"))},
         None, False, "connect_error"),
        (
            {"exc": conn_error(urllib3.exceptions.ConnectTimeoutError(None, "connect timed out"))},
            None, False, "connect_timeout",
        ),
        (
            {"exc": conn_error(urllib3.exceptions.ProtocolError("aborted", http.client.RemoteDisconnected("closed")))},
            None, False, "connection_closed",
        ),
        (
            {"exc": conn_error(urllib3.exceptions.ProtocolError("aborted", ConnectionResetError(104, "reset")))},
            None, False, "connection_reset",
        ),
        (
            {"exc": conn_error(urllib3.exceptions.ProtocolError("aborted", http.client.BadStatusLine("hello")))},
            None, False, "protocol",
        ),
        ({"exc": requests.exceptions.ConnectionError(ReadTimeoutError(None, URL, "read timed out"))},
         None, False, "read_timeout"),
        ({"exc": DNSTimeoutError("status.test did not resolve")}, None, False, "dns_timeout"),
        ({"exc": ValueError("a bug")}, None, False, "unknown"),
    ],
)  # fmt: skip
def test_probe_outcomes(response: dict[str, Any], status: int | None, success: bool, error_type: str | None) -> None:
    with requests_mock.Mocker() as m:
        m.get(URL, **response)
        r = probe(URL, 2.0, TWO_XX)
    assert (r.status_code, r.success, r.error_type) == (status, success, error_type)
    assert error_type is None or error_type in ERROR_TYPES
    assert (r.error is None) == (error_type is None)
    assert r.method == "GET"
    assert r.endpoint == URL
    assert len(r.trace_id) == 32


def test_success_codes_are_configurable() -> None:
    with requests_mock.Mocker() as m:
        m.get(URL, status_code=503)
        assert probe(URL, 2.0, frozenset({200, 503})).success
        assert not probe(URL, 2.0, frozenset({200})).success


def test_every_request_has_a_timeout_and_its_own_trace() -> None:
    with requests_mock.Mocker() as m:
        m.get(URL, status_code=200)
        m.post("http://status.test/flaky", status_code=202)
        a, b = probe(URL, 1.5, TWO_XX), probe(URL, 1.5, TWO_XX)
        toggle_flaky("http://status.test/flaky", 1.5)
        for request in m.request_history:
            assert request.timeout == (1.5, 1.5)
            assert request.headers["Connection"] == "close"
            assert request.headers["traceparent"].startswith("00-")
    assert a.trace_id != b.trace_id
    assert m.request_history[0].headers["traceparent"].split("-")[1] == a.trace_id


@pytest.mark.parametrize(
    ("response", "flaky", "success", "error_type"),
    [
        ({"status_code": 202, "headers": {"X-Flaky": "true"}, "json": {"flaky": True}}, True, True, None),
        ({"status_code": 202, "headers": {"X-Flaky": "false"}}, False, True, None),
        ({"status_code": 202, "json": {"flaky": True}}, True, True, None),
        # The exercise's original server answers 202 and says nothing more.
        ({"status_code": 202, "text": "Accepted\n"}, None, True, None),
        ({"status_code": 202, "json": {"flaky": "yes"}}, None, True, None),
        ({"status_code": 500, "headers": {"X-Flaky": "true"}}, None, False, "http_status"),
        ({"exc": requests.exceptions.ConnectTimeout("timed out")}, None, False, "connect_timeout"),
    ],
)
def test_toggle_outcomes(response: dict[str, Any], flaky: bool | None, success: bool, error_type: str | None) -> None:
    with requests_mock.Mocker() as m:
        m.post("http://status.test/flaky", **response)
        r = toggle_flaky("http://status.test/flaky", 2.0)
    assert (r.flaky, r.success, r.error_type) == (flaky, success, error_type)
    assert r.method == "POST"
    assert m.call_count == 1, "a toggle is never retried"


def test_classify_keeps_messages_short() -> None:
    error_type, message = classify(ValueError("x" * 1000))
    assert error_type == "unknown"
    assert len(message) <= 200


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_answer_complete_before_the_deadline_is_never_relabelled() -> None:
    """The timer firing after finish() changes nothing: the end time and
    the verdict are taken under one lock."""
    clock = FakeClock()
    with Attempt(1.0, clock) as attempt:
        attempt.enter("connect")
        clock.now += 0.2
        attempt.enter("wait")
        clock.now += 0.7
        attempt.finish()
        attempt._expire()  # the timer, late
    assert not attempt.expired
    assert [(p.name, round(p.start, 3), round(p.end, 3)) for p in attempt.phases()] == [
        ("dns", 0, 0), ("connect", 0, 0.2), ("wait", 0.2, 0.9),
    ]  # fmt: skip


def test_a_deadline_before_the_answer_ends_the_attempt_in_its_phase() -> None:
    clock = FakeClock()
    with Attempt(1.0, clock) as attempt:
        attempt.enter("connect")
        clock.now += 0.3
        attempt.enter("wait")
        clock.now += 0.9
        attempt._expire()  # the timer, 0.2 s late on a busy machine
        clock.now += 5
        attempt.enter("transfer")  # too late: ignored
        attempt.finish()
    assert attempt.expired
    assert attempt.phase == "wait"
    assert attempt.end - attempt.start == pytest.approx(1.2)
    assert [(p.name, round(p.ms)) for p in attempt.phases()] == [("dns", 0), ("connect", 300), ("wait", 900)]
