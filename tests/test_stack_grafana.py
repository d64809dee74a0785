"""Grafana's provisioning and dashboard, checked without Grafana: they parse,
every panel names a provisioned datasource, and no $ is left for Grafana's
environment expansion to eat."""

from __future__ import annotations

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
    assert set(by_uid) == {"prometheus", "loki"}
    assert [d["uid"] for d in datasources() if d.get("isDefault")] == ["prometheus"]
    services = compose()["services"]
    for d in datasources():
        host, port = re.fullmatch(r"http://([a-z]+):(\d+)", d["url"]).groups()  # type: ignore[union-attr]
        assert host in services
        assert any(str(p).endswith(f":{port}") for p in services[host]["ports"])


def test_exemplars_link_to_their_trace() -> None:
    """The label is the one the live Prometheus test finds on the server's
    exemplars (test_stack_prometheus.py)."""
    (prometheus,) = [d for d in datasources() if d["uid"] == "prometheus"]
    assert prometheus["jsonData"]["exemplarTraceIdDestinations"] == [
        {"name": "trace_id", "datasourceUid": "tempo", "urlDisplayLabel": "Trace of this request"}
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
            assert t["expr"].strip()
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
        "When was it flaky?",
    ]
    annotations = {a["name"] for a in dashboard()["annotations"]["list"]}
    assert {"Flaky toggles", "Health changes"} <= annotations
