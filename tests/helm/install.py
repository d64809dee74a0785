"""What users run against a cluster, run against the test API server: real
helm install, upgrade and uninstall, and a Pod made from each Deployment's
template as the ReplicaSet controller would make it (no controller runs
there). Creating the Pod runs admission: the ServiceAccount and the
PriorityClass it names must exist. Admission does not look at ConfigMaps and
Secrets (a kubelet would, and wait forever), so missing_references does."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helm.chart import CHART, helm, run
from tests.helm.cluster import Cluster

# The Pod Security Standard the chart's pods meet: the API server's
# PodSecurity admission refuses a Pod that does not, and warns about a
# Deployment whose pods would not.
RESTRICTED = ("pod-security.kubernetes.io/enforce=restricted", "pod-security.kubernetes.io/warn=restricted")

# The user's own objects that ci/*-values.yaml name (a registry secret,
# extra environment, files, a CA, a PriorityClass): made before installing.
USER_OBJECTS: list[dict[str, Any]] = [
    {"kind": "ConfigMap", "metadata": {"name": "statuswatch-extra-env"}, "data": {"EXTRA": "1"}},
    {"kind": "ConfigMap", "metadata": {"name": "statuswatch-extra-files"}, "data": {"a.txt": "a"}},
    {"kind": "Secret", "metadata": {"name": "statuswatch-extra-secret"}, "stringData": {"EXTRA_SECRET": "x"}},
    {"kind": "Secret", "metadata": {"name": "statuswatch-ca"}, "stringData": {"ca.crt": "-"}},
    # The header secret of ci/sharded-values.yaml's targets.
    {"kind": "Secret", "metadata": {"name": "statuswatch-target-tokens"}, "stringData": {"shop-api": "x"}},
    {
        "kind": "Secret",
        "metadata": {"name": "regcred"},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": '{"auths": {}}'},
    },
]
PRIORITY_CLASS = {
    "apiVersion": "scheduling.k8s.io/v1",
    "kind": "PriorityClass",
    "metadata": {"name": "statuswatch-high"},
    "value": 1000,
}


# What the chart makes, for kubectl get.
KINDS = "deployment,service,serviceaccount,configmap,networkpolicy,servicemonitor,prometheusrule"


def prepare_namespace(cluster: Cluster, namespace: str) -> None:
    """A namespace enforcing the restricted standard, with what a
    controller-manager would make (the default ServiceAccount) and the
    user's objects."""
    cluster.must("create", "namespace", namespace)
    cluster.must("label", "namespace", namespace, *RESTRICTED)
    cluster.must("create", "serviceaccount", "default", "--namespace", namespace)
    objects = [{"apiVersion": "v1", **obj} for obj in USER_OBJECTS]
    items = json.dumps({"kind": "List", "apiVersion": "v1", "items": objects})
    cluster.must("create", "--namespace", namespace, "-f", "-", stdin=items)


@dataclass(frozen=True)
class Release:
    cluster: Cluster
    name: str
    namespace: str

    def helm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run([helm(), *args, "--namespace", self.namespace, "--kubeconfig", str(self.cluster.kubeconfig)])

    def install(self, *values: Path, sets: tuple[str, ...] = ()) -> dict[str, Any]:
        """helm install (server-side apply, as Helm 4 does by default);
        returns the release, hooks included."""
        out = self.helm("install", self.name, str(CHART), *_values_args(values, sets), "--output", "json")
        assert out.returncode == 0, out.stderr
        release: dict[str, Any] = json.loads(out.stdout)
        return release

    def upgrade(self, *values: Path) -> None:
        out = self.helm("upgrade", self.name, str(CHART), *_values_args(values, ()))
        assert out.returncode == 0, out.stderr

    def uninstall(self) -> None:
        out = self.helm("uninstall", self.name)
        assert out.returncode == 0, out.stderr

    def objects(self, kinds: str = KINDS) -> list[dict[str, Any]]:
        selector = f"app.kubernetes.io/instance={self.name}"
        out = self.cluster.must("get", kinds, "--namespace", self.namespace, "-l", selector, "-o", "json")
        items: list[dict[str, Any]] = json.loads(out)["items"]
        return items


def _values_args(values: tuple[Path, ...], sets: tuple[str, ...]) -> list[str]:
    return [arg for v in values for arg in ("--values", str(v))] + [arg for s in sets for arg in ("--set-json", s)]


def pod_of(deployment: dict[str, Any]) -> dict[str, Any]:
    """The Pod a ReplicaSet of the Deployment would create."""
    template = deployment["spec"]["template"]
    metadata = {"generateName": deployment["metadata"]["name"] + "-", **template["metadata"]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]}


@dataclass(frozen=True)
class PodOutcome:
    name: str
    refused: str  # the API server's error, empty when the Pod was created
    missing: list[str]  # references to objects that do not exist


def create_pods(release: Release) -> Iterator[PodOutcome]:
    """Creates a Pod from each of the release's Deployments, reports each
    and deletes it again (no controller would)."""
    for deployment in release.objects("deployment"):
        pod = pod_of(deployment)
        name = deployment["metadata"]["name"]
        namespace = release.namespace
        out = release.cluster.run("create", "--namespace", namespace, "-o", "name", "-f", "-", stdin=json.dumps(pod))
        if out.returncode != 0:
            yield PodOutcome(name, out.stderr, missing_references(release.cluster, release.namespace, pod["spec"]))
            continue
        release.cluster.must("delete", "--namespace", release.namespace, "--wait=false", out.stdout.strip())
        yield PodOutcome(name, "", missing_references(release.cluster, release.namespace, pod["spec"]))


def references(spec: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(kind, name, where) of every object a pod spec needs to start; the
    ones marked optional are not needed."""
    yield "ServiceAccount", spec.get("serviceAccountName", "default"), "serviceAccountName"
    for secret in spec.get("imagePullSecrets", []):
        yield "Secret", secret["name"], "imagePullSecrets"
    for volume in spec.get("volumes", []):
        where = f"volume {volume['name']}"
        if "configMap" in volume and not volume["configMap"].get("optional"):
            yield "ConfigMap", volume["configMap"]["name"], where
        if "secret" in volume and not volume["secret"].get("optional"):
            yield "Secret", volume["secret"]["secretName"], where
        if "persistentVolumeClaim" in volume:
            yield "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"], where
        for source in volume.get("projected", {}).get("sources", []):
            for kind, key in (("ConfigMap", "configMap"), ("Secret", "secret")):
                if key in source and not source[key].get("optional"):
                    yield kind, source[key]["name"], where
    for container in spec.get("initContainers", []) + spec["containers"]:
        for source in container.get("envFrom", []):
            for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                if key in source and not source[key].get("optional"):
                    yield kind, source[key]["name"], f"{container['name']} envFrom"
        for var in container.get("env", []):
            for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                ref = var.get("valueFrom", {}).get(key)
                if ref and not ref.get("optional"):
                    yield kind, ref["name"], f"{container['name']} env {var['name']}"


def missing_references(cluster: Cluster, namespace: str, spec: dict[str, Any]) -> list[str]:
    kinds = "configmap,secret,serviceaccount,persistentvolumeclaim"
    existing = json.loads(cluster.must("get", kinds, "--namespace", namespace, "-o", "json"))["items"]
    have = {(item["kind"], item["metadata"]["name"]) for item in existing}
    return [f"{kind} {name} ({where})" for kind, name, where in references(spec) if (kind, name) not in have]
