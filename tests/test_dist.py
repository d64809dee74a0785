"""make dist: the archive the brief asks for, with the Git history."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

from tests.stack import ROOT


def test_dist_archives_a_clean_clone_with_history(tmp_path: Path) -> None:
    archive = tmp_path / "statuswatch.tar.gz"
    subprocess.run(
        ["make", "--no-print-directory", "dist", f"DIST={archive}"], cwd=ROOT, check=True, capture_output=True
    )
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"statuswatch/README.md", "statuswatch/docker-compose.yml", "statuswatch/.git/HEAD"} <= names
    assert not any(n.startswith(("statuswatch/.venv", "statuswatch/.cache", "statuswatch/bin/")) for n in names)
    assert "statuswatch/.env" not in names
