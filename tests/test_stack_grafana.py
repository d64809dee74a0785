"""Grafana's provisioning and dashboard, checked without Grafana: they parse,
every panel names a provisioned datasource, and no $ is left for Grafana's
environment expansion to eat."""

from __future__ import annotations

import json
import math
import re
import subprocess
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest

from tests.stack import ROOT, compose, dashboard, load_yaml, tool

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
        "Is every target healthy?",
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


# Grafana's own packages (tests/grafana, installed from npm by make test).
GRAFANA = ROOT / "tests/grafana"
SUMMARY_INTERVAL_S = 30


def node(script: str, payload: Any) -> Any:
    """Run a script of tests/grafana on payload (JSON on stdin, JSON out)."""
    binary = tool("NODE", "node")
    if not (GRAFANA / "node_modules").is_dir():
        pytest.fail("run make test (npm ci --prefix tests/grafana) to install Grafana's packages")
    result = subprocess.run([binary, str(GRAFANA / script)], input=json.dumps(payload), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def probe_interval_s() -> float:
    """The slowest cadence of the stack's targets: a window must hold enough
    probes of each one."""
    fleet = load_yaml("client/targets.stack.yml")
    default = fleet.get("defaults", {}).get("interval", 3)  # the client's --interval
    return float(max(t.get("interval", default) for t in fleet["targets"]))


def windows_s(cases: list[tuple[dict[str, Any], int, int]]) -> list[float]:
    """The window Grafana gives $__auto in each (panel, range, screen width)
    case's Loki range queries. The frontend computes the interval with
    @grafana/data's rangeUtil.calculateInterval over the panel's max data
    points (its width in pixels unless set) and its min interval; the Loki
    backend (pkg/tsdb/loki/step.go, Go, not in the npm packages) makes the
    step max(interval, range / 11000) and puts it in place of $__auto."""
    intervals = node(
        "interval.cjs",
        [
            {
                "range_ms": range_s * 1000,
                "max_data_points": panel.get("maxDataPoints") or screen_px * panel["gridPos"]["w"] // 24,
                "min_interval": panel.get("interval"),
            }
            for panel, range_s, screen_px in cases
        ],
    )
    return [
        max(ms, math.ceil(range_s * 1000 / 11000)) / 1000 for ms, (_, range_s, _) in zip(intervals, cases, strict=True)
    ]


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
    panel: dict[str, Any] = {"gridPos": {"w": 24}}
    cases: list[tuple[dict[str, Any], int, int]] = [
        (panel, 15 * 60, 1000),
        (panel, 24 * 3600, 1000),
        ({**panel, "maxDataPoints": 100_000}, 7 * 86400, 1000),
        ({**panel, "interval": "30s"}, 15 * 60, 1000),
    ]
    assert windows_s(cases) == [1, 60, math.ceil(7 * 86400 * 1000 / 11000) / 1000, 30]


def test_no_client_query_sets_its_own_step() -> None:
    """A target's step replaces the computed one, min interval and all
    (pkg/tsdb/loki/step.go), so windows_s would not be the window."""
    for panel in auto_panels():
        for t in panel["targets"]:
            assert not t.get("step"), f"{panel['title']}: step {t['step']!r} overrides the panel's min interval"


@pytest.mark.parametrize("range_s", [15 * 60, 24 * 3600], ids=["15m", "24h"])
@pytest.mark.parametrize("screen_px", [1280, 1920, 3840])
def test_every_client_panel_point_holds_enough_records(range_s: int, screen_px: int) -> None:
    """Without a min interval a 15-minute range gives windows of 0.5-2 s:
    one probe per point at most, and ratios of 0, 50 or 100 %. Each point
    must hold enough probes of every target, the slowest included."""
    probe_s = probe_interval_s()
    assert auto_panels()
    for panel, window in zip(auto_panels(), windows_s([(p, range_s, screen_px) for p in auto_panels()]), strict=True):
        exprs = " ".join(t["expr"] for t in panel["targets"])
        if 'event="summary"' in exprs:
            assert window >= 2 * SUMMARY_INTERVAL_S, f"{panel['title']}: {window} s may hold no summary"
        else:
            assert window / probe_s >= 10, f"{panel['title']}: {window} s holds under 10 probes"
        if "quantile_over_time" in exprs:
            assert window / probe_s >= 20, f"{panel['title']}: a p95 of under 20 probes is their maximum"


def test_the_windows_on_a_common_screen() -> None:
    """What a reader sees at 1920 px: the min interval at 15 minutes, a few
    minutes at most over a day."""
    cases = [(p, r, 1920) for p in auto_panels() for r in (15 * 60, 24 * 3600)]
    found = windows_s(cases)
    windows = {p["title"]: (found[2 * i], found[2 * i + 1]) for i, p in enumerate(auto_panels())}
    assert windows == {
        "Probe outcomes (client)": (30, 120),
        "Availability over time (client)": (30, 120),
        "Status codes seen by the client": (30, 120),
        "Latency seen by the client": (60, 120),
        "Where does the time go? (client)": (60, 60),
        "Client errors by type": (30, 120),
        "Flaky mode and health": (60, 60),
    }


# Fields Grafana 13.2 still reads and migrates, which its published types no
# longer list: a Loki annotation's query and formats sit at the top level of
# the annotation (the form Grafana's provisioning docs show), where the types
# have `target`. Listed here, taken out before the type check, and each one
# must still be in the dashboard.
LEGACY = {
    ("annotations", "Flaky toggles"): {"expr", "titleFormat", "textFormat", "tagKeys"},
    ("annotations", "Health changes"): {"expr", "titleFormat", "textFormat", "tagKeys"},
}


def without_legacy(d: dict[str, Any]) -> dict[str, Any]:
    d = json.loads(json.dumps(d))
    for (_, name), keys in LEGACY.items():
        (annotation,) = [a for a in d["annotations"]["list"] if a["name"] == name]
        assert keys <= set(annotation), f"{name}: {keys - set(annotation)} no longer there: drop from LEGACY"
        for key in keys:
            del annotation[key]
    return d


def type_check(tmp_path: Path, d: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """tsc on the dashboard d as a TypeScript literal of @grafana/schema's
    Dashboard type (its enums as their JSON values)."""
    if not (GRAFANA / "node_modules").is_dir():
        pytest.fail("run make test (npm ci --prefix tests/grafana) to install Grafana's packages")
    (tmp_path / "dashboard.ts").write_text(
        f'import type {{ CheckedDashboard }} from "{GRAFANA}/dashboard-type";\n\n'
        f"export const dashboard: CheckedDashboard = {json.dumps(without_legacy(d), indent=2)};\n"
    )
    schema = GRAFANA / "node_modules/@grafana/schema/dist/types/index.d.ts"
    options = {"strict": True, "noEmit": True, "module": "esnext", "moduleResolution": "bundler",
               "skipLibCheck": True, "types": [], "paths": {"@grafana/schema": [str(schema)]}}  # fmt: skip
    (tmp_path / "tsconfig.json").write_text(json.dumps({"compilerOptions": options, "files": ["dashboard.ts"]}))
    tsc = GRAFANA / "node_modules/typescript/bin/tsc"
    return subprocess.run([tool("NODE", "node"), str(tsc), "-p", str(tmp_path)], capture_output=True, text=True)


def test_the_dashboard_has_grafanas_own_types(tmp_path: Path) -> None:
    """tsc reports a wrong type and an unknown property, the typo a JSON
    file would otherwise keep."""
    result = type_check(tmp_path, dashboard())
    assert result.returncode == 0, result.stdout[:3000]


def test_the_type_check_catches_a_typo(tmp_path: Path) -> None:
    """The check is not vacuous: a misspelt panel key fails it, and so does
    an enum's value Grafana does not know."""
    broken = json.loads(json.dumps(dashboard()))
    broken["panels"][1]["gridpos"] = broken["panels"][1].pop("gridPos")
    result = type_check(tmp_path, broken)
    assert "'\"gridpos\"' does not exist" in result.stdout, result.stdout[:3000]
    broken = json.loads(json.dumps(dashboard()))
    broken["panels"][1]["fieldConfig"]["defaults"]["thresholds"]["mode"] = "absolut"
    result = type_check(tmp_path, broken)
    assert "absolut" in result.stdout, result.stdout[:3000]


def test_grafanas_packages_are_pinned() -> None:
    package = json.loads((GRAFANA / "package.json").read_text())
    assert all(v[0].isdigit() for v in package["dependencies"].values()), "exact versions"
    grafana_image = compose()["services"]["grafana"]["image"].split(":")[1]
    assert package["dependencies"]["@grafana/schema"] == grafana_image, "the types of the Grafana the stack runs"
    assert package["dependencies"]["@grafana/data"] == grafana_image
    assert (GRAFANA / "package-lock.json").is_file()


# The $target variable: every client panel follows it, the server's do not.
def client_queries() -> list[str]:
    exprs = [
        t["expr"]
        for p in panels()
        for t in p["targets"]
        if t["datasource"]["uid"] == "loki" and "status-monitor" in t["expr"]
    ]
    exprs += [a["expr"] for a in dashboard()["annotations"]["list"] if "status-monitor" in a.get("expr", "")]
    return exprs


def test_target_lists_the_fleet_and_selects_all() -> None:
    """target is a JSON field of the records, not a stream label: Loki's
    label values API, all a Loki query variable can ask, takes stream
    matchers only. So the values are the stack's targets file's names, and
    All is any target (.+), a fleet of another size included."""
    (variable,) = dashboard()["templating"]["list"]
    assert variable["name"] == "target"
    assert variable["type"] == "custom"
    assert variable["multi"] is True
    assert variable["includeAll"] is True
    assert variable["allValue"] == ".+"
    assert variable["current"]["value"] == ["$__all"]
    fleet = [t["name"] for t in load_yaml("client/targets.stack.yml")["targets"]]
    assert [v.strip() for v in variable["query"].split(",")] == fleet


def test_every_client_query_follows_target() -> None:
    """A regex match: Grafana joins a multi-value selection as a|b, each
    value regex-escaped, and puts the All value in as it is."""
    flaky = [q for q in client_queries() if 'event="flaky_toggle"' in q]
    assert len(flaky) == 1, "the toggles belong to the status server: no target"
    for expr in client_queries():
        if expr not in flaky:
            assert '| target=~"$target"' in expr, expr
    for p in panels():
        for t in p["targets"]:
            if t["datasource"]["uid"] != "prometheus":
                continue
            if "slo:" in t["expr"] and 'slo="probe-availability"' in t["expr"] and "objective" not in t["expr"]:
                # The probe SLO's series are per target (by (target) in Loki's rules).
                assert 'target=~"$target"' in t["expr"], f"{p['title']}: {t['expr']}"
            else:
                assert "$target" not in t["expr"], f"{p['title']}: the server's metrics are the status server's"


FLEET_COLUMNS = ["Verdict", "Availability, 5 min", "p95, 5 min", "Certificate, days left", "Last failure"]


def fleet_table() -> dict[str, Any]:
    row, table = dashboard()["panels"][:2]
    assert (row["type"], row["gridPos"]["y"]) == ("row", 0), "the fleet first"
    assert table["type"] == "table"
    found: dict[str, Any] = table
    return found


def test_the_fleet_row_asks_one_value_per_target() -> None:
    table = fleet_table()
    assert {t["queryType"] for t in table["targets"]} == {"instant"}
    assert all(t["expr"].endswith(") by (target)") for t in table["targets"])
    assert [t["legendFormat"] for t in table["targets"]] == FLEET_COLUMNS
    assert table["options"]["sortBy"] == [{"displayName": "Verdict", "desc": False}], "down first"


def test_the_fleet_row_is_one_line_per_target() -> None:
    """The table's transformations, run by @grafana/data's own code on
    frames shaped like the Loki backend's (one per series): one line per
    target, a column per query, empty where a query has nothing (an http
    target's certificate, a target that never failed)."""
    table = fleet_table()
    fleet = [t["name"] for t in load_yaml("client/targets.stack.yml")["targets"]]
    refs = {t["legendFormat"]: t["refId"] for t in table["targets"]}
    values = {"Verdict": 2, "Availability, 5 min": 100, "p95, 5 min": 4.5}
    series = [
        {"refId": refs[column], "legend": column, "labels": {"target": name}, "value": value}
        for name in fleet
        for column, value in values.items()
    ]
    series += [
        {"refId": refs["Certificate, days left"], "legend": "", "labels": {"target": "grafana"}, "value": 41.5},
        {"refId": refs["Last failure"], "legend": "", "labels": {"target": "status-server"}, "value": 13},
    ]
    (out,) = node("transform.cjs", {"transformations": table["transformations"], "series": series})
    assert out["fields"] == ["Target", *FLEET_COLUMNS]
    rows = {row[0]: row[1:] for row in out["rows"]}
    assert sorted(rows) == sorted(fleet)
    assert rows["status-server"] == [2, 100, 4.5, None, 13]
    assert rows["grafana"] == [2, 100, 4.5, 41.5, None]


def test_the_last_failure_names_every_error_type() -> None:
    """The latest failed probe's error_type travels as a number (a metric
    query's value), from the query's label_format to the column's value
    mapping: both must agree, and cover the records' whole vocabulary."""
    table = fleet_table()
    (expr,) = [t["expr"] for t in table["targets"] if t["legendFormat"] == "Last failure"]
    coded = {int(code): name for name, code in re.findall(r'eq \.error_type "(\w+)" }}(\d+)', expr)}
    (override,) = [o for o in table["fieldConfig"]["overrides"] if o["matcher"]["options"] == "Last failure"]
    (mapping,) = [p["value"] for p in override["properties"] if p["id"] == "mappings"]
    shown = {int(code): m["text"] for code, m in mapping[0]["options"].items()}
    assert shown == {**coded, 0: "other"}
    records = json.loads((ROOT / "client/records.schema.json").read_text())
    vocabulary = set(records["$defs"]["error_type"]["enum"]) - {None, "skipped"}  # skipped: toggles only
    assert vocabulary <= set(coded.values())
