"""blackbox_exporter is the oracle: the client's probe() and Prometheus'
own prober, pointed at the same misbehaving loopback server, must agree on
the final status code and on success. Where they must differ, DIFFERENCES
says why, and the test holds blackbox_exporter to what the table claims."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from client.config import parse_config
from client.expectations import probe_target
from client.probe import MAX_BODY_BYTES, TWO_XX, probe
from client.targets import load_targets
from tests.conftest import FaultServer, LoopbackCA, answer, free_port, read_request
from tests.stack import tool
from tests.test_client_faults import BUDGET, FAULTS, Fault

#: The same rules as the client's: a GET, 2xx is success, no redirects, the
#: same budget, the same body limit, IPv4 only (the fault servers are).
BASE = {
    "prober": "http",
    "timeout": f"{BUDGET:g}s",
    "http": {
        "method": "GET",
        "no_follow_redirects": True,
        "body_size_limit": f"{MAX_BODY_BYTES // 1024}KiB",
        "preferred_ip_protocol": "ip4",
        "ip_protocol_fallback": False,
    },
}


#: Faults where the two must not agree, and why: (blackbox's status code,
#: its success). None so far: the client's closed error vocabulary is finer
#: (read_timeout, body, informational...), but the verdicts are the same.
DIFFERENCES: dict[str, tuple[int, bool, str]] = {}


@pytest.fixture(scope="module")
def blackbox(tmp_path_factory: pytest.TempPathFactory, test_ca: LoopbackCA) -> Iterator[str]:
    """A running blackbox_exporter, with a module per expectation row;
    yields its /probe URL."""
    binary = tool("BLACKBOX_EXPORTER", "prometheus-blackbox-exporter")
    config = Path(tmp_path_factory.mktemp("blackbox")) / "blackbox.yml"
    modules = {"http_2xx": BASE} | {module_name(name): module(row, test_ca) for name, row in EXPECTATIONS.items()}
    config.write_text(yaml.safe_dump({"modules": modules}))
    port = free_port()
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _ready(url):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "blackbox_exporter was not ready within 30 s"
            time.sleep(0.05)
        yield url + "/probe"
    finally:
        proc.terminate()
        proc.wait(10)


def _ready(url: str) -> bool:
    try:
        return requests.get(url + "/-/ready", timeout=1).ok
    except requests.ConnectionError:
        return False


def blackbox_metrics(probe_url: str, target: str, module_: str = "http_2xx") -> dict[str, float]:
    """The probe's metrics without labels, by name."""
    text = requests.get(probe_url, params={"module": module_, "target": target}, timeout=BUDGET + 10).text
    values = {name: float(value) for name, value in re.findall(r"^(probe_\w+) (\S+)$", text, re.M)}
    assert {"probe_success", "probe_http_status_code"} <= set(values), text
    return values


def blackbox_verdict(probe_url: str, target: str) -> tuple[int, bool]:
    """(probe_http_status_code, probe_success) of one probe."""
    values = blackbox_metrics(probe_url, target)
    return int(values["probe_http_status_code"]), values["probe_success"] == 1


@pytest.mark.parametrize("name", [name for name, fault in FAULTS.items() if "http" in fault.schemes])
def test_client_agrees_with_blackbox_exporter(blackbox: str, fault_url: Callable[[Fault], str], name: str) -> None:
    url = fault_url(FAULTS[name]) + "/status"
    with ThreadPoolExecutor(1) as pool:  # both at once: a hang costs the budget once
        theirs = pool.submit(blackbox_verdict, blackbox, url)
        ours = probe(url, BUDGET, TWO_XX)
        code, success = theirs.result()
    if name in DIFFERENCES:
        want_code, want_success, _why = DIFFERENCES[name]
        assert (code, success) == (want_code, want_success), "blackbox_exporter no longer differs: update the table"
        return
    assert (ours.status_code or 0, ours.success) == (code, success), f"blackbox_exporter: {code}, {success}; {ours}"


@dataclass(frozen=True)
class Row:
    """One expectation both judge: the answer the server sends, the
    client's expect (as in a targets file) and blackbox_exporter's module
    settings that mean the same, and whether both must call it a success.
    With tls_days the server speaks https with a certificate expiring in
    that many days; blackbox's verdict is then probe_ssl_earliest_cert_expiry
    against min_days_left, which it reports but does not judge. expect.json
    has no row: blackbox_exporter 0.23 (Debian's) has no JSON query (its
    fail_if_body_json_matches_cel came in 0.26); the outcome table in
    test_client_expectations.py covers it."""

    status: str
    expect: dict[str, Any]
    module: dict[str, Any]
    success: bool
    headers: str = ""
    body: bytes = b"OK\n"
    tls_days: int | None = None


JSON_CT = "Content-Type: application/json\r\n"
MUST_MATCH = {"fail_if_body_not_matches_regexp": ['"UP"']}
MUST_NOT_MATCH = {"fail_if_body_matches_regexp": ["(?i)maintenance"]}
CT_JSON = {"fail_if_header_not_matches": [{"header": "Content-Type", "regexp": "^application/json"}]}
NO_APACHE = {"fail_if_header_matches": [{"header": "Server", "regexp": "Apache", "allow_missing": True}]}
TLS_14 = {"tls": {"min_days_left": 14}}
TWO_ROLES = "X-Role: replica\r\nX-Role: primary\r\n"
ROLE_PRIMARY = {"fail_if_header_not_matches": [{"header": "X-Role", "regexp": "^primary$"}]}
NOT_PRIMARY = {"fail_if_header_matches": [{"header": "X-Role", "regexp": "^primary$"}]}

EXPECTATIONS = {
    "status: 204 wanted, 200 sent": Row("200 OK", {"status": 204}, {"valid_status_codes": [204]}, False),
    "status: 204 wanted and sent": Row("204 No Content", {"status": "200,204"}, {"valid_status_codes": [200, 204]},
                                       True, body=b""),
    "status: 503 among the codes": Row("503 Service Unavailable", {"status": "200-299,503"},
                                       {"valid_status_codes": [200, 201, 503]}, True),
    "body must match, matches": Row("200 OK", {"body": {"matches": ['"UP"']}}, MUST_MATCH, True,
                                    body=b'{"status": "UP"}'),
    "body must match, does not": Row("200 OK", {"body": {"matches": ['"UP"']}}, MUST_MATCH, False,
                                     body=b'{"status": "DOWN"}'),
    "body must not match, matches": Row("200 OK", {"body": {"not_matches": ["(?i)maintenance"]}}, MUST_NOT_MATCH,
                                        False, body=b"Down for Maintenance"),
    "body must not match, does not": Row("200 OK", {"body": {"not_matches": ["(?i)maintenance"]}}, MUST_NOT_MATCH,
                                         True),
    "header must match, matches": Row("200 OK", {"headers": [{"name": "Content-Type", "matches": "^application/json"}]},
                                      CT_JSON, True, headers=JSON_CT),
    "header must match, does not": Row("200 OK",
                                       {"headers": [{"name": "content-type", "matches": "^application/json"}]},
                                       CT_JSON, False, headers="Content-Type: text/html\r\n"),
    "header must match, missing": Row("200 OK", {"headers": [{"name": "Content-Type", "matches": "^application/json"}]},
                                      CT_JSON, False),
    "header must not match, matches": Row("200 OK", {"headers": [{"name": "Server", "not_matches": "Apache",
                                                                  "allow_missing": True}]},
                                          NO_APACHE, False, headers="Server: Apache/2.2\r\n"),
    "header must not match, missing": Row("200 OK", {"headers": [{"name": "Server", "not_matches": "Apache",
                                                                  "allow_missing": True}]}, NO_APACHE, True),
    # Each value of a repeated header on its own, as blackbox_exporter does:
    # must match = one value matches; must not match = no value matches.
    "header must match, one of two values does": Row("200 OK", {"headers": [{"name": "X-Role",
                                                                             "matches": "^primary$"}]},
                                                     ROLE_PRIMARY, True, headers=TWO_ROLES),
    "header must not match, one of two values does": Row("200 OK", {"headers": [{"name": "X-Role",
                                                                                 "not_matches": "^primary$"}]},
                                                         NOT_PRIMARY, False, headers=TWO_ROLES),
    "https, expires in 300 days, 14 wanted": Row("200 OK", TLS_14, {}, True, tls_days=300),
    "https, expires in 3 days, 14 wanted": Row("200 OK", TLS_14, {}, False, tls_days=3),
    "https, expires in 3 days, 2 wanted": Row("200 OK", {"tls": {"min_days_left": 2}}, {}, True, tls_days=3),
    "https, expires in 3 days, a wrong status first": Row("500 Internal Server Error", TLS_14, {}, False, tls_days=3),
}  # fmt: skip


def module_name(row_name: str) -> str:
    return "expect_" + re.sub(r"\W+", "_", row_name).strip("_")


def module(row: Row, ca: LoopbackCA) -> dict[str, Any]:
    http = BASE["http"] | row.module  # type: ignore[operator]
    if row.tls_days is not None:
        http["tls_config"] = {"ca_file": ca.bundle}
    return BASE | {"http": http}


def serve(row: Row, ca: LoopbackCA) -> FaultServer:
    data = answer(row.status, row.body, row.headers)

    def handler(conn: socket.socket) -> None:
        if row.tls_days is not None:
            try:
                conn = ca.expiring(row.tls_days).wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                return
        read_request(conn)
        conn.sendall(data)

    return FaultServer(handler)


@pytest.mark.parametrize("name", EXPECTATIONS)
def test_expectations_agree_with_blackbox_exporter(
    blackbox: str, test_ca: LoopbackCA, tmp_path: Path, name: str
) -> None:
    row = EXPECTATIONS[name]
    server = serve(row, test_ca)
    url = server.url.replace("http://", "https://" if row.tls_days is not None else "http://") + "/status"
    entry = {"name": "row", "url": url, "timeout": BUDGET, "expect": row.expect}
    if row.tls_days is not None:
        entry["ca_file"] = test_ca.bundle
    path = tmp_path / "targets.yml"
    path.write_text(yaml.safe_dump({"targets": [entry]}))
    (target,) = load_targets(str(path), parse_config([], {}), {})
    try:
        theirs = blackbox_metrics(blackbox, url, module_name(name))
        ours = probe_target(target)
    finally:
        server.close()
    their_success = theirs["probe_success"] == 1
    if row.tls_days is not None:
        days = (theirs["probe_ssl_earliest_cert_expiry"] - time.time()) / 86400
        assert ours.tls_days_left == pytest.approx(days, abs=0.02), (ours, theirs)
        their_success = their_success and days >= row.expect["tls"]["min_days_left"]
    assert (ours.success, their_success) == (row.success, row.success), f"ours: {ours}; blackbox_exporter: {theirs}"
