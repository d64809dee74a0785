"""The container's health check: alive while probes keep finishing."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from client.healthcheck import main
from tests.conftest import ROOT, ClientProcess, GoServer


def test_fresh_heartbeat_is_healthy(tmp_path: Path) -> None:
    beat = tmp_path / "beat"
    beat.touch()
    assert main([], {"HEARTBEAT_FILE": str(beat)}) == 0


def test_stale_heartbeat_is_unhealthy(tmp_path: Path) -> None:
    beat = tmp_path / "beat"
    beat.touch()
    env = {"HEARTBEAT_FILE": str(beat), "PROBE_INTERVAL": "3", "PROBE_TIMEOUT": "2"}
    assert main([], env, now=lambda: time.time() + 14) == 0  # limit: 2 x (3 + 2) + 5 = 15 s
    assert main([], env, now=lambda: time.time() + 16) == 1


def test_missing_or_unset_heartbeat_is_unhealthy(tmp_path: Path) -> None:
    assert main([], {"HEARTBEAT_FILE": str(tmp_path / "never")}) == 1
    assert main([], {}) == 1
    assert main([], {"HEARTBEAT_FILE": str(tmp_path), "PROBE_INTERVAL": "x"}) == 1


def test_the_loop_beats(tmp_path: Path, go_server: Callable[..., GoServer], client: ClientProcess) -> None:
    beat = tmp_path / "beat"
    server = go_server()
    client("--target", server.url, "--interval", "0.2", "--timeout", "0.1", "--heartbeat-file", str(beat))
    deadline = time.monotonic() + 10
    while not (beat.exists() and beat.stat().st_mtime > time.time() - 1):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first = beat.stat().st_mtime
    while beat.stat().st_mtime == first:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert main([], {"HEARTBEAT_FILE": str(beat), "PROBE_INTERVAL": "0.2", "PROBE_TIMEOUT": "0.1"}) == 0


def test_flags_come_before_the_environment(tmp_path: Path) -> None:
    beat = tmp_path / "beat"
    beat.touch()
    env = {"HEARTBEAT_FILE": str(tmp_path / "never"), "PROBE_INTERVAL": "3", "PROBE_TIMEOUT": "2"}
    assert main([], env) == 1
    assert main(["--heartbeat-file", str(beat)], env) == 0
    later = lambda: time.time() + 14  # noqa: E731
    assert main(["--heartbeat-file", str(beat)], env, now=later) == 0  # limit 15 s
    assert main(["--heartbeat-file", str(beat), "--interval", "2", "--timeout", "1"], env, now=later) == 1  # 11 s


def test_bad_flags_are_unhealthy_and_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--heartbeat-file", str(tmp_path), "--timeout", "x"], {}) == 1
    assert "invalid --timeout" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["--bogus"], {})
    assert exited.value.code == 1  # not argparse's 2, which Docker reserves
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_help_and_a_cheap_import() -> None:
    """The check runs every few seconds: --help works, and it imports
    neither requests nor the OpenTelemetry SDK nor idna (it took 0.17 CPU
    seconds and 29 MB when it did)."""
    shown = subprocess.run([sys.executable, "-m", "client.healthcheck", "--help"], cwd=ROOT,
                           capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    assert "--heartbeat-file" in shown.stdout
    assert "[HEARTBEAT_FILE]" in shown.stdout
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, client.healthcheck; print(' '.join(sorted(sys.modules)))"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=True,
    ).stdout.split()  # fmt: skip
    heavy = {"requests", "urllib3", "idna", "opentelemetry", "schedule", "client.probe", "client.transport"}
    assert not heavy & set(loaded)
