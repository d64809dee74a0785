"""The Helm chart under test, its values matrix and negative cases, and
rendering it with a real Helm (make test builds one)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.stack import ROOT, tool

CHART = ROOT / "deploy/helm/statuswatch"
RELEASE = "sw"
NAMESPACE = "statuswatch"
# The Kubernetes version the schemas and the API server are of.
KUBE_VERSION = "v1.37.2"
MONITORING_API = "monitoring.coreos.com/v1"

# What tiers 1 and 2 render: each ci/*-values.yaml, with and without the
# prometheus-operator CRDs served (tier 3's API server serves them).
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
MATRIX = [(values, crds) for values in CI_VALUES for crds in (False, True)]
MATRIX_IDS = [f"{values.name.removesuffix('-values.yaml')}-{'crds' if crds else 'nocrds'}" for values, crds in MATRIX]

# Values the schema must refuse; each file's first line says what the error
# names ("# rejected: <word>").
BAD_VALUES = sorted((ROOT / "tests/helm/bad-values").glob("*.yaml"))

Manifest = list[dict[str, Any]]


def helm() -> str:
    return tool("HELM", "helm")


def rejected_word(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# rejected: "), f"{path}: the first line must be '# rejected: <word>'"
    return first.removeprefix("# rejected: ").strip()


def template_args(values: Path | None = None, crds: bool = False, chart: Path = CHART) -> list[str]:
    args = [helm(), "template", RELEASE, str(chart), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION]
    if values is not None:
        args += ["--values", str(values)]
    if crds:
        args += ["--api-versions", MONITORING_API]
    return args


def run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def render(values: Path | None = None, crds: bool = False, chart: Path = CHART) -> Manifest:
    """The objects helm template renders, hooks (the test pod) included."""
    out = run(template_args(values, crds, chart))
    assert out.returncode == 0, out.stderr
    return parse(out.stdout)


def parse(text: str) -> Manifest:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def find(manifest: Manifest, kind: str, name_suffix: str = "") -> dict[str, Any]:
    matches = [d for d in manifest if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]
    assert len(matches) == 1, (
        f"expected one {kind} named *{name_suffix}, got {[d['metadata']['name'] for d in matches]}"
    )
    return matches[0]


def kinds(manifest: Manifest) -> list[str]:
    return sorted(d["kind"] for d in manifest)


def container_env(manifest: Manifest, component: str) -> dict[str, str]:
    deployment = find(manifest, "Deployment", f"-{component}")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def write_manifest(path: Path, manifest: Manifest) -> Path:
    path.write_text(yaml.safe_dump_all(manifest, sort_keys=False))
    return path


def enabled(values: Path, section: str) -> bool:
    """Whether a values file leaves <section>.enabled on (the default)."""
    settings = yaml.safe_load(values.read_text()) or {}
    return bool(settings.get(section, {}).get("enabled", True))
