"""python -m client as a process: exit codes, and SIGTERM stops it within
the probe timeout + 1 s, logs flushed."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.conftest import ROOT, ClientProcess, FaultServer, GoServer, read_request


def wait_for(lines: list[dict[str, Any]], event: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not any(line["event"] == event for line in lines):
        assert time.monotonic() < deadline, f"no {event} record within {timeout} s"
        time.sleep(0.01)


def stop_and_time(proc: subprocess.Popen[str]) -> float:
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(15)
    return time.monotonic() - began


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(go_server: Callable[..., GoServer], sig: signal.Signals, client: ClientProcess) -> None:
    server = go_server()
    proc, lines, reader = client("--target", server.url, "--interval", "0.2", "--timeout", "0.1")
    wait_for(lines, "probe")
    proc.send_signal(sig)
    assert proc.wait(5) == 0
    reader.join(5)
    assert lines[0]["event"] == "started"
    assert lines[-1]["event"] == "stopped"
    assert proc.stderr is not None
    assert proc.stderr.read() == ""


def test_sigterm_during_a_hanging_probe(fault_server: Callable[..., FaultServer], client: ClientProcess) -> None:
    in_flight = threading.Event()

    def hang(conn: socket.socket) -> None:
        read_request(conn)
        in_flight.set()
        conn.recv(1)

    server = fault_server(hang)
    proc, lines, reader = client("--target", server.url, "--timeout", "2", "--interval", "3", "--flaky-interval", "0")
    assert in_flight.wait(10)
    took = stop_and_time(proc)
    assert proc.returncode == 0
    reader.join(5)
    # The probe in flight finishes within its budget; no job starts after the signal.
    assert [line["event"] for line in lines] == ["started", "probe", "health_changed", "stopped"]
    assert took <= 2 + 5, f"stopping took {took:.2f} s"  # the budget, and a generous margin for a busy machine


def test_sigterm_with_loki_black_holed(
    fault_server: Callable[..., FaultServer], go_server: Callable[..., GoServer], client: ClientProcess
) -> None:
    accepted = threading.Event()

    def blackhole(conn: socket.socket) -> None:
        accepted.set()
        conn.recv(1 << 20)
        conn.recv(1)  # never answers

    loki = fault_server(blackhole)
    server = go_server()
    proc, lines, reader = client("--target", server.url, "--loki-url", loki.url + "/loki/api/v1/push", "--timeout", "1")
    assert accepted.wait(10)
    took = stop_and_time(proc)
    assert proc.returncode == 0
    assert took <= 1 + 1 + 3 + 3 + 0.5, f"stopping took {took:.2f} s"  # probe, loop, drain, one push
    reader.join(5)
    assert lines[-1]["event"] == "loki_shipping"
    assert lines[-1]["state"] == "stopped"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "-1"], "invalid --interval"),
        (["--int", "1"], "unrecognized arguments: --int"),
        (["--target", "http://.invalid"], "invalid --target"),
        (["--loki-tenant", "prod|staging"], "invalid --loki-tenant: 'prod|staging' is not a Loki tenant ID"),
        (["--timeout", "5", "--interval", "4"], "--timeout (5 s) is not shorter than --interval (4 s)"),
    ],
)
def test_bad_option_exits_2(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "client", *args], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_started_lists_every_option_and_no_password(go_server: Callable[..., GoServer], client: ClientProcess) -> None:
    server = go_server()
    target = server.url.replace("http://", "http://monitor:s3cret@")
    loki = "http://u:hush@127.0.0.1:9/push"
    proc, lines, reader = client("--target", target, "--interval", "0.3", "--timeout", "0.2",
                                 "--success-codes", "200-204,304", "--loki-url", loki,
                                 "--loki-tenant", "prod")  # fmt: skip
    wait_for(lines, "probe")
    stop_and_time(proc)
    reader.join(5)
    assert lines[0] == lines[0] | {
        "event": "started",
        "target": server.url.replace("http://", "http://monitor:***@"),
        "interval": 0.3,
        "timeout": 0.2,
        "flaky_interval": 10.0,
        "summary_interval": 30.0,
        "success_codes": "200-204,304",
        "log_format": "json",
        "loki_url": "http://u:***@127.0.0.1:9/push",
        "heartbeat_file": None,
        "loki_tenant": "prod",
    }
    probe = next(line for line in lines if line["event"] == "probe")
    assert probe["endpoint"] == server.url.replace("http://", "http://monitor:***@") + "/status"
    assert probe["success"], probe
    assert not [line for line in lines if "s3cret" in str(line) or "hush" in str(line)]


def test_help_exits_0() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "client", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0
    assert "--loki-url" in result.stdout


def test_a_closed_stdout_stops_the_client_as_unix_tools_stop(go_server: Callable[..., GoServer]) -> None:
    """python -m client | head -1: the reader goes away after one line; the
    client stops promptly, exits 141 (128 + SIGPIPE, what a shell shows for
    `yes | head -1`) and prints nothing on stderr."""
    server = go_server()
    proc = subprocess.Popen(
        [sys.executable, "-m", "client", "--target", server.url, "--interval", "0.1", "--timeout", "0.05"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    try:
        assert '"event": "started"' in proc.stdout.readline()
        proc.stdout.close()
        assert proc.wait(15) == 141
    finally:
        proc.kill()
        proc.wait(10)
    assert proc.stderr.read() == ""


def test_stopping_restores_the_flaky_mode_it_left_on(go_server: Callable[..., GoServer], client: ClientProcess) -> None:
    server = go_server()
    proc, lines, reader = client("--target", server.url, "--interval", "2", "--timeout", "0.5",
                                 "--flaky-interval", "1")  # fmt: skip
    wait_for(lines, "flaky_toggle")  # at 1 s; the next one is due at 2 s
    stop_and_time(proc)
    assert proc.returncode == 0
    reader.join(5)
    assert requests.get(server.url + "/flaky", timeout=5).json() == {"flaky": False}
    toggles = [line for line in lines if line["event"] == "flaky_toggle"]
    assert [t["restore"] for t in toggles] == [False] * (len(toggles) - 1) + [toggles[-1]["restore"]]
    if toggles[-1]["restore"]:
        assert toggles[-2]["flaky"] is True, toggles
        assert toggles[-1]["flaky"] is False, toggles
        assert "restoring flaky mode at stop" in toggles[-1]["message"]
        assert "flaky mode turned back off" in lines[-1]["message"]
    else:
        assert toggles[-1]["flaky"] is False, toggles  # left off: nothing to restore
