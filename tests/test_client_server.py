"""The client against the real Go server binary: what the client records is
what the server says it did, matched request by request by trace ID."""

from __future__ import annotations

from collections.abc import Callable

import requests

from client.probe import TWO_XX, probe, toggle_flaky
from tests.conftest import GoServer, wait_until


def test_flaky_off_every_probe_succeeds(go_server: Callable[..., GoServer]) -> None:
    server = go_server()
    results = [probe(server.url + "/status", 2.0, TWO_XX) for _ in range(20)]
    assert all(r.success and r.status_code == 200 and r.error_type is None for r in results), results
    wait_until(lambda: len(server.requests()) >= 20)
    assert {line["trace_id"] for line in server.requests()} == {r.trace_id for r in results}


def test_flaky_records_match_the_server(go_server: Callable[..., GoServer]) -> None:
    server = go_server("-flaky", "-max-delay", "200ms", "-seed", "7")
    results = [probe(server.url + "/status", 2.0, TWO_XX) for _ in range(40)]
    wait_until(lambda: len(server.requests()) >= 40)
    by_trace = {line["trace_id"]: line for line in server.requests()}

    codes = set()
    for r in results:
        line = by_trace[r.trace_id]  # every probe reached the server as itself
        # The probe reads past an interim 100, 102 or 103 to the final answer.
        sent = line["status"]
        assert r.status_code == sent, (r, line)
        assert r.interim_codes == ((line["interim_status"],) if "interim_status" in line else ()), (r, line)
        assert r.success == (200 <= sent < 300)
        # The client's time includes the server's.
        assert line["duration_ms"] <= r.duration_ms + 0.01, (r, line)
        codes.add(sent)
    assert len(codes) > 10, "flaky mode answered too few distinct codes"
    assert max(r.duration_ms for r in results) > 100, "flaky mode added no delay"


def test_toggles_flip_the_server(go_server: Callable[..., GoServer]) -> None:
    server = go_server()
    for want in (True, False, True):
        r = toggle_flaky(server.url + "/flaky", 2.0)
        assert (r.status_code, r.success, r.flaky) == (202, True, want)
        assert requests.get(server.url + "/flaky", timeout=2).json() == {"flaky": want}
