"""The SLO rules, read as a whole: each SLO file has a rule for every window
of the SRE Workbook's table and one objective; the Prometheus rules read
exactly the series Loki's recording rules write, with the labels these
have. (promtool's unit tests check what the alerts do: test_stack_prometheus.py
runs them.)"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import promql_parser
import pytest

from tests.stack import ROOT, compose, dashboard_queries, expand, load_yaml

SLO_FILES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "prometheus/rules").glob("slo-*.yml"))
LOKI_RULES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "loki/rules").rglob("*.yml"))
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
# The Workbook's window pairs: 1h and 5m, 6h and 30m page; 1d and 2h, 3d and 6h file a ticket.
ALERT_WINDOWS = {"page": ("1h", "5m", "6h", "30m"), "ticket": ("1d", "2h", "3d", "6h")}
DURATIONS = {w: timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[w[-1]]: int(w[:-1])}) for w in WINDOWS}


def rules(path: str) -> list[dict[str, Any]]:
    return [rule for group in load_yaml(path)["groups"] for rule in group["rules"]]


def nodes(expr: str) -> list[Any]:
    """Every node of a PromQL expression's syntax tree."""
    found: list[Any] = []

    def walk(node: Any) -> None:
        found.append(node)
        for attr in ("expr", "lhs", "rhs", "vector_selector", "args"):
            child = getattr(node, attr, None)
            for c in child if isinstance(child, list) else [child]:
                if c is not None and not isinstance(c, (str, int, float)):
                    walk(c)

    walk(promql_parser.parse(expr))
    return found


def selectors(expr: str) -> list[promql_parser.VectorSelector]:
    return [n for n in nodes(expr) if isinstance(n, promql_parser.VectorSelector)]


def test_there_are_two_slos() -> None:
    assert [Path(f).stem for f in SLO_FILES] == ["slo-probe-availability", "slo-request-availability"]


@pytest.mark.parametrize("path", SLO_FILES)
def test_the_objective_and_the_window_are_written_once(path: str) -> None:
    slo = Path(path).stem.removeprefix("slo-")
    recorded = [r for r in rules(path) if "record" in r]
    assert all(r.get("labels", {}).get("slo", slo) == slo for r in recorded)
    assert [r["record"] for r in recorded if re.search(r"\b0\.\d+", r["expr"])] == ["slo:objective:ratio"]
    longest = {r["record"]: max(ranges(r["expr"]), default=timedelta(0)) for r in recorded}
    assert [name for name, window in longest.items() if window > DURATIONS["3d"]] == ["slo:period_burn_rate:ratio"]


def ranges(expr: str) -> set[timedelta]:
    return {n.range for n in nodes(expr) if isinstance(n, promql_parser.MatrixSelector)}


@pytest.mark.parametrize("path", SLO_FILES)
def test_every_window_has_its_error_ratio_and_all_read_the_same_sli(path: str) -> None:
    ratios = {r["record"].removeprefix("slo:sli_error:ratio_rate"): r["expr"] for r in rules(path)
              if r.get("record", "").startswith("slo:sli_error:ratio_rate")}  # fmt: skip
    assert tuple(ratios) == WINDOWS
    shapes = {re.sub(r"\[\w+\]", "[W]", expr).strip() for expr in ratios.values()}
    assert len(shapes) == 1, f"the windows' expressions differ beyond their window: {shapes}"
    for window, expr in ratios.items():
        assert ranges(expr) == {DURATIONS[window]}, window


@pytest.mark.parametrize("path", SLO_FILES)
def test_alerts_page_and_ticket_with_their_slo(path: str) -> None:
    slo = Path(path).stem.removeprefix("slo-")
    alerts = [r for r in rules(path) if "alert" in r]
    assert sorted(a["labels"]["severity"] for a in alerts) == ["page", "ticket"]
    for alert in alerts:
        assert {"summary", "description", "dashboard"} <= set(alert["annotations"])
        windows = ALERT_WINDOWS[alert["labels"]["severity"]]
        read = selectors(alert["expr"])
        assert {s.name for s in read} == {"slo:error_budget:ratio", *(f"slo:sli_error:ratio_rate{w}" for w in windows)}
        assert all(f'slo="{slo}"' in str(s) for s in read), "each alert reads its own SLO's series"


def loki_recorded() -> dict[str, dict[str, str]]:
    """Loki's recording rules: the name each writes and its labels. Each sums
    over everything (no by/without), so the rule's labels are all it has."""
    recorded = {}
    for f in LOKI_RULES:
        for rule in rules(f):
            if "record" in rule:
                assert not re.search(r"\b(by|without)\s*\(", rule["expr"]), rule["expr"]
                recorded[rule["record"]] = rule.get("labels", {})
    return recorded


def test_prometheus_reads_exactly_what_loki_records() -> None:
    recorded = loki_recorded()
    assert recorded, "the probe SLI is recorded by Loki's ruler"
    read = {
        s.name: s
        for f in SLO_FILES
        for r in rules(f)
        for s in selectors(r["expr"])
        if s.name and not s.name.startswith("slo:") and ":" in s.name
    }
    assert set(read) == set(recorded)
    for name, selector in read.items():
        matchers = {m.name: m.value for m in selector.matchers.matchers if m.name != "__name__"}
        assert matchers.items() <= recorded[name].items(), f"{selector} matches labels Loki does not write"


def test_loki_remote_writes_to_prometheus() -> None:
    ruler = load_yaml("loki/loki.yml")["ruler"]
    assert ruler["remote_write"]["enabled"] is True
    (client,) = ruler["remote_write"]["clients"].values()
    assert client["url"] == "http://prometheus:9090/api/v1/write"
    assert ruler["wal"]["dir"].startswith("/loki/"), "the ruler's WAL needs the writable volume"
    assert ruler["alertmanager_url"] == "http://alertmanager:9093"
    assert "--web.enable-remote-write-receiver" in compose()["services"]["prometheus"]["command"]


def test_the_dashboard_reads_recorded_slo_series() -> None:
    """The error-budget row reads only series an SLO file records, for an
    SLO that exists (its live data: tests/test_stack_alertmanager.py)."""
    recorded = {(r["record"], Path(f).stem.removeprefix("slo-")) for f in SLO_FILES for r in rules(f) if "record" in r}
    read = [s for q in dashboard_queries("prometheus") for s in selectors(expand(q)) if s.name.startswith("slo:")]
    assert {s.name for s in read} >= {"slo:objective:ratio", "slo:period_error_budget_remaining:ratio"}
    for s in read:
        (slo,) = [m.value for m in s.matchers.matchers if m.name == "slo"]
        assert (s.name, slo) in recorded, str(s)
    slos = {m.value for s in read for m in s.matchers.matchers if m.name == "slo"}
    assert slos == {"probe-availability", "request-availability"}


def test_prometheus_keeps_the_slo_window() -> None:
    """The budget over 30 days needs 30 days of samples."""
    retention = load_yaml("prometheus/prometheus.yml")["storage"]["tsdb"]["retention"]["time"]
    assert re.fullmatch(r"\d+d", retention), retention
    for f in SLO_FILES:
        (period,) = [r for r in rules(f) if r.get("record") == "slo:period_burn_rate:ratio"]
        assert timedelta(days=int(retention[:-1])) > max(ranges(period["expr"])), f
