"""The container's health check: alive while probes keep finishing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from client.healthcheck import main
from tests.conftest import ClientProcess, GoServer


def test_fresh_heartbeat_is_healthy(tmp_path: Path) -> None:
    beat = tmp_path / "beat"
    beat.touch()
    assert main({"HEARTBEAT_FILE": str(beat)}) == 0


def test_stale_heartbeat_is_unhealthy(tmp_path: Path) -> None:
    beat = tmp_path / "beat"
    beat.touch()
    env = {"HEARTBEAT_FILE": str(beat), "PROBE_INTERVAL": "3", "PROBE_TIMEOUT": "2"}
    assert main(env, now=lambda: time.time() + 14) == 0  # limit: 2 x (3 + 2) + 5 = 15 s
    assert main(env, now=lambda: time.time() + 16) == 1


def test_missing_or_unset_heartbeat_is_unhealthy(tmp_path: Path) -> None:
    assert main({"HEARTBEAT_FILE": str(tmp_path / "never")}) == 1
    assert main({}) == 1
    assert main({"HEARTBEAT_FILE": str(tmp_path), "PROBE_INTERVAL": "x"}) == 1


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
    assert main({"HEARTBEAT_FILE": str(beat), "PROBE_INTERVAL": "0.2", "PROBE_TIMEOUT": "0.1"}) == 0
