"""make dist: the archive the brief asks for, with the Git history."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

from tests.stack import ROOT


def make_dist(repo: Path, archive: Path) -> subprocess.CompletedProcess[str]:
    """This checkout's make dist, run in repo."""
    return subprocess.run(
        ["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), "dist", f"DIST={archive}"],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    )


def test_dist_archives_a_clean_clone_with_history(tmp_path: Path) -> None:
    archive = tmp_path / "statuswatch.tar.gz"
    make_dist(ROOT, archive)
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        config = tar.extractfile("statuswatch/.git/config")
        assert config is not None
        git_config = config.read().decode()
    assert {"statuswatch/README.md", "statuswatch/docker-compose.yml", "statuswatch/.git/HEAD"} <= names
    assert not any(n.startswith(("statuswatch/.venv", "statuswatch/.cache", "statuswatch/bin/")) for n in names)
    assert "statuswatch/.env" not in names
    assert "[remote" not in git_config, "no origin pointing at the builder's checkout"
    assert str(ROOT) not in git_config


def test_dist_warns_about_uncommitted_changes(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(repo)], check=True)
    (repo / "README.md").write_text("changed\n")
    (repo / "notes.txt").write_text("new\n")
    result = make_dist(repo, tmp_path / "statuswatch.tar.gz")
    assert "make dist: warning: these changes are not committed" in result.stderr
    assert "README.md" in result.stderr
    assert "notes.txt" in result.stderr
    with tarfile.open(tmp_path / "statuswatch.tar.gz") as tar:
        readme = tar.extractfile("statuswatch/README.md")
        assert readme is not None
        assert readme.read() != b"changed\n"


def test_dist_is_quiet_when_everything_is_committed(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(repo)], check=True)
    assert "warning" not in make_dist(repo, tmp_path / "statuswatch.tar.gz").stderr
