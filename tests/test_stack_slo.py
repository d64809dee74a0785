"""The SLO rules, read as a whole. Each SLO is written once, as a sloth
spec (prometheus/slos); the rules sloth generates from it
(prometheus/rules/slo-*.yml, kept equal to sloth's output by
test_stack_slo_generated.py) have a rule for every window of the SRE
Workbook's table, keep each target apart, name the target in every alert,
and read exactly the series Loki's recording rules write, with the labels
these have. (promtool's unit tests check what the alerts do:
test_stack_prometheus.py runs them.)"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import promql_parser
import pytest

from tests.stack import ROOT, compose, dashboard_queries, expand, load_yaml

SLO_FILES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "prometheus/rules").glob("slo-*.yml"))
SPECS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "prometheus/slos").glob("*.yml"))
LOKI_RULES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "loki/rules").rglob("*.yml"))
# The alerts' windows; the SLO window (30d) is sloth's, averaged from the 5m ratios.
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
PERIOD = "30d"
# The Workbook's window pairs: 1h and 5m, 6h and 30m page; 1d and 2h, 3d and 6h file a ticket.
ALERT_WINDOWS = {"page": ("1h", "5m", "6h", "30m"), "ticket": ("1d", "2h", "3d", "6h")}
# How long an alert keeps firing once its burn is under the threshold
# again (docs/slo.md, "Pages that do not flap"); none waits before firing.
KEEP_FIRING_FOR = {"page": "5m", "ticket": "30m"}
UNITS = {"m": "minutes", "h": "hours", "d": "days"}
DURATIONS = {w: timedelta(**{UNITS[w[-1]]: int(w[:-1])}) for w in (*WINDOWS, PERIOD)}


def rules(path: str) -> list[dict[str, Any]]:
    return [rule for group in load_yaml(path)["groups"] for rule in group["rules"]]


def by_slo(path: str) -> dict[str, list[dict[str, Any]]]:
    """A generated file's rules by SLO (sloth_id): an override for a target
    is an SLO of its own."""
    found: dict[str, list[dict[str, Any]]] = {}
    for rule in rules(path):
        sloth_id = rule["labels"]["sloth_id"] if "record" in rule else matcher(rule["expr"], "sloth_id")
        found.setdefault(sloth_id, []).append(rule)
    return found


def matcher(expr: str, label: str) -> str:
    """The one value an expression's selectors match label with."""
    (value,) = {m.value for s in selectors(expr) for m in s.matchers.matchers if m.name == label}
    return str(value)


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


def aggregations(expr: str) -> list[tuple[str, tuple[str, ...]]]:
    """Each aggregation of an expression: its modifier (by, without or none)
    and labels."""
    found = []
    for n in nodes(expr):
        if isinstance(n, promql_parser.AggregateExpr):
            modifier = n.modifier
            kind = "none" if modifier is None else str(modifier.type).rsplit(".", 1)[-1].lower()
            found.append((kind, tuple(modifier.labels) if modifier else ()))
    return found


def ranges(expr: str) -> set[timedelta]:
    return {n.range for n in nodes(expr) if isinstance(n, promql_parser.MatrixSelector)}


def test_there_are_two_slos_each_from_its_spec() -> None:
    assert [Path(f).stem for f in SLO_FILES] == ["slo-probe-availability", "slo-request-availability"]
    assert [Path(f).name for f in SPECS] == [Path(f).name for f in SLO_FILES]


@pytest.mark.parametrize("path", SPECS)
def test_each_spec_is_one_slo_whose_alerts_name_the_target(path: str) -> None:
    spec = load_yaml(path)
    slo = Path(path).stem.removeprefix("slo-")
    assert spec["labels"]["slo"] == slo, "the slo label the dashboard and Alertmanager read"
    assert [s["name"] for s in spec["slos"]][:1] == [slo], "the SLO for all targets comes first"
    for entry in spec["slos"]:
        alerting = entry["alerting"]
        assert alerting["page_alert"]["labels"] == {"severity": "page"}
        assert alerting["ticket_alert"]["labels"] == {"severity": "ticket"}
        for texts in (alerting["annotations"], alerting["page_alert"]["annotations"],
                      alerting["ticket_alert"]["annotations"]):  # fmt: skip
            for key in ("summary", "title"):
                assert "{{ $labels.target }}" in texts.get(key, "{{ $labels.target }}"), key


@pytest.mark.parametrize("path", SLO_FILES)
def test_every_window_has_its_error_ratio_and_all_read_the_same_sli(path: str) -> None:
    for sloth_id, slo_rules in by_slo(path).items():
        ratios = {r["record"].removeprefix("slo:sli_error:ratio_rate"): r["expr"] for r in slo_rules
                  if r.get("record", "").startswith("slo:sli_error:ratio_rate")}  # fmt: skip
        assert tuple(ratios) == (*WINDOWS, PERIOD), sloth_id
        period = ratios.pop(PERIOD)
        assert {s.name for s in selectors(period)} == {"slo:sli_error:ratio_rate5m"}
        assert matcher(period, "sloth_id") == sloth_id
        shapes = {re.sub(r"\[\w+\]", "[W]", expr).strip() for expr in ratios.values()}
        assert len(shapes) == 1, f"the windows' expressions differ beyond their window: {shapes}"
        for window, expr in ratios.items():
            assert ranges(expr) == {DURATIONS[window]}, window


@pytest.mark.parametrize("path", SLO_FILES)
def test_every_rule_keeps_the_targets_apart(path: str) -> None:
    """The probe SLI is summed by target; the request SLO has one target,
    the status server, as its label; no later rule drops the label."""
    for rule in rules(path):
        if "record" in rule and "sloth_window" in rule["labels"] and rule["labels"]["sloth_window"] != PERIOD:
            if "target" in rule["labels"]:
                assert rule["labels"]["target"] == "status-server"
            else:
                assert set(aggregations(rule["expr"])) == {("by", ("target",))}, rule["expr"]
        else:
            assert all(kind == "without" and "target" not in labels for kind, labels in aggregations(rule["expr"]))


@pytest.mark.parametrize("path", SLO_FILES)
def test_alerts_page_and_ticket_hold_and_name_their_target(path: str) -> None:
    for sloth_id, slo_rules in by_slo(path).items():
        alerts = [r for r in slo_rules if "alert" in r]
        assert sorted(a["labels"]["severity"] for a in alerts) == ["page", "ticket"], sloth_id
        for alert in alerts:
            severity = alert["labels"]["severity"]
            assert "for" not in alert, "a for: would delay every page (docs/slo.md)"
            assert alert["keep_firing_for"] == KEEP_FIRING_FOR[severity]
            assert {"title", "summary", "description", "dashboard"} <= set(alert["annotations"])
            assert alert["annotations"]["summary"].startswith("{{ $labels.target }}: ")
            read = selectors(alert["expr"])
            assert {s.name for s in read} == {f"slo:sli_error:ratio_rate{w}" for w in ALERT_WINDOWS[severity]}
            assert matcher(alert["expr"], "sloth_id") == sloth_id, "each alert reads its own SLO's series"


def test_every_prometheus_alert_names_its_target() -> None:
    """The server's symptom alerts too: they carry target="status-server",
    so a silence of that target (docs/slo.md) holds them with its SLO
    alerts, and their summaries name it."""
    for path in sorted((ROOT / "prometheus/rules").glob("*.yml")):
        for rule in rules(str(path.relative_to(ROOT))):
            if "alert" not in rule:
                continue
            target = rule["labels"].get("target", "{{ $labels.target }}")
            assert "target" in rule["labels"] or "sloth_id" in rule["expr"], (path.name, rule["alert"])
            assert rule["annotations"]["summary"].startswith(f"{target}: "), (path.name, rule["alert"])


def loki_recorded() -> dict[str, set[str]]:
    """Loki's recording rules: the name each writes and the labels it has.
    Each sums by target, so target is the only label."""
    recorded = {}
    for f in LOKI_RULES:
        for rule in rules(f):
            if "record" in rule:
                assert "sum by (target) (" in rule["expr"]
                assert not re.findall(r"\bsum\b(?! by \(target\) \()", rule["expr"]), rule["expr"]
                recorded[rule["record"]] = {"target", *rule.get("labels", {})}
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
        matchers = {m.name for m in selector.matchers.matchers if m.name != "__name__"}
        assert matchers <= recorded[name], f"{selector} matches labels Loki does not write"


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
        longest = max(max(ranges(r["expr"]), default=timedelta(0)) for r in rules(f))
        assert longest == DURATIONS[PERIOD], f
        assert timedelta(days=int(retention[:-1])) > longest, f
