"""make up, run against a stand-in docker in a copy of the repository: its
prerequisites are checked before anything is written, and .env gets two
random secrets from Python, never a half-written file."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.stack import ROOT

#: The commands make up's recipes need, and nothing else: no openssl.
TOOLS = ("sh", "python3", "mktemp", "mv", "rm", "find", "sed")

#: A docker whose compose plugin answers with $COMPOSE_VERSION and records
#: every call.
FAKE_DOCKER = """#!/bin/sh
echo "$@" >> "${0%/*}/docker.calls"
if [ "$1 $2" = "compose version" ]; then
  [ -n "$COMPOSE_VERSION" ] || { echo "docker: unknown command: docker compose" >&2; exit 1; }
  echo "$COMPOSE_VERSION"
fi
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The files make up reads, copied."""
    copy = tmp_path / "repo"
    copy.mkdir()
    shutil.copy(ROOT / "Makefile", copy)
    for included in re.findall(r"^-?include (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE):
        (copy / included).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / included, copy / included)
    for folder in ("prometheus", "loki", "tempo", "grafana"):
        shutil.copytree(ROOT / folder, copy / folder)
    return copy


def bin_dir(tmp_path: Path, docker: bool = True) -> Path:
    bin = tmp_path / "bin"
    bin.mkdir(exist_ok=True)
    for name in TOOLS:
        # The interpreter itself, not a wrapper such as pyenv's shim.
        found = os.path.realpath(sys.executable) if name == "python3" else shutil.which(name)
        assert found, name
        (bin / name).symlink_to(found)
    if docker:
        (bin / "docker").write_text(FAKE_DOCKER)
        (bin / "docker").chmod(0o755)
    assert shutil.which("openssl", path=str(bin)) is None
    return bin


def make(repo: Path, bin: Path, target: str, compose_version: str = "2.29.7") -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(bin), "COMPOSE_VERSION": compose_version, "HOME": str(repo)}
    return subprocess.run(
        [shutil.which("make") or "make", "--no-print-directory", target],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def docker_calls(bin: Path) -> list[str]:
    calls = bin / "docker.calls"
    return calls.read_text().splitlines() if calls.exists() else []


def test_up_writes_env_with_two_secrets_without_openssl(repo: Path, tmp_path: Path) -> None:
    bin = bin_dir(tmp_path)
    result = make(repo, bin, "up")
    assert result.returncode == 0, result.stderr
    env = dict(line.split("=", 1) for line in (repo / ".env").read_text().splitlines())
    assert re.fullmatch(r"[0-9a-f]{32}", env["GRAFANA_ADMIN_PASSWORD"])
    assert re.fullmatch(r"[0-9a-f]{64}", env["GRAFANA_SECRET_KEY"])
    assert stat.S_IMODE((repo / ".env").stat().st_mode) == 0o600
    assert docker_calls(bin)[-1] == "compose up -d --build"


def test_up_keeps_an_existing_env(repo: Path, tmp_path: Path) -> None:
    (repo / ".env").write_text("GRAFANA_ADMIN_PASSWORD=mine\n")
    result = make(repo, bin_dir(tmp_path), "up")
    assert result.returncode == 0, result.stderr
    assert (repo / ".env").read_text() == "GRAFANA_ADMIN_PASSWORD=mine\n"


def test_a_failed_secret_leaves_no_env(repo: Path, tmp_path: Path) -> None:
    bin = bin_dir(tmp_path)
    (bin / "python3").unlink()
    (bin / "python3").write_text("#!/bin/sh\necho GRAFANA_ADMIN_PASSWORD=\nexit 1\n")
    (bin / "python3").chmod(0o755)
    result = make(repo, bin, "up")
    assert result.returncode != 0
    assert not list(repo.glob(".env*")), "neither .env nor its temporary file"
    assert "compose up -d --build" not in docker_calls(bin)


@pytest.mark.parametrize(
    ("docker", "compose_version", "message"),
    [
        (False, "", "docker not found"),
        (True, "", "'docker compose' not found"),
        (True, "1.29.2", "Docker Compose 1.29.2 found, version 2 or later needed"),
    ],
)
def test_up_says_what_is_missing_before_writing_anything(
    repo: Path, tmp_path: Path, docker: bool, compose_version: str, message: str
) -> None:
    bin = bin_dir(tmp_path, docker=docker)
    result = make(repo, bin, "up", compose_version)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (repo / ".env").exists()
    assert "compose up -d --build" not in docker_calls(bin)


def test_up_accepts_a_v_prefixed_compose_version(repo: Path, tmp_path: Path) -> None:
    assert make(repo, bin_dir(tmp_path), "up", "v2.40.0").returncode == 0


def test_up_refuses_config_files_the_containers_cannot_read(repo: Path, tmp_path: Path) -> None:
    """Checked out with umask 077, the files are unreadable to the
    containers' users (65534, 10001, 472): Prometheus and Loki exit and
    everything else waits for them for ever."""
    (repo / "loki/loki.yml").chmod(0o600)
    (repo / "grafana/dashboards").chmod(0o700)
    bin = bin_dir(tmp_path)
    result = make(repo, bin, "up")
    assert result.returncode != 0
    assert "  loki/loki.yml\n" in result.stderr
    assert "  grafana/dashboards\n" in result.stderr
    assert "chmod -R a+rX prometheus loki tempo grafana" in result.stderr
    assert "compose up -d --build" not in docker_calls(bin)
