"""Tier 3 of the Helm chart's checks: a real kube-apiserver (with etcd, the
prometheus-operator CRDs installed) takes every object the chart renders,
with strict field validation, and refuses broken ones. Nothing runs: there
is no kubelet and no controller, so objects are validated, never scheduled."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helm.chart import (
    BREAKAGES,
    CHART,
    CI_VALUES,
    LIMITS_BELOW_REQUESTS,
    NAMESPACE,
    ODD_FILES,
    RELEASE,
    Breakage,
    Manifest,
    chart_with_odd_names,
    enabled,
    find,
    helm,
    kinds,
    parse,
    render,
    run,
    write_manifest,
)
from tests.helm.cluster import Cluster, api_server
from tests.helm.schemas import CRD_FILES, source_dir
from tests.stack import tool

# The Pod Security Standard the chart's pods meet: the API server's
# PodSecurity admission refuses a Pod that does not, and warns about a
# Deployment whose pods would not.
RESTRICTED = ("pod-security.kubernetes.io/enforce=restricted", "pod-security.kubernetes.io/warn=restricted")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    etcd = tool("ETCD", "etcd")
    apiserver = tool("KUBE_APISERVER", "kube-apiserver")
    kubectl = tool("KUBECTL", "kubectl")
    crds = source_dir("PROMETHEUS_OPERATOR_CRDS", "the prometheus-operator CRDs")
    with api_server(etcd, apiserver, kubectl, tmp_path_factory.mktemp("cluster")) as cluster:
        for name in CRD_FILES:
            cluster.must("create", "-f", str(crds / name))
        cluster.must(
            "wait",
            "--for=condition=Established",
            "--timeout=120s",
            "crd/servicemonitors.monitoring.coreos.com",
            "crd/prometheusrules.monitoring.coreos.com",
        )
        cluster.must("create", "namespace", NAMESPACE)
        cluster.must("label", "namespace", NAMESPACE, *RESTRICTED)
        yield cluster


def install_dry_run(cluster: Cluster, values: Path, namespace: str) -> tuple[Manifest, str]:
    """What helm install --dry-run=server would install, hooks included,
    and its NOTES: Helm asks the real server which APIs it serves."""
    out = run(
        [
            helm(),
            "install",
            RELEASE,
            str(CHART),
            "--namespace",
            namespace,
            "--values",
            str(values),
            "--dry-run=server",
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--output",
            "json",
        ]
    )
    assert out.returncode == 0, out.stderr
    release = json.loads(out.stdout)
    hooks = [doc for hook in release.get("hooks", []) for doc in parse(hook["manifest"])]
    return parse(release["manifest"]) + hooks, release["info"]["notes"]


def apply_dry_run(cluster: Cluster, path: Path, namespace: str = NAMESPACE) -> tuple[int, str]:
    out = cluster.run("apply", "--dry-run=server", "--validate=strict", "--namespace", namespace, "-f", str(path))
    return out.returncode, out.stdout + out.stderr


def create_namespace(cluster: Cluster, tmp_path: Path, namespace: str, manifest: Manifest) -> None:
    """Really creates the namespace and the ServiceAccounts: a Pod is
    admitted only when the ServiceAccount it names exists, a dry run creates
    nothing, and no controller-manager creates a namespace's default one."""
    cluster.must("create", "namespace", namespace)
    cluster.must("label", "namespace", namespace, *RESTRICTED)
    cluster.must("create", "serviceaccount", "default", "--namespace", namespace)
    accounts = [d for d in manifest if d["kind"] == "ServiceAccount"]
    if accounts:
        cluster.must("apply", "--namespace", namespace, "-f", str(write_manifest(tmp_path / "sa.yaml", accounts)))


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_server_accepts_every_object(cluster: Cluster, tmp_path: Path, values: Path) -> None:
    namespace = "ci-" + values.name.removesuffix("-values.yaml")  # one per case: nothing left from another
    manifest, notes = install_dry_run(cluster, values, namespace)
    if enabled(values, "serviceMonitor"):
        assert "ServiceMonitor" in kinds(manifest), "Helm did not see the CRDs the server serves"
        assert "- a ServiceMonitor (job=" in notes, notes
    if enabled(values, "prometheusRule"):
        assert "PrometheusRule" in kinds(manifest), "Helm did not see the CRDs the server serves"
    assert "NO ServiceMonitor" not in notes, notes
    assert "NO PrometheusRules" not in notes, notes
    create_namespace(cluster, tmp_path, namespace, manifest)
    code, output = apply_dry_run(cluster, write_manifest(tmp_path / "manifest.yaml", manifest), namespace)
    assert code == 0, output
    assert output.count("(server dry run)") == len(manifest), output
    assert "PodSecurity" not in output, output


def test_server_accepts_the_names_made_from_odd_file_names(cluster: Cluster, tmp_path: Path) -> None:
    """Rule files, dashboards and tenant folders named with upper case, "_"
    and "." (tests/helm/chart.py ODD_FILES): their objects' names pass the
    API server's own name validation."""
    manifest = render(chart=chart_with_odd_names(tmp_path), crds=True)
    odd = [find(manifest, kind, suffix) for kind, suffix in ODD_FILES.values()]
    code, output = apply_dry_run(cluster, write_manifest(tmp_path / "odd.yaml", odd))
    assert code == 0, output
    assert output.count("(server dry run)") == len(odd), output


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda b: b.name)
def test_server_refuses_a_broken_object(cluster: Cluster, tmp_path: Path, breakage: Breakage) -> None:
    broken = breakage.apply(render(crds=True))
    code, output = apply_dry_run(cluster, write_manifest(tmp_path / "broken.yaml", [broken]))
    assert code != 0, output
    assert breakage.word in output, output


def test_server_refuses_limits_below_requests(cluster: Cluster, tmp_path: Path) -> None:
    """What only the API server sees (the schemas take it, see
    tests/test_helm_kubeconform.py)."""
    deployment = find(render(LIMITS_BELOW_REQUESTS), "Deployment", "-server")
    code, output = apply_dry_run(cluster, write_manifest(tmp_path / "limits.yaml", [deployment]))
    assert code != 0, output
    assert "must be less than or equal to cpu limit" in output, output


def test_server_refuses_a_pod_without_the_hardening(cluster: Cluster, tmp_path: Path) -> None:
    """The hardening meets the restricted Pod Security Standard: the same
    test pod without its security contexts is refused."""
    manifest = render()
    pod = find(manifest, "Pod", "-test-server")
    del pod["spec"]["securityContext"]
    del pod["spec"]["containers"][0]["securityContext"]
    create_namespace(cluster, tmp_path, "unhardened", [find(manifest, "ServiceAccount")])
    code, output = apply_dry_run(cluster, write_manifest(tmp_path / "pod.yaml", [pod]), "unhardened")
    assert code != 0, output
    assert 'violates PodSecurity "restricted' in output, output
