"""Start, drive and read the processes the benchmarks measure: the server,
the client, blackbox_exporter and wrk. Every process started here is
stopped here, also on failure."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import requests

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Run:
    """What every measurement gets: the server binary, a scratch directory,
    and whether this is a smoke run (tiny counts, to prove the harness)."""

    binary: Path
    tmp: Path
    smoke: bool

    def size(self, full: int, smoke: int) -> int:
        return smoke if self.smoke else full


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("not ready in time")
        time.sleep(0.05)


class Server:
    """The server binary on free loopback ports. Its JSON log lines are read
    as they come (logs="read"), thrown away ("discard") or written to an open
    file, as a container's log would be."""

    def __init__(self, binary: Path, *args: str, logs: Literal["read", "discard"] | IO[bytes] = "read") -> None:
        api, metrics = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        self.url = "http://" + api
        self.metrics_url = f"http://{metrics}/metrics"
        stdout = {"read": subprocess.PIPE, "discard": subprocess.DEVNULL}[logs] if isinstance(logs, str) else logs
        self.proc = subprocess.Popen([str(binary), "-addr", api, "-metrics-addr", metrics, *args], stdout=stdout)
        self.lines: list[dict[str, Any]] = []
        if logs == "read":
            threading.Thread(target=self._read, daemon=True).start()
        try:
            wait_for(lambda: requests.get(self.url + "/healthz", timeout=1).ok)
        except RuntimeError:
            self.stop()
            raise

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(json.loads(raw))

    def requests(self) -> list[dict[str, Any]]:
        """The log lines of GET /status requests so far."""
        return [line for line in list(self.lines) if line.get("route") == "/status" and "status" in line]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@contextmanager
def server(binary: Path, *args: str, logs: Literal["read", "discard"] | IO[bytes] = "read") -> Iterator[Server]:
    s = Server(binary, *args, logs=logs)
    try:
        yield s
    finally:
        s.stop()


@contextmanager
def blackbox_exporter(tmp: Path) -> Iterator[str]:
    """blackbox_exporter with one GET module; yields its /probe URL."""
    config = tmp / "blackbox.yml"
    config.write_text(
        "modules:\n  http_get:\n    prober: http\n    timeout: 5s\n    http:\n"
        "      method: GET\n      valid_status_codes: [200]\n"
        "      preferred_ip_protocol: ip4\n      ip_protocol_fallback: false\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [blackbox_binary(), f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: requests.get(url + "/-/ready", timeout=1).ok)
        yield url + "/probe"
    finally:
        proc.terminate()
        proc.wait(10)


def blackbox_binary() -> str:
    for name in ("prometheus-blackbox-exporter", "blackbox_exporter"):
        if path := shutil.which(name):
            return path
    raise SystemExit("blackbox_exporter not found: make bench installs the Debian package")


def blackbox_probe(probe_url: str, target: str) -> float:
    """One probe through blackbox_exporter: its probe_duration_seconds, in ms."""
    text = requests.get(probe_url, params={"module": "http_get", "target": target}, timeout=10).text
    match = re.search(r"^probe_duration_seconds (\S+)$", text, re.M)
    assert match, text
    return float(match.group(1)) * 1000


def blackbox_pid(probe_url: str) -> int:
    port = probe_url.split(":")[2].split("/")[0]
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"pid=(\d+)", out)
    assert match, out
    return int(match.group(1))


@contextmanager
def client_process(*args: str) -> Iterator[subprocess.Popen[str]]:
    """python -m client with args, stopped at the end."""
    proc = subprocess.Popen([sys.executable, "-m", "client", *args], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


def records(proc: subprocess.Popen[str], event: str, count: int) -> list[dict[str, Any]]:
    """Read the client's records until count of event have come."""
    assert proc.stdout is not None
    found: list[dict[str, Any]] = []
    for raw in proc.stdout:
        record = json.loads(raw)
        if record["event"] == event:
            found.append(record)
            if len(found) == count:
                break
    return found


@contextmanager
def black_hole() -> Iterator[str]:
    """A Loki push URL that accepts connections and never answers."""
    sock = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stopping = threading.Event()

    def accept() -> None:
        while not stopping.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/loki/api/v1/push"
    finally:
        stopping.set()
        sock.close()
        for conn in held:
            conn.close()


@dataclass
class Usage:
    cpu_seconds: float
    peak_rss_mb: float


def usage(pid: int) -> Usage:
    """CPU time so far and peak resident memory of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    status = Path(f"/proc/{pid}/status").read_text()
    hwm = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    assert hwm
    return Usage(cpu, int(hwm.group(1)) / 1024)


@dataclass(frozen=True)
class WrkResult:
    requests: int
    per_second: float
    p99_ms: float


def wrk(url: str, seconds: int, connections: int = 8) -> WrkResult:
    """One wrk run, one thread."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    total = re.search(r"^\s+(\d+) requests in", out, re.M)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)$", out, re.M)
    assert total, out
    assert rps, out
    assert p99, out
    value, unit = p99.groups()
    return WrkResult(
        int(total.group(1)), float(rps.group(1)), float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    )
