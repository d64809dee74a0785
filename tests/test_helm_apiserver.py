"""Tier 3 of the Helm chart's checks: a real kube-apiserver (with etcd, the
prometheus-operator CRDs installed) takes every object the chart renders,
with strict field validation, and refuses broken ones; helm install, upgrade
and uninstall run against it for real, and a Pod made from each Deployment's
template is admitted, with every object it names there. Nothing runs: there
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
    client_deployments,
    deployment_env,
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
from tests.helm.install import PRIORITY_CLASS, RESTRICTED, Release, create_pods, prepare_namespace
from tests.helm.schemas import CRD_FILES, source_dir
from tests.stack import ROOT, tool

# What the upgrade changes, over each values file.
UPGRADE = ROOT / "tests/helm/upgrade-values.yaml"
STAGING = CHART / "ci/staging-values.yaml"
SHARDED = CHART / "ci/sharded-values.yaml"


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
        cluster.must("create", "-f", "-", stdin=json.dumps(PRIORITY_CLASS))
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


def _pods_start(release: Release) -> list[str]:
    """Makes a Pod of each of the release's Deployments; what keeps any from
    being created or from starting."""
    outcomes = list(create_pods(release))
    assert outcomes, "no Deployment installed"
    return [f"{o.name}: {o.refused or ''}{o.missing or ''}" for o in outcomes if o.refused or o.missing]


def _values_id(values: Path) -> str:
    return values.name.removesuffix("-values.yaml")


@pytest.mark.parametrize("values", CI_VALUES, ids=_values_id)
def test_install_upgrade_uninstall(cluster: Cluster, values: Path) -> None:
    """What a user runs: helm install (server-side apply), a Pod from each
    Deployment, helm upgrade with changed values, Pods again, helm uninstall
    leaving nothing of the release."""
    release = Release(cluster, "sw", "real-" + _values_id(values))
    prepare_namespace(cluster, release.namespace)
    release.install(values)
    assert _pods_start(release) == []
    release.upgrade(values, UPGRADE)
    objects = release.objects()
    assert all(o["metadata"]["labels"].get("upgraded") == "yes" for o in objects), "the upgrade reached every object"
    (server,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-server")]
    env = {e["name"]: e.get("value") for e in server["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SERVER_MAX_DELAY"] == "100ms"
    assert client_deployments(objects), "the upgrade turned the monitor on"
    assert _pods_start(release) == []
    release.uninstall()
    assert release.objects() == []


def test_two_releases_install_side_by_side(cluster: Cluster) -> None:
    """A prod with the defaults and a staging (ci/staging-values.yaml) in one
    namespace: both install, their pods start, each uninstalls alone."""
    namespace = "two-releases"
    prepare_namespace(cluster, namespace)
    prod, staging = Release(cluster, "prod", namespace), Release(cluster, "staging", namespace)
    prod.install()
    staging.install(STAGING)
    assert _pods_start(prod) == []
    assert _pods_start(staging) == []
    staging.uninstall()
    assert staging.objects() == []
    assert prod.objects(), "uninstalling staging took prod's objects"
    prod.uninstall()


def test_sharded_monitors_install_and_start(cluster: Cluster) -> None:
    """Three monitors sharing the targets of ci/sharded-values.yaml: each
    Deployment installs with its shard, a Pod of each is admitted with the
    targets ConfigMap and the header Secret there, and uninstall leaves
    nothing."""
    release = Release(cluster, "sw", "sharded")
    prepare_namespace(cluster, release.namespace)
    release.install(SHARDED)
    deployments = client_deployments(release.objects("deployment"))
    assert [deployment_env(d)["SHARD"] for d in deployments] == ["0/3", "1/3", "2/3"]
    configmaps = [o["metadata"]["name"] for o in release.objects("configmap")]
    assert "sw-statuswatch-targets" in configmaps, configmaps
    assert _pods_start(release) == []
    release.uninstall()
    assert release.objects() == []


@pytest.mark.parametrize(
    ("sets", "word"),
    [
        pytest.param(("serviceAccount.create=false", 'serviceAccount.name="nobody"'), "nobody", id="account"),
        pytest.param(('server.extraEnvFrom=[{"configMapRef": {"name": "nowhere"}}]',), "nowhere", id="configmap"),
        pytest.param(
            ('client.extraVolumes=[{"name":"x","secret": {"secretName": "nothing"}}]',), "nothing", id="secret"
        ),
        pytest.param(('imagePullSecrets=[{"name": "no-regcred"}]',), "no-regcred", id="pull-secret"),
    ],
)
def test_a_pod_that_could_not_start_is_caught(cluster: Cluster, sets: tuple[str, ...], word: str) -> None:
    """The install passes (nothing checks references then); the Pod made
    from the template is refused (admission checks its ServiceAccount), or
    the lookup of what it names finds the object missing."""
    release = Release(cluster, "sw", "broken-" + word)
    prepare_namespace(cluster, release.namespace)
    release.install(sets=sets)
    problems = _pods_start(release)
    assert any(word in p for p in problems), problems
