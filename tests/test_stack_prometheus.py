"""Prometheus: the repository's config and rules checked by promtool 3 (the
image's major version), then a real Prometheus 3 scraping the real server
while the real client probes it. Every PromQL expression of the dashboard
and the alert rules must return data."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import requests

from tests.conftest import GoServer
from tests.stack import ROOT, Prometheus, dashboard_queries, expand, load_yaml, prometheus_major, rule_exprs, tool

RULES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "prometheus/rules").glob("*.yml"))


@pytest.fixture(scope="module")
def promtool() -> str:
    path = tool("PROMTOOL", "promtool")
    assert prometheus_major(path) == 3, "promtool must match the image's major version, 3"
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True)


def test_config_is_valid(promtool: str) -> None:
    result = run(promtool, "check", "config", "prometheus/prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(RULES)} rule files found" in result.stdout


def test_rules_are_valid(promtool: str) -> None:
    result = run(promtool, "check", "rules", *RULES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass(promtool: str) -> None:
    tests = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "prometheus/tests").glob("*.yml"))
    assert tests
    result = run(promtool, "test", "rules", *tests)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {t["alertname"] for f in tests for case in load_yaml(f)["tests"] for t in case.get("alert_rule_test", [])}
    alerts = {r["alert"] for f in RULES for g in load_yaml(f)["groups"] for r in g["rules"] if "alert" in r}
    assert tested == alerts, "every alert has a unit test"
    evaluation_interval = load_yaml("prometheus/prometheus.yml")["global"]["evaluation_interval"]
    # The SLO tests run hours and days of input: a 5 s step would take minutes.
    for f in (f for f in tests if not Path(f).name.startswith("slo-")):
        assert load_yaml(f)["evaluation_interval"] == evaluation_interval, f"{f}: not evaluated as the stack does"


@pytest.mark.parametrize("expr", dashboard_queries("prometheus") + [e for f in RULES for e in rule_exprs(f)])
def test_promql_parses(expr: str) -> None:
    promql_parser.parse(expand(expr))


def without_threshold(expr: str) -> str:
    """An alert's expression without its final comparison with a number:
    what must return data whether the alert fires or not."""
    ast = promql_parser.parse(expr)
    comparison = isinstance(ast, promql_parser.BinaryExpr) and str(ast.op) in ("==", "!=", ">", "<", ">=", "<=")
    if comparison and isinstance(ast.rhs, promql_parser.NumberLiteral):
        return str(ast.lhs.prettify())
    return expr


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, server_binary: Path) -> Iterator[dict[str, Any]]:
    """A real Prometheus 3 with this repository's scrape and rule files,
    scraping the real server while the real client probes it."""
    server = GoServer(server_binary, "-max-delay", "50ms", "-seed", "11")
    requests.post(server.url + "/flaky", timeout=2).raise_for_status()
    client = subprocess.Popen(
        [str(ROOT / ".venv/bin/python"), "-m", "client", "--target", server.url, "--interval", "0.1",
         "--timeout", "0.08", "--flaky-interval", "0", "--summary-interval", "5"],
        cwd=ROOT, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    prometheus = Prometheus(
        tmp_path_factory.mktemp("prometheus"), {"server": server.metrics_url.removeprefix("http://")}
    )
    try:
        prometheus.wait_for_scrapes("server", 3)  # enough for rate() over [1m]
        yield {"api": prometheus.api, "query": prometheus.query}
    finally:
        prometheus.stop()
        client.terminate()
        client.wait(10)
        server.stop()


# The SLO rules and panels read days of data and what Loki's ruler records:
# tests/test_stack_alertmanager.py and tests/test_stack_slo.py check them.
SYMPTOM_RULES = [f for f in RULES if not Path(f).name.startswith("slo-")]
SYMPTOM_PANELS = [q for q in dashboard_queries("prometheus") if "slo:" not in q]


@pytest.mark.parametrize("expr", SYMPTOM_PANELS + [e for f in SYMPTOM_RULES for e in rule_exprs(f)])
def test_every_expression_returns_data(live: dict[str, Any], expr: str) -> None:
    query: Callable[[str], list[dict[str, Any]]] = live["query"]
    assert query(without_threshold(expand(expr))), f"no data for {expr}"


def test_scrapes_succeed_and_exemplars_arrive(live: dict[str, Any]) -> None:
    up = live["query"]('up{job="server"}')
    assert up[0]["value"][1] == "1"
    resp = requests.get(
        live["api"] + "/query_exemplars",
        params={"query": "http_server_request_duration_seconds_bucket", "start": time.time() - 300, "end": time.time()},
        timeout=5,
    )
    exemplars = [e for series in resp.json()["data"] for e in series["exemplars"]]
    assert exemplars, "exemplars need OpenMetrics scrapes and --enable-feature=exemplar-storage"
    assert all(len(e["labels"]["trace_id"]) == 32 for e in exemplars)


def test_rules_load_and_flaky_alert_becomes_active(live: dict[str, Any]) -> None:
    """Flaky mode is on and stays on: the alert turns pending at the next
    evaluation (firing takes its for: of a minute, promtool tests that)."""
    groups = requests.get(live["api"] + "/rules", timeout=5).json()["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == sum(len(rule_exprs(f)) for f in RULES)
    # "unknown" until first evaluated: the SLOs' long windows wait up to a minute.
    assert all(r["health"] in ("ok", "unknown") for r in rules), rules
    deadline = time.monotonic() + 30
    while True:
        alerts = requests.get(live["api"] + "/alerts", timeout=5).json()["data"]["alerts"]
        if any(
            a["labels"]["alertname"] == "StatusServerFlakyMode" and a["state"] in ("pending", "firing") for a in alerts
        ):
            break
        assert time.monotonic() < deadline, alerts
        time.sleep(0.5)
