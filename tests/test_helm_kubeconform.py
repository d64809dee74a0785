"""Tier 2 of the Helm chart's checks: kubeconform -strict validates every
rendered object against the Kubernetes 1.37 schemas and the
prometheus-operator CRD schemas, offline, and refuses broken objects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helm.chart import (
    BREAKAGES,
    LIMITS_BELOW_REQUESTS,
    MATRIX,
    MATRIX_IDS,
    Breakage,
    Manifest,
    render,
    run,
    write_manifest,
)
from tests.helm.schemas import crd_schemas, kubernetes_schemas, source_dir
from tests.stack import tool


@pytest.fixture(scope="session")
def kubeconform(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """kubeconform's command line, with only local schemas."""
    binary = tool("KUBECONFORM", "kubeconform")
    k8s = source_dir("KUBERNETES_SCHEMAS", "the Kubernetes JSON schemas of kubernetes-validate")
    crds = source_dir("PROMETHEUS_OPERATOR_CRDS", "the prometheus-operator CRDs")
    out = tmp_path_factory.mktemp("schemas")
    return [
        binary,
        "-strict",
        "-summary",
        "-output",
        "json",
        "-schema-location",
        kubernetes_schemas(k8s, out / "kubernetes"),
        "-schema-location",
        crd_schemas(crds, out / "crds"),
    ]


def validate(kubeconform: list[str], path: Path) -> tuple[int, dict[str, object]]:
    out = run([*kubeconform, str(path)])
    report: dict[str, object] = json.loads(out.stdout)
    return out.returncode, report


@pytest.mark.parametrize(("values", "crds"), MATRIX, ids=MATRIX_IDS)
def test_every_object_is_valid(kubeconform: list[str], tmp_path: Path, values: Path, crds: bool) -> None:
    manifest = render(values, crds)
    code, report = validate(kubeconform, write_manifest(tmp_path / "manifest.yaml", manifest))
    assert code == 0, report
    # No object is skipped for want of a schema: each was checked.
    assert report["summary"] == {"valid": len(manifest), "invalid": 0, "errors": 0, "skipped": 0}


@pytest.fixture(scope="module")
def full_manifest() -> Manifest:
    return render(crds=True)


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda b: b.name)
def test_broken_object_is_refused(
    kubeconform: list[str], tmp_path: Path, full_manifest: Manifest, breakage: Breakage
) -> None:
    broken = breakage.apply(full_manifest)
    code, report = validate(kubeconform, write_manifest(tmp_path / "broken.yaml", [broken]))
    assert code != 0
    assert report["summary"] == {"valid": 0, "invalid": 1, "errors": 0, "skipped": 0}, report
    assert breakage.word in json.dumps(report["resources"]), report


def test_limits_below_requests_pass_the_schemas(kubeconform: list[str], tmp_path: Path) -> None:
    """What schemas cannot see: the API server refuses these values
    (tests/test_helm_apiserver.py), kubeconform takes them."""
    manifest = render(LIMITS_BELOW_REQUESTS)
    code, report = validate(kubeconform, write_manifest(tmp_path / "manifest.yaml", manifest))
    assert code == 0, report
