"""The Helm chart under test, its values matrix and negative cases, and
rendering it with a real Helm (make test builds one)."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.stack import ROOT, tool

CHART = ROOT / "deploy/helm/statuswatch"
RELEASE = "sw"
NAMESPACE = "statuswatch"
# The Kubernetes version the schemas and the API server are of.
KUBE_VERSION = "v1.37.2"
# What Helm lists for the prometheus-operator CRDs (a real API server's
# discovery gives group/version and group/version/kind).
MONITORING_APIS = (
    "monitoring.coreos.com/v1",
    "monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1/PrometheusRule",
)

# How the chart's README.md is made from values.yaml (tests/helm/tools.mk
# HELM_DOCS_ARGS is the same).
HELM_DOCS_ARGS = ("--sort-values-order", "file", "--skip-version-footer")

# What tiers 1 and 2 render: each ci/*-values.yaml, with and without the
# prometheus-operator CRDs served (tier 3's API server serves them).
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
MATRIX = [(values, crds) for values in CI_VALUES for crds in (False, True)]
MATRIX_IDS = [f"{values.name.removesuffix('-values.yaml')}-{'crds' if crds else 'nocrds'}" for values, crds in MATRIX]

# Values the schema must refuse; each file's first line is what Helm's error
# says ("# rejected: <text>"): where in the values, and why.
BAD_VALUES = sorted((ROOT / "tests/helm/bad-values").glob("*.yaml"))
# Values the schema takes but the chart's templates refuse (checks across
# options no JSON schema expresses); first line as above.
REFUSED_VALUES = sorted((ROOT / "tests/helm/refused-values").glob("*.yaml"))

Manifest = list[dict[str, Any]]


def helm() -> str:
    return tool("HELM", "helm")


def rejected_word(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# rejected: "), f"{path}: the first line must be '# rejected: <word>'"
    return first.removeprefix("# rejected: ").strip()


def template_args(
    values: Path | None = None,
    crds: bool = False,
    chart: Path = CHART,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    sets: tuple[str, ...] = (),
) -> list[str]:
    """helm template's command line; sets are --set-json key=json pairs."""
    args = [helm(), "template", release, str(chart), "--namespace", namespace, "--kube-version", KUBE_VERSION]
    if values is not None:
        args += ["--values", str(values)]
    if crds:
        args += [arg for api in MONITORING_APIS for arg in ("--api-versions", api)]
    for pair in sets:
        args += ["--set-json", pair]
    return args


def run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def render(values: Path | None = None, crds: bool = False, chart: Path = CHART, **kwargs: Any) -> Manifest:
    """The objects helm template renders, hooks (the test pod) included;
    kwargs as template_args takes them."""
    out = run(template_args(values, crds, chart, **kwargs))
    assert out.returncode == 0, out.stderr
    return parse(out.stdout)


def refusal(values: Path | None = None, **kwargs: Any) -> str:
    """What helm template says when it refuses to render (it must)."""
    out = run(template_args(values, **kwargs))
    assert out.returncode != 0, "helm template rendered what it must refuse"
    return out.stderr


class DuplicateKey(yaml.constructor.ConstructorError):
    pass


class StrictLoader(yaml.SafeLoader):
    """Refuses a mapping that names a key twice, as strict YAML tools and
    server-side apply do (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        twice = sorted({str(k) for k in keys if keys.count(k) > 1})
        if twice:
            raise DuplicateKey(None, None, f"keys written twice: {twice}", node.start_mark)
        return super().construct_mapping(node, deep)


def parse(text: str) -> Manifest:
    return [doc for doc in yaml.load_all(text, Loader=StrictLoader) if doc]


def find(manifest: Manifest, kind: str, name_suffix: str = "") -> dict[str, Any]:
    matches = [d for d in manifest if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]
    assert len(matches) == 1, (
        f"expected one {kind} named *{name_suffix}, got {[d['metadata']['name'] for d in matches]}"
    )
    return matches[0]


def kinds(manifest: Manifest) -> list[str]:
    return sorted(d["kind"] for d in manifest)


def container_env(manifest: Manifest, component: str) -> dict[str, str]:
    """A Deployment's variables by name; a name twice fails (a real
    install's server-side apply refuses it)."""
    deployment = find(manifest, "Deployment", f"-{component}")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    names = [e["name"] for e in container["env"]]
    assert len(names) == len(set(names)), f"{component}: a variable named twice in {names}"
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


# A monitor's Deployment: <fullname>-client, or -client-<shard> of several.
CLIENT_DEPLOYMENT = re.compile(r"-client(-(?P<shard>[0-9]+))?")


def client_deployments(manifest: Manifest) -> list[dict[str, Any]]:
    """The monitors' Deployments, one per shard, in shard order."""
    found = [(CLIENT_DEPLOYMENT.search(d["metadata"]["name"]), d) for d in manifest if d["kind"] == "Deployment"]
    shards = [(int(m["shard"] or 0), d) for m, d in found if m and m.end() == len(d["metadata"]["name"])]
    return [d for _, d in sorted(shards, key=lambda pair: pair[0])]


def deployment_env(deployment: dict[str, Any]) -> dict[str, str]:
    """A Deployment's variables with a value, by name; a name twice fails."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    names = [e["name"] for e in container["env"]]
    assert len(names) == len(set(names)), f"{deployment['metadata']['name']}: a variable named twice in {names}"
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def pod_spec(manifest: Manifest, component: str) -> dict[str, Any]:
    spec: dict[str, Any] = find(manifest, "Deployment", f"-{component}")["spec"]["template"]["spec"]
    return spec


@dataclass(frozen=True)
class Breakage:
    """A rendered object broken on purpose: every validating tier must
    reject it, with an error that names `word`."""

    name: str
    kind: str
    name_suffix: str
    breaks: Callable[[dict[str, Any]], None]
    word: str

    def apply(self, manifest: Manifest) -> dict[str, Any]:
        """A broken copy of the object this breakage is about."""
        doc = copy.deepcopy(find(manifest, self.kind, self.name_suffix))
        self.breaks(doc)
        return doc


def _first_container(doc: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = doc["spec"]["template"]["spec"]["containers"][0]
    return container


def _misspell_container_port(doc: dict[str, Any]) -> None:
    port = _first_container(doc)["ports"][0]
    port["containerport"] = port.pop("containerPort")


def _replicas_as_text(doc: dict[str, Any]) -> None:
    doc["spec"]["replicas"] = "one"


def _bad_for_duration(doc: dict[str, Any]) -> None:
    doc["spec"]["groups"][0]["rules"][0]["for"] = "soon"


def _misspell_endpoint_interval(doc: dict[str, Any]) -> None:
    endpoint = doc["spec"]["endpoints"][0]
    endpoint["intervall"] = endpoint.pop("interval")


BREAKAGES = [
    Breakage("misspelled-field", "Deployment", "-server", _misspell_container_port, "containerport"),
    Breakage("wrong-type", "Deployment", "-server", _replicas_as_text, "replicas"),
    Breakage("crd-pattern", "PrometheusRule", "-server", _bad_for_duration, "soon"),
    Breakage("crd-unknown-field", "ServiceMonitor", "-server", _misspell_endpoint_interval, "intervall"),
]


def write_manifest(path: Path, manifest: Manifest) -> Path:
    path.write_text(yaml.safe_dump_all(manifest, sort_keys=False))
    return path


# Values that pass every schema but that only the API server refuses.
LIMITS_BELOW_REQUESTS = ROOT / "tests/helm/limits-below-requests-values.yaml"


def enabled(values: Path, section: str) -> bool:
    """Whether a values file leaves <section>.enabled on (the default)."""
    settings = yaml.safe_load(values.read_text()) or {}
    return bool(settings.get(section, {}).get("enabled", True))


# A Kubernetes object name (DNS-1123 subdomain), as apimachinery checks it.
OBJECT_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

# Files named as no object may be, added to a copy of the chart, and the
# object names they must get.
ODD_FILES = {
    "files/prometheus-rules/SLO_availability.yml": ("PrometheusRule", "-slo-availability"),
    "files/dashboards/Status_Server.v2.json": ("ConfigMap", "-dashboard-status-server-v2"),
    "files/loki-rules/Team_A/monitor.yml": ("ConfigMap", "-loki-rules-team-a"),
}


def chart_with_odd_names(path: Path) -> Path:
    """A copy of the chart, links resolved, with the files of ODD_FILES
    added (copies of the repository's rule files and dashboard)."""
    chart = path / "statuswatch"
    shutil.copytree(CHART, chart, symlinks=False)
    sources = {"prometheus-rules": "server.yml", "dashboards": "status-server.json", "loki-rules": "fake/monitor.yml"}
    for name in ODD_FILES:
        kind = name.split("/")[1]
        target = chart / name
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(chart / "files" / kind / sources[kind], target)
    return chart
