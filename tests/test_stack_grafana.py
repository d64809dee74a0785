"""Grafana's provisioning and dashboard, checked without Grafana: they parse,
every panel names a provisioned datasource, and no $ is left for Grafana's
environment expansion to eat."""

from __future__ import annotations

import math
import re
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest

from tests.stack import ROOT, compose, dashboard, load_yaml

PROVISIONING = sorted((ROOT / "grafana/provisioning").rglob("*.yml"))


def datasources() -> list[dict[str, Any]]:
    ds: list[dict[str, Any]] = load_yaml("grafana/provisioning/datasources/datasources.yml")["datasources"]
    return ds


def test_datasources_have_fixed_uids_and_one_default() -> None:
    by_uid = {d["uid"]: d for d in datasources()}
    assert set(by_uid) == {"prometheus", "loki", "tempo", "alertmanager"}
    assert [d["uid"] for d in datasources() if d.get("isDefault")] == ["prometheus"]
    services = compose()["services"]
    for d in datasources():
        host, port = re.fullmatch(r"http://([a-z]+):(\d+)", d["url"]).groups()  # type: ignore[union-attr]
        assert host in services
        assert any(str(p).endswith(f":{port}") for p in services[host]["ports"])


def test_exemplars_link_to_their_trace() -> None:
    """trace_id is the label the live Prometheus test finds on the server's
    exemplars (test_stack_prometheus.py); traceID the one Tempo's metrics
    generator writes (seen against Tempo 3.0.3, docs/traces.md)."""
    (prometheus,) = [d for d in datasources() if d["uid"] == "prometheus"]
    assert prometheus["jsonData"]["exemplarTraceIdDestinations"] == [
        {"name": "trace_id", "datasourceUid": "tempo", "urlDisplayLabel": "Trace of this request"},
        {"name": "traceID", "datasourceUid": "tempo", "urlDisplayLabel": "Trace of this span"},
    ]


@pytest.mark.parametrize("path", PROVISIONING, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_dollar_left_for_grafana_to_expand(path: Path) -> None:
    """Grafana expands $VAR and ${VAR} in provisioning files; a literal $
    must be written $$."""
    values = list(strings(load_yaml(str(path.relative_to(ROOT)))))
    for value in values:
        assert "$" not in value.replace("$$", ""), f"a lone $ in {value!r}: no environment variable is meant here"
    if "derived" in path.name or "datasources" in path.name:
        assert any("$${__value.raw}" in v for v in values)


def strings(node: Any) -> Any:
    """Every string value in a parsed YAML document (Grafana expands values,
    not comments)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)


def test_dashboard_provider_reads_the_mounted_directory() -> None:
    (provider,) = load_yaml("grafana/provisioning/dashboards/dashboards.yml")["providers"]
    grafana = compose()["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    assert mounts[provider["options"]["path"]] == "./grafana/dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / "grafana/dashboards" / Path(home).name).is_file()
    assert Path(home).parent.as_posix() == provider["options"]["path"]


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def test_every_panel_names_a_provisioned_datasource() -> None:
    uids = {d["uid"] for d in datasources()}
    for p in panels():
        assert p["datasource"]["uid"] in uids | {"-- Mixed --"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] in uids, p["title"]
            assert (t["query"] if t["datasource"]["uid"] == "tempo" else t["expr"]).strip()
        if p["datasource"]["uid"] != "-- Mixed --":
            assert {t["datasource"]["uid"] for t in p["targets"]} == {p["datasource"]["uid"]}
    for a in dashboard()["annotations"]["list"]:
        assert a["datasource"]["uid"] in uids | {"-- Grafana --"}


def test_panels_are_titled_described_and_do_not_overlap() -> None:
    d = dashboard()
    assert d["uid"] == "status-server"
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    for p in panels():
        assert p["title"]
        assert p["description"]
    boxes = [(p["title"], p["gridPos"]) for p in d["panels"]]
    for (ta, a), (tb, b) in combinations(boxes, 2):
        apart = (
            a["x"] + a["w"] <= b["x"]
            or b["x"] + b["w"] <= a["x"]
            or a["y"] + a["h"] <= b["y"]
            or b["y"] + b["h"] <= a["y"]
        )
        assert apart, f"{ta} overlaps {tb}"
    assert all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in d["panels"])


def test_the_dashboard_answers_the_questions() -> None:
    rows = [p["title"] for p in dashboard()["panels"] if p["type"] == "row"]
    assert rows == [
        "Is the server answering?",
        "What does it answer?",
        "How slow is it?",
        "What went wrong?",
        "Which probes failed, and where did the time go?",
        "When was it flaky?",
        "Error budget: is it lasting?",
    ]
    annotations = {a["name"] for a in dashboard()["annotations"]["list"]}
    assert {"Flaky toggles", "Health changes"} <= annotations


# How Grafana picks a Loki range query's window. The frontend
# (@grafana/data rangeutil.calculateInterval) takes the range divided by the
# panel's max data points (its width in pixels unless set), rounds it to a
# "nice" interval and raises it to the panel's min interval; the Loki backend
# (pkg/tsdb/loki/step.go) makes the step max(interval, range / 11000) and
# replaces $__auto in a range query with that step.
NICE_MS = [
    (10, 1), (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1_500, 1_000),
    (3_500, 2_000), (7_500, 5_000), (12_500, 10_000), (17_500, 15_000), (25_000, 20_000),
    (45_000, 30_000), (90_000, 60_000), (210_000, 120_000), (450_000, 300_000), (750_000, 600_000),
    (1_050_000, 900_000), (1_500_000, 1_200_000), (2_700_000, 1_800_000), (5_400_000, 3_600_000),
    (9_000_000, 7_200_000), (16_200_000, 10_800_000), (32_400_000, 21_600_000), (86_400_000, 43_200_000),
]  # fmt: skip
PROBE_INTERVAL_S = 3  # the client's default
SUMMARY_INTERVAL_S = 30


def round_interval(ms: float) -> int:
    return next((nice for below, nice in NICE_MS if ms < below), 86_400_000)


def seconds(interval: str) -> float:
    value, unit = re.fullmatch(r"(\d+)(ms|s|m|h)", interval).groups()  # type: ignore[union-attr]
    return int(value) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def window_s(panel: dict[str, Any], range_s: int, screen_px: int) -> float:
    """The window Grafana gives $__auto in this panel's Loki range queries."""
    max_data_points = panel.get("maxDataPoints") or screen_px * panel["gridPos"]["w"] // 24
    interval_ms = max(round_interval(range_s * 1000 / max_data_points), seconds(panel.get("interval", "1ms")) * 1000)
    return max(interval_ms, math.ceil(range_s * 1000 / 11000)) / 1000


def auto_panels() -> list[dict[str, Any]]:
    return [
        p
        for p in panels()
        if any(
            t.get("queryType") == "range" and "$__auto" in t["expr"]
            for t in p["targets"]
            if t["datasource"]["uid"] == "loki"
        )
    ]


def test_the_windows_are_computed_like_grafana() -> None:
    """Grafana's own cases: 15 min on a 1,000 px panel is a 1 s interval,
    24 h a 1 min one (rangeutil); a week is 7d/11000 at least (step.go)."""
    panel = {"gridPos": {"w": 24}}
    assert window_s(panel, 15 * 60, 1000) == 1
    assert window_s(panel, 24 * 3600, 1000) == 60
    assert window_s({**panel, "maxDataPoints": 100_000}, 7 * 86400, 1000) == math.ceil(7 * 86400 * 1000 / 11000) / 1000
    assert window_s({**panel, "interval": "30s"}, 15 * 60, 1000) == 30


def test_no_client_query_sets_its_own_step() -> None:
    """A target's step replaces the computed one, min interval and all
    (pkg/tsdb/loki/step.go), so window_s would not be the window."""
    for panel in auto_panels():
        for t in panel["targets"]:
            assert not t.get("step"), f"{panel['title']}: step {t['step']!r} overrides the panel's min interval"


@pytest.mark.parametrize("range_s", [15 * 60, 24 * 3600], ids=["15m", "24h"])
@pytest.mark.parametrize("screen_px", [1280, 1920, 3840])
def test_every_client_panel_point_holds_enough_records(range_s: int, screen_px: int) -> None:
    """Without a min interval a 15-minute range gives windows of 0.5-2 s:
    one probe per point at most, and ratios of 0, 50 or 100 %."""
    assert auto_panels()
    for panel in auto_panels():
        window = window_s(panel, range_s, screen_px)
        exprs = " ".join(t["expr"] for t in panel["targets"])
        if 'event="summary"' in exprs:
            assert window >= 2 * SUMMARY_INTERVAL_S, f"{panel['title']}: {window} s may hold no summary"
        else:
            assert window / PROBE_INTERVAL_S >= 10, f"{panel['title']}: {window} s holds under 10 probes"
        if "quantile_over_time" in exprs:
            assert window / PROBE_INTERVAL_S >= 20, f"{panel['title']}: a p95 of under 20 probes is their maximum"


def test_the_windows_on_a_common_screen() -> None:
    """What a reader sees at 1920 px: the min interval at 15 minutes, a few
    minutes at most over a day."""
    windows = {p["title"]: (window_s(p, 15 * 60, 1920), window_s(p, 24 * 3600, 1920)) for p in auto_panels()}
    assert windows == {
        "Probe outcomes (client)": (30, 120),
        "Availability over time (client)": (30, 120),
        "Status codes seen by the client": (30, 120),
        "Latency seen by the client": (60, 120),
        "Where does the time go? (client)": (60, 60),
        "Client errors by type": (30, 120),
        "Flaky mode and health": (60, 60),
    }
