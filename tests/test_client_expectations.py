"""The expectations' outcome table: one row per kind, what each answer
becomes in the probe's result. requests-mock stands in for the network
(the TLS rows use the pure check: requests-mock has no certificate); real
servers, https included, are in test_client_blackbox.py."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import jmespath
import pytest
import requests_mock

from client.expectations import CHECKS, Answer, check_tls, evaluate, probe_target, same
from client.probe import ERROR_TYPES
from client.targets import Expect, HeaderRule, JsonRule, Target

URL = "http://svc.test/health"
OK = {"status_code": 200, "text": '{"status": "UP", "checks": [1, 2]}', "headers": {"Content-Type": "application/json"}}


def rule(query: str, equals: Any) -> JsonRule:
    return JsonRule(query, equals, jmespath.compile(query))


def target(method: str = "GET", **expect: Any) -> Target:
    return Target("svc", URL, method, 3, 1, Expect(**{"status": frozenset(range(200, 300)), **expect}))


ROWS: list[tuple[str, dict[str, Any], dict[str, Any], str | None, str | None]] = [
    # (row, expectations, response, error_type, a piece of error)
    ("no expectations", {}, OK, None, None),
    ("status", {"status": frozenset({204})}, OK, "http_status", "200 OK"),
    ("status 1xx", {}, {"status_code": 103}, "informational", "103 Early Hints"),
    ("header present", {"headers": (HeaderRule("Content-Type"),)}, OK, None, None),
    ("header missing", {"headers": (HeaderRule("X-Version"),)}, OK, "header_mismatch", "no X-Version header"),
    ("header missing allowed", {"headers": (HeaderRule("X-Version", allow_missing=True),)}, OK, None, None),
    ("header matches", {"headers": (HeaderRule("content-type", re.compile("^application/json")),)}, OK, None, None),
    (
        "header does not match",
        {"headers": (HeaderRule("Content-Type", re.compile("^text/")),)},
        OK,
        "header_mismatch",
        "Content-Type: \"application/json\" does not match '^text/'",
    ),
    (
        "header must not match",
        {"headers": (HeaderRule("Content-Type", not_matches=re.compile("json")),)},
        OK,
        "header_mismatch",
        "matches 'json'",
    ),
    (
        "a secret header's value is not shown",
        {"headers": (HeaderRule("Set-Cookie", re.compile("^x=")),)},
        {"status_code": 200, "headers": {"Set-Cookie": "session=s3cret"}},
        "header_mismatch",
        "Set-Cookie: ***",
    ),
    ("body matches", {"body_matches": (re.compile('"UP"'),)}, OK, None, None),
    ("body does not match", {"body_matches": (re.compile("DOWN"),)}, OK, "body_mismatch", "no match for 'DOWN'"),
    ("body must not match", {"body_not_matches": (re.compile("U."),)}, OK, "body_mismatch", "'U.' matched \"UP\""),
    ("body must not match, absent", {"body_not_matches": (re.compile("DOWN"),)}, OK, None, None),
    ("json equals", {"json": (rule("status", "UP"), rule("length(checks)", 2))}, OK, None, None),
    ("json differs", {"json": (rule("status", "DOWN"),)}, OK, "json_mismatch", 'status is "UP", want "DOWN"'),
    ("json missing", {"json": (rule("version", "1"),)}, OK, "json_mismatch", 'version is null, want "1"'),
    ("json not json", {"json": (rule("a", 1),)}, {"status_code": 200, "text": "<html>"}, "json_mismatch", "not JSON"),
    ("slow is not a failure", {"max_duration": 0.000001}, OK, None, None),
]


@pytest.mark.parametrize(("row", "expect", "response", "error_type", "error"), ROWS, ids=[r[0] for r in ROWS])
def test_outcome(
    row: str, expect: dict[str, Any], response: dict[str, Any], error_type: str | None, error: str | None
) -> None:
    with requests_mock.Mocker() as m:
        m.get(URL, **response)
        result = probe_target(target(**expect))
    assert (result.success, result.error_type) == (error_type is None, error_type), result
    if error is not None:
        assert error in (result.error or ""), result.error
    assert result.tls_days_left is None  # http


def test_head_has_no_body_to_match() -> None:
    with requests_mock.Mocker() as m:
        m.head(URL, status_code=200, headers={"Content-Type": "text/plain"})
        result = probe_target(target("HEAD", body_matches=(re.compile("."),)))
    assert (result.method, result.error_type) == ("HEAD", "body_mismatch")


def test_request_headers_are_sent() -> None:
    with requests_mock.Mocker() as m:
        m.get(URL, **OK)
        t = Target("svc", URL, "GET", 3, 1, Expect(frozenset({200})), headers=(("Authorization", "Bearer s3cret"),))
        result = probe_target(t)
        assert m.last_request.headers["Authorization"] == "Bearer s3cret"
    assert "s3cret" not in repr(result)


@pytest.mark.parametrize(
    ("days_left", "minimum", "failure"),
    [
        (300.0, 14.0, None),
        (14.0, 14.0, None),
        (2.99, 14.0, ("tls_expiring", "certificate expires in 2.99 days, under 14")),
        (-1.5, 0.0, ("tls_expiring", "certificate expires in -1.5 days, under 0")),
        (None, 14.0, None),  # http: nothing to judge
        (2.0, None, None),  # no threshold: recorded, not judged
    ],
)
def test_tls_expiry(days_left: float | None, minimum: float | None, failure: tuple[str, str] | None) -> None:
    expect = Expect(frozenset({200}), tls_min_days=minimum)
    assert check_tls(expect, Answer(200, {}, b"", days_left)) == failure


def test_the_first_failure_in_the_order_is_reported() -> None:
    expect = Expect(
        frozenset({204}),
        headers=(HeaderRule("X-Missing"),),
        body_matches=(re.compile("nope"),),
        json=(rule("a", 1),),
        tls_min_days=30,
    )
    answer = Answer(200, {}, b"{}", 1.0)
    kinds = []
    while (failure := evaluate(expect, answer)) is not None:
        kinds.append(failure[0])
        expect = _without(expect, failure[0])
    assert kinds == ["http_status", "header_mismatch", "body_mismatch", "json_mismatch", "tls_expiring"]
    assert [c.__name__ for c in CHECKS] == ["check_status", "check_headers", "check_body", "check_json", "check_tls"]


def _without(expect: Expect, kind: str) -> Expect:
    fields: dict[str, dict[str, Any]] = {
        "http_status": {"status": frozenset({200})},
        "header_mismatch": {"headers": ()},
        "body_mismatch": {"body_matches": ()},
        "json_mismatch": {"json": ()},
        "tls_expiring": {"tls_min_days": None},
    }
    return dataclasses.replace(expect, **fields[kind])


def test_every_new_error_type_is_in_the_taxonomy() -> None:
    kinds = {"http_status", "header_mismatch", "body_mismatch", "json_mismatch", "tls_expiring"}
    assert kinds <= set(ERROR_TYPES)


@pytest.mark.parametrize(
    ("got", "want", "equal"),
    [(1, 1.0, True), (True, 1, False), (1, True, False), ("1", 1, False), ([1, {"a": True}], [1, {"a": True}], True),
     ([True], [1], False), (None, None, True), ({"a": 1}, {"a": 1, "b": 2}, False)],
)  # fmt: skip
def test_json_equality(got: Any, want: Any, equal: bool) -> None:
    assert same(got, want) is equal


def test_a_secret_echoed_in_the_body_is_hidden_in_the_error() -> None:
    """An answer that echoes the request's headers (a debugging endpoint)
    must not carry a secret from the environment into the record."""
    with requests_mock.Mocker() as m:
        m.get(URL, status_code=200, text='{"headers": {"Authorization": "Bearer s3cret"}}' + " " * 200)
        t = dataclasses.replace(
            target(body_matches=(re.compile('"UP"'),)),
            headers=(("Authorization", "Bearer s3cret"),),
            secrets=("s3cret",),
        )
        result = probe_target(t)
    assert result.error_type == "body_mismatch", result
    assert "s3cret" not in (result.error or ""), result.error
    assert "Bearer ***" in (result.error or ""), result.error


def test_hiding_a_header_value_changes_no_verdict() -> None:
    """A ${VAR} value need not be a secret (X-Shard: 1): hidden in what the
    record shows, it must not be hidden from the checks."""
    with requests_mock.Mocker() as m:
        m.get(URL, status_code=200, text='{"count": 1, "env": "prod"}')
        t = dataclasses.replace(
            target(json=(rule("count", 1),), body_matches=(re.compile("production|prod"),)),
            headers=(("X-Shard", "1"),),
            secrets=("1",),
        )
        assert probe_target(t).success
        t = dataclasses.replace(t, expect=dataclasses.replace(t.expect, json=(rule("count", 2),)))
        result = probe_target(t)
    assert (result.error_type, result.error) == ("json_mismatch", "count is ***, want 2"), result


def test_a_secret_cut_at_the_end_of_an_excerpt_is_hidden_too() -> None:
    with requests_mock.Mocker() as m:
        m.get(URL, status_code=200, text="x" * 117 + "s3cret and more")
        t = dataclasses.replace(target(body_matches=(re.compile("UP"),)), secrets=("s3cret",))
        result = probe_target(t)
    assert result.error_type == "body_mismatch", result
    assert "s3c" not in (result.error or ""), result.error
    assert '***..."' in (result.error or ""), result.error
