"""JSON schemas for kubeconform, made offline from what make test installs:
the Kubernetes schemas of PyPI kubernetes-validate and the prometheus-operator
CRDs of its Go module."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

# The two CRDs the chart renders objects of.
CRD_FILES = ("monitoring.coreos.com_servicemonitors.yaml", "monitoring.coreos.com_prometheusrules.yaml")


def source_dir(env: str, what: str) -> Path:
    """A directory make test installs, named by $env; missing, the test
    fails under make test and is skipped elsewhere."""
    value = os.environ.get(env)
    if value and Path(value).is_dir():
        return Path(value)
    message = f"{what} not found: set {env} or run make test, which installs it"
    if os.environ.get("REQUIRE_STACK_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def kubernetes_schemas(source: Path, out: Path) -> str:
    """Copies the strict schemas with their $refs made absolute file://
    URLs (kubeconform resolves a ref like /api/_definitions.json against
    the web, not the file), and returns kubeconform's -schema-location."""
    out.mkdir(parents=True)
    definitions = (out / "_definitions.json").as_uri()
    for path in source.glob("*.json"):
        text = path.read_text().replace('"/api/_definitions.json#', f'"{definitions}#')
        (out / path.name).write_text(text)
    return out.as_uri() + "/{{ .ResourceKind }}{{ .KindSuffix }}.json"


def crd_schemas(source: Path, out: Path) -> str:
    """Writes each served version of the CRDs as a JSON schema and returns
    kubeconform's -schema-location for them."""
    for name in CRD_FILES:
        crd = yaml.safe_load((source / name).read_text())
        spec = crd["spec"]
        for version in spec["versions"]:
            schema = strict(version["schema"]["openAPIV3Schema"])
            kind = spec["names"]["kind"].lower()
            path = out / spec["group"] / f"{kind}_{version['name']}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(schema))
    return out.as_uri() + "/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI v3 schema of a CRD as a JSON schema that refuses unknown
    fields, as the API server's strict field validation does."""
    out = {key: value for key, value in schema.items() if not key.startswith("x-kubernetes-")}
    if "properties" in out:
        out["properties"] = {name: strict(sub) for name, sub in out["properties"].items()}
        if "additionalProperties" not in out and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = strict(out["additionalProperties"])
    if "items" in out:
        out["items"] = strict(out["items"])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in out:
            out[key] = [strict(sub) for sub in out[key]]
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    return out
