"""The chart's metadata: Chart.yaml for Artifact Hub, its changelog, and a
README that helm-docs makes from values.yaml's "# --" comments."""

from __future__ import annotations

import base64
import re

import yaml

from tests.helm.chart import CHART, HELM_DOCS_ARGS, helm, run
from tests.stack import tool

CHART_YAML = yaml.safe_load((CHART / "Chart.yaml").read_text())


def test_lint_says_nothing_at_all() -> None:
    """Not even the INFO about a missing icon."""
    out = run([helm(), "lint", "--strict", str(CHART)])
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[INFO]" not in out.stdout, out.stdout
    assert "[WARNING]" not in out.stdout, out.stdout


def test_chart_yaml_has_what_artifact_hub_shows() -> None:
    assert CHART_YAML["home"].startswith("https://")
    assert CHART_YAML["sources"]
    icon = CHART_YAML["icon"]
    assert icon.startswith("data:image/svg+xml;base64,")
    assert base64.b64decode(icon.split(",", 1)[1]).startswith(b"<svg ")
    annotations = CHART_YAML["annotations"]
    changes = yaml.safe_load(annotations["artifacthub.io/changes"])
    assert {c["kind"] for c in changes} <= {"added", "changed", "deprecated", "removed", "fixed", "security"}
    images = yaml.safe_load(annotations["artifacthub.io/images"])
    assert {i["image"] for i in images} == {
        f"statuswatch/{name}:{CHART_YAML['appVersion']}" for name in ("server", "client")
    }


def test_changelog_starts_with_this_version() -> None:
    headings = re.findall(r"^## (\S+)$", (CHART / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert headings[0] == CHART_YAML["version"], "CHANGELOG.md has no entry for Chart.yaml's version"


def test_readme_is_what_helm_docs_makes() -> None:
    """make helm-docs writes it; edit values.yaml's comments and rerun."""
    out = run([tool("HELM_DOCS", "helm-docs"), "--chart-search-root", str(CHART), *HELM_DOCS_ARGS, "--dry-run"])
    assert out.returncode == 0, out.stderr
    assert out.stdout == (CHART / "README.md").read_text(), "deploy/helm/statuswatch/README.md is stale: make helm-docs"


def test_every_value_is_documented() -> None:
    rows = [line for line in (CHART / "README.md").read_text().splitlines() if line.startswith("| ") and "`" in line]
    assert rows
    undocumented = [row.split(" | ")[0].removeprefix("| ") for row in rows if row.rstrip().endswith("|  |")]
    assert undocumented == [], "values without a '# --' comment"
