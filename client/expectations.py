"""A target's expectations: each a small pure function of the answer that
returns None when it holds, else (error_type, the observed value).

They are checked in the order of CHECKS (status, headers, body, json, tls)
and the first that fails is the probe's error: the status first, as
blackbox_exporter does, because a wrong status explains the rest; the
certificate last, because it says nothing about this answer.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from client.probe import ProbeResult, _judge, _short, exchange, hide_password, status_failure
from client.targets import Expect, Target
from client.transport import Clock

#: Observed values are cut to this many characters before _short's limit.
SHOWN_BODY = 120
#: Response headers whose values are never shown in a record.
SECRET_HEADERS = frozenset({"set-cookie", "authorization", "proxy-authenticate", "www-authenticate"})

Failure = tuple[str, str] | None


@dataclass(frozen=True)
class Answer:
    """A final answer as the checks see it: header names lower-cased, each
    with its values in the order they came (a header sent twice has two)."""

    status_code: int
    headers: Mapping[str, tuple[str, ...]]
    body: bytes
    tls_days_left: float | None


def check_status(expect: Expect, a: Answer) -> Failure:
    return status_failure(a.status_code, expect.status)


def check_headers(expect: Expect, a: Answer) -> Failure:
    """As blackbox_exporter's fail_if_header_not_matches (`matches`: one of
    the header's values must match) and fail_if_header_matches
    (`not_matches`: none may); a missing header fails unless allowed."""
    for rule in expect.headers:
        values = a.headers.get(rule.name.lower(), ())
        if not values:
            if rule.allow_missing:
                continue
            return "header_mismatch", f"no {rule.name} header"
        if rule.matches is not None and not any(rule.matches.search(v) for v in values):
            return "header_mismatch", f"{_shown_header(rule.name, values)} does not match {rule.matches.pattern!r}"
        found = next((v for v in values if rule.not_matches is not None and rule.not_matches.search(v)), None)
        if rule.not_matches is not None and found is not None:
            return "header_mismatch", f"{_shown_header(rule.name, (found,))} matches {rule.not_matches.pattern!r}"
    return None


def check_body(expect: Expect, a: Answer) -> Failure:
    text = a.body.decode("utf-8", errors="replace")
    for pattern in expect.body_matches:
        if not pattern.search(text):
            return "body_mismatch", f"no match for {pattern.pattern!r} in {_shown_body(text)}"
    for pattern in expect.body_not_matches:
        found = pattern.search(text)
        if found:
            return "body_mismatch", f"{pattern.pattern!r} matched {_shown_body(found[0])}"
    return None


def check_json(expect: Expect, a: Answer) -> Failure:
    if not expect.json:
        return None
    try:
        document = json.loads(a.body)
    except ValueError:
        return "json_mismatch", f"body is not JSON: {_shown_body(a.body.decode('utf-8', errors='replace'))}"
    for rule in expect.json:
        got = rule.compiled.search(document)
        if not same(got, rule.equals):
            return "json_mismatch", f"{rule.query} is {json.dumps(got)[:SHOWN_BODY]}, want {json.dumps(rule.equals)}"
    return None


def check_tls(expect: Expect, a: Answer) -> Failure:
    if expect.tls_min_days is None or a.tls_days_left is None or a.tls_days_left >= expect.tls_min_days:
        return None
    return "tls_expiring", f"certificate expires in {a.tls_days_left:g} days, under {expect.tls_min_days:g}"


#: The checks, in the order they are evaluated.
CHECKS: tuple[Callable[[Expect, Answer], Failure], ...] = (
    check_status,
    check_headers,
    check_body,
    check_json,
    check_tls,
)


def evaluate(expect: Expect, a: Answer) -> Failure:
    """The first expectation that fails, or None."""
    for check in CHECKS:
        failure = check(expect, a)
        if failure is not None:
            return failure
    return None


def same(got: Any, want: Any) -> bool:
    """JSON equality: true is not 1, 1 is 1.0."""
    if isinstance(got, bool) or isinstance(want, bool):
        return isinstance(got, bool) and isinstance(want, bool) and got == want
    if isinstance(got, list) and isinstance(want, list):
        return len(got) == len(want) and all(map(same, got, want))
    if isinstance(got, dict) and isinstance(want, dict):
        return got.keys() == want.keys() and all(same(got[k], want[k]) for k in got)
    numbers = (int, float)
    if isinstance(got, numbers) and isinstance(want, numbers):
        return got == want
    return type(got) is type(want) and bool(got == want)


def probe_target(target: Target, clock: Clock = time.perf_counter) -> ProbeResult:
    """Request target once and judge the answer by its expectations."""
    ex = exchange(target.method, target.url, target.timeout, clock, headers=target.headers, ca_bundle=target.ca_bundle)
    result = _judge(ex, target.expect.status)
    if ex.error_type is not None or ex.status_code is None:
        return result
    answer = Answer(ex.status_code, _by_name(ex.header_lines), ex.body, result.tls_days_left)
    failure = evaluate(target.expect, answer)
    if failure is None:
        return dataclasses.replace(result, success=True, error_type=None, error=None)
    error_type, observed = failure
    error = _short(hide_password(_hidden(observed, target.secrets), target.url))
    return dataclasses.replace(result, success=False, error_type=error_type, error=error)


def _shown_body(text: str) -> str:
    return json.dumps(text[:SHOWN_BODY] + ("..." if len(text) > SHOWN_BODY else ""))


def _hidden(observed: str, secrets: tuple[str, ...]) -> str:
    """observed with each secret replaced by ***, whole or cut at the end
    of an excerpt: an answer may echo the request's headers. (The checks
    see the answer as it came: a ${VAR} value need not be a secret.)"""
    for secret in secrets:
        observed = observed.replace(secret, "***")
        for cut in range(len(secret) - 1, 0, -1):
            observed = observed.replace(secret[:cut] + '..."', '***..."')
    return observed


def _by_name(lines: tuple[tuple[str, str], ...]) -> dict[str, tuple[str, ...]]:
    """Each header's values, in order, by its lower-cased name."""
    values: dict[str, tuple[str, ...]] = {}
    for name, value in lines:
        values[name.lower()] = (*values.get(name.lower(), ()), value)
    return values


def _shown_header(name: str, values: tuple[str, ...]) -> str:
    """name: its values, each JSON-quoted (a secret one as ***)."""
    shown = ["***" if name.lower() in SECRET_HEADERS else json.dumps(v[:SHOWN_BODY]) for v in values]
    return f"{name}: {', '.join(shown)}"
