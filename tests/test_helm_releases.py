"""Two releases in one cluster (a prod with the defaults, a staging with
ci/staging-values.yaml), in one namespace or two: rendered side by side,
nothing of one collides with the other, in Kubernetes or in what the
sidecars, Grafana and Prometheus make of the objects."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.helm.chart import CHART, Manifest, container_env, find, refusal, render

STAGING = CHART / "ci/staging-values.yaml"
# (release, namespace, values) of each pair.
PAIRS = {
    "one-namespace": [("prod", "statuswatch", None), ("staging", "statuswatch", STAGING)],
    "two-namespaces": [("statuswatch", "prod", None), ("statuswatch", "staging", STAGING)],
}


def _render(release: str, namespace: str, values: Path | None) -> Manifest:
    manifest = render(values, crds=True, release=release, namespace=namespace)
    for doc in manifest:
        doc["metadata"].setdefault("namespace", namespace)
    return manifest


@pytest.fixture(scope="module", params=PAIRS.values(), ids=PAIRS.keys())
def pair(request: pytest.FixtureRequest) -> list[Manifest]:
    return [_render(*release) for release in request.param]


def _twice(items: list[Any]) -> list[Any]:
    return [item for item, count in Counter(items).items() if count > 1]


def _sidecar_files(manifest: Manifest, label: str, folder: str) -> list[tuple[str, str]]:
    """The files a sidecar writes for the ConfigMaps labelled label: (the
    folder annotation's value, the data key)."""
    return [
        (d["metadata"].get("annotations", {}).get(folder, ""), key)
        for d in manifest
        if d["kind"] == "ConfigMap" and label in d["metadata"]["labels"]
        for key in d["data"]
    ]


def _dashboards(manifest: Manifest) -> list[dict[str, Any]]:
    return [json.loads(text) for _, text in _configmap_data(manifest, "grafana_dashboard")]


def _configmap_data(manifest: Manifest, label: str) -> list[tuple[str, str]]:
    return [
        (key, text)
        for d in manifest
        if d["kind"] == "ConfigMap" and label in d["metadata"]["labels"]
        for key, text in d["data"].items()
    ]


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def test_no_object_collides(pair: list[Manifest]) -> None:
    both = pair[0] + pair[1]
    names = [(d["kind"], d["metadata"]["namespace"], d["metadata"]["name"]) for d in both]
    assert _twice(names) == []


def test_no_selector_reaches_the_other_release(pair: list[Manifest]) -> None:
    for mine, other in (pair, pair[::-1]):
        pods = [(d["metadata"]["namespace"], d["spec"]["template"]["metadata"]["labels"])
                for d in other if d["kind"] == "Deployment"]  # fmt: skip
        for doc in mine:
            selector = {
                "Service": lambda d: d["spec"]["selector"],
                "ServiceMonitor": lambda d: d["spec"]["selector"]["matchLabels"],
                "NetworkPolicy": lambda d: d["spec"]["podSelector"]["matchLabels"],
            }.get(doc["kind"], lambda d: None)(doc)
            if selector is None:
                continue
            for namespace, labels in pods:
                # A ServiceMonitor without a namespaceSelector selects in its own.
                assert "namespaceSelector" not in doc["spec"], doc["metadata"]["name"]
                same_namespace = namespace == doc["metadata"]["namespace"]
                assert not (same_namespace and _selects(selector, labels)), f"{doc['metadata']['name']} {labels}"


def test_sidecars_write_no_file_twice(pair: list[Manifest]) -> None:
    """The Grafana and Loki sidecars write every ConfigMap's keys into one
    folder (per annotation): two releases' files must differ in name."""
    files = [f for m in pair for f in _sidecar_files(m, "grafana_dashboard", "grafana_folder")]
    assert files
    assert _twice(files) == []
    rules = [f for m in pair for f in _sidecar_files(m, "loki_rule", "k8s-sidecar-target-directory")]
    assert rules
    assert _twice(rules) == []


def test_each_release_logs_to_its_own_tenant(pair: list[Manifest]) -> None:
    """With one Loki tenant, staging's probe records fed the Loki rules prod
    ships (the probe SLI, MonitorSilent). Staging names a tenant of its own:
    in a Loki with auth_enabled: true, where prod names its own too
    (docs/kubernetes.md), those rules no longer see staging's records."""
    tenants = [
        {
            container_env(m, "client").get("LOKI_TENANT", "fake"),
            container_env(m, "server").get("SERVER_LOKI_TENANT", "fake"),
        }
        for m in pair
    ]
    assert len(tenants[0]) == len(tenants[1]) == 1, "the server and the monitor of a release share a tenant"
    assert tenants[0] != tenants[1]


def test_each_release_has_its_own_dashboard(pair: list[Manifest]) -> None:
    """Grafana keeps one dashboard per uid: each copy has its own, its
    title names the release, its Prometheus queries the release's job."""
    prod, staging = (_dashboards(m) for m in pair)
    assert _twice([d["uid"] for d in prod + staging]) == []
    assert all(len(d["uid"]) <= 40 for d in prod + staging), "Grafana's limit"
    assert _twice([d["title"] for d in prod + staging]) == []
    assert 'job=\\"server\\"' in json.dumps(prod)
    assert 'job=\\"server\\"' not in json.dumps(staging)
    assert 'job=\\"server-staging\\"' in json.dumps(staging)


def test_prometheus_sees_one_job_and_one_rule_set(pair: list[Manifest]) -> None:
    monitors = [d for m in pair for d in m if d["kind"] == "ServiceMonitor"]
    jobs = [d["spec"]["endpoints"][0]["relabelings"][0]["replacement"] for d in monitors]
    assert sorted(jobs) == ["server", "server-staging"]
    shipping = [m for m in pair if any(d["kind"] == "PrometheusRule" for d in m)]
    assert shipping == [pair[0]], "the release scraped as job=server ships the rules, the other none"


def test_rules_with_another_release_job_are_refused() -> None:
    """The rules watch job="server": a release scraped under another job
    would ship rules that watch the other release (or nothing)."""
    message = refusal(sets=('serviceMonitor.jobLabel="server-staging"',))
    assert 'prometheusRule.enabled with serviceMonitor.jobLabel "server-staging"' in message
    find(render(STAGING), "Deployment", "-server")


def _alert_links(manifest: Manifest) -> list[str]:
    return [
        rule["annotations"]["dashboard"]
        for d in manifest
        if d["kind"] == "PrometheusRule"
        for group in d["spec"]["groups"]
        for rule in group["rules"]
        if "dashboard" in rule.get("annotations", {})
    ]


@pytest.mark.parametrize("url", [None, "https://grafana.example/sub"])
def test_alerts_link_to_the_release_dashboard(url: str | None) -> None:
    """An alert's dashboard link opens the release's copy (its uid is not
    the file's) on dashboards.grafanaURL, the target chosen."""
    sets = () if url is None else (f'dashboards.grafanaURL="{url}"',)
    manifest = render(crds=True, sets=sets)
    (uid,) = [d["uid"] for d in _dashboards(manifest)]
    links = _alert_links(manifest)
    assert links, "the SLO alerts link to the dashboard"
    prefix = f"{url or 'http://localhost:3000'}/d/{uid}?var-target={{{{ $labels.target }}}}"
    assert all(link == prefix for link in links), links
