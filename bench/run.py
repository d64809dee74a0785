"""make bench: measure the monitor and the server side by side, in one run on
one machine, and write docs/benchmarks.md.

Absolute times on a shared machine are noise; what this reports are
differences and ratios measured in the same run: the client against
blackbox_exporter probing the same server, the instrumented server against
the same handler without telemetry. Nothing here fails on a number.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from client.probe import TWO_XX, probe  # noqa: E402 - after the path is set
from client.summary import percentile  # noqa: E402


@dataclass(frozen=True)
class Sizes:
    """How much each measurement does: the full run and a smoke run."""

    accuracy_probes: int  # per prober and delay
    rhythm_probes: int
    rhythm_interval: float
    cost_default_probes: int  # at the default cadence, a probe every 3 s
    cost_fast_probes: int  # at 20 probes/s
    wrk_seconds: int
    wrk_rounds: int
    scrape_requests: int


FULL = Sizes(100, 45, 1.0, 21, 1000, 8, 2, 100_000)
SMOKE = Sizes(5, 4, 0.2, 2, 20, 1, 1, 2_000)


# --- processes ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """The server binary on free loopback ports. With logs, its JSON log
    lines are collected as they come; without, they are thrown away."""

    def __init__(self, binary: Path, *args: str, logs: bool = True) -> None:
        api, metrics = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        self.url = "http://" + api
        self.metrics_url = f"http://{metrics}/metrics"
        self.proc = subprocess.Popen(
            [str(binary), "-addr", api, "-metrics-addr", metrics, *args],
            stdout=subprocess.PIPE if logs else subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[dict[str, Any]] = []
        if logs:
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
        return [line for line in list(self.lines) if line.get("route") == "/status"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@contextmanager
def server(binary: Path, *args: str, logs: bool = True) -> Iterator[Server]:
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


def blackbox_probe(probe_url: str, target: str) -> float:
    """One probe through blackbox_exporter: its probe_duration_seconds, in ms."""
    text = requests.get(probe_url, params={"module": "http_get", "target": target}, timeout=10).text
    match = re.search(r"^probe_duration_seconds (\S+)$", text, re.M)
    assert match, text
    return float(match.group(1)) * 1000


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


# --- statistics --------------------------------------------------------------


def nearest_rank(values: list[float], p: float) -> float:
    """The percentile as the client's summaries compute it."""
    value = percentile(sorted(values), p)
    assert value is not None
    return value


def ms(value: float) -> str:
    return f"{value:.2f}"


# --- the measurements -------------------------------------------------------


def accuracy(binary: Path, sizes: Sizes, tmp: Path) -> list[list[str]]:
    """duration_ms against the server's own handling time, for the client
    and blackbox_exporter probing the same server, turn about."""
    rows = []
    with blackbox_exporter(tmp) as probe_url:
        for delay in (0, 50, 200):
            with server(binary, "-delay", f"{delay}ms") as s:
                target = s.url + "/status"
                client, box = [], []
                for _ in range(sizes.accuracy_probes):
                    client.append(probe(target, 5.0, TWO_XX))
                    box.append(blackbox_probe(probe_url, target))
                wait_for(lambda: len(s.requests()) >= 2 * sizes.accuracy_probes)
                # The client's requests carry its trace IDs; the others are
                # blackbox_exporter's, in the order sent.
                handled = {line["trace_id"]: line["duration_ms"] for line in s.requests()}
                client_err = [r.duration_ms - handled.pop(r.trace_id) for r in client]
                box_err = [b - h for b, h in zip(box, handled.values(), strict=True)]
            for name, err in (("client (`duration_ms`)", client_err), ("blackbox_exporter", box_err)):
                rows.append([f"{delay} ms", name, ms(statistics.median(err)), ms(nearest_rank(err, 99)), ms(max(err))])
    return rows


def rhythm(binary: Path, sizes: Sizes) -> list[list[str]]:
    """Gaps between probe starts with the server flaky, and with Loki
    black-holed too."""
    rows = []
    interval = sizes.rhythm_interval
    timeout = min(2.0, 0.75 * interval)  # the client refuses a timeout as long as the interval
    with server(binary, "-flaky", "-max-delay", "500ms", logs=False) as s, black_hole() as loki:
        for name, extra in (("flaky server", []), ("flaky server, Loki black-holed", ["--loki-url", loki])):
            with client_process(
                "--target", s.url, "--interval", str(interval), "--timeout", str(timeout),
                "--flaky-interval", "0", "--summary-interval", "60", *extra,
            ) as proc:  # fmt: skip
                probes = records(proc, "probe", sizes.rhythm_probes + 1)
            starts = [datetime.fromisoformat(p["timestamp"]).timestamp() - p["duration_ms"] / 1000 for p in probes]
            gaps = [b - a for a, b in itertools.pairwise(starts)]
            deviation = [abs(g - interval) * 1000 for g in gaps]
            limit = interval + timeout + 0.5
            rows.append([
                name, f"{interval:g} s", str(len(gaps)), ms(statistics.median(deviation)), ms(max(deviation)),
                f"{max(gaps):.3f} s", "yes" if max(gaps) <= limit else "**no**",
            ])  # fmt: skip
    return rows


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


def cost(binary: Path, sizes: Sizes, tmp: Path) -> list[list[str]]:
    """CPU per 1,000 probes and peak memory of the client and of
    blackbox_exporter, each probing the same steady server at the same rate.
    CPU is counted from the first probe on, so start-up is left out."""
    rows = []
    with server(binary, logs=False) as s, blackbox_exporter(tmp) as probe_url:
        target = s.url + "/status"
        for cadence, interval, probes in (
            ("default (every 3 s)", 3.0, sizes.cost_default_probes),
            ("20 probes/s", 0.05, sizes.cost_fast_probes),
        ):
            timeout = min(2.0, 0.8 * interval)  # the client refuses a timeout as long as the interval
            with client_process("--target", s.url, "--interval", str(interval), "--timeout", str(timeout),
                                "--flaky-interval", "0", "--summary-interval", "60") as proc:  # fmt: skip
                records(proc, "probe", 1)
                client_start = usage(proc.pid)
                box_pid = blackbox_pid(probe_url)
                began = time.monotonic()
                blackbox_probe(probe_url, target)
                box_start = usage(box_pid)
                for n in range(1, probes):  # on the client's schedule: one every interval
                    time.sleep(max(0.0, began + n * interval - time.monotonic()))
                    blackbox_probe(probe_url, target)
                client_probes = 1 + len(records(proc, "probe", probes - 1))
                client_end, box_end = usage(proc.pid), usage(box_pid)
            for name, start, end, n in (
                ("client", client_start, client_end, client_probes),
                ("blackbox_exporter", box_start, box_end, probes),
            ):
                per_1000 = (end.cpu_seconds - start.cpu_seconds) / max(1, n - 1) * 1000
                rows.append([cadence, name, str(n), f"{per_1000:.2f}", f"{end.peak_rss_mb:.1f}"])
    return rows


def blackbox_pid(probe_url: str) -> int:
    port = probe_url.split(":")[2].split("/")[0]
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"pid=(\d+)", out)
    assert match, out
    return int(match.group(1))


def throughput(binary: Path, sizes: Sizes) -> tuple[list[list[str]], float]:
    """GET /status under wrk: the instrumented server against the same
    handler with -telemetry=false, rounds alternating."""
    results: dict[str, list[tuple[float, float]]] = {"instrumented": [], "without telemetry": []}
    for _ in range(sizes.wrk_rounds):
        for name, args in (("instrumented", []), ("without telemetry", ["-telemetry=false"])):
            with server(binary, *args, logs=False) as s:
                results[name].append(wrk(s.url + "/status", sizes.wrk_seconds))
    rows = []
    best = {}
    for name, runs in results.items():
        rps = statistics.median(r[0] for r in runs)
        p99 = statistics.median(r[1] for r in runs)
        best[name] = rps
        rows.append([name, f"{rps:,.0f}", ms(p99)])
    ratio = best["instrumented"] / best["without telemetry"]
    return rows, ratio


def wrk(url: str, seconds: int) -> tuple[float, float]:
    """requests/s and p99 latency in ms of one wrk run (1 thread, 8 connections)."""
    out = subprocess.run(
        ["wrk", "-t1", "-c8", f"-d{seconds}s", "--latency", url], capture_output=True, text=True, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)$", out, re.M).groups()  # type: ignore[union-attr]
    return rps, float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def scrape_cost(binary: Path, sizes: Sizes) -> list[list[str]]:
    """/metrics after one request and after many with every status code."""
    rows = []
    with server(binary, "-flaky", "-max-delay", "0", logs=False) as s:
        requests.get(s.url + "/status", timeout=5)
        rows.append(["1", *metrics_size(s.metrics_url)])
        while (total := requests_counted(s.metrics_url)) < sizes.scrape_requests:
            subprocess.run(["wrk", "-t1", "-c8", "-d1s", s.url + "/status"], capture_output=True, check=True)
        rows.append([f"{total:,}", *metrics_size(s.metrics_url)])
    return rows


def requests_counted(metrics_url: str) -> int:
    """GET /status requests the server has counted."""
    text = requests.get(metrics_url, timeout=5).text
    pattern = r'^http_server_request_duration_seconds_count\{[^}]*http_route="/status"[^}]*\} (\S+)$'
    return int(sum(float(v) for v in re.findall(pattern, text, re.M)))


def metrics_size(metrics_url: str) -> list[str]:
    """Bytes of both expositions, samples in all and in the request
    histogram, and the status codes it has seen for GET /status."""
    text = requests.get(metrics_url, timeout=5)
    om = requests.get(metrics_url, headers={"Accept": "application/openmetrics-text; version=1.0.0"}, timeout=5)
    samples = [line for line in text.text.splitlines() if line and not line.startswith("#")]
    histogram = [line for line in samples if line.startswith("http_server_request_duration_seconds")]
    codes = {
        re.search(r'http_response_status_code="(\d+)"', line).group(1)  # type: ignore[union-attr]
        for line in histogram
        if 'http_route="/status"' in line
    }
    return [
        f"{len(text.content):,}",
        f"{len(om.content):,}",
        f"{len(samples):,}",
        f"{len(histogram):,}",
        str(len(codes)),
    ]


# --- the report ----------------------------------------------------------------


def machine() -> list[list[str]]:
    cpu = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    os_name = re.search(r'^PRETTY_NAME="(.+)"$', Path("/etc/os-release").read_text(), re.M)

    def version(*cmd: str) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        except OSError:
            return "not found"
        return (out.stdout or out.stderr).strip().splitlines()[0]

    return [
        ["CPU", f"{cpu.group(1) if cpu else platform.processor()}, {os.cpu_count()} logical CPUs"],
        ["OS", f"{os_name.group(1) if os_name else platform.system()}, kernel {platform.release()}"],
        ["Go", version("go", "version")],
        ["Python", platform.python_version()],
        ["blackbox_exporter", version(blackbox_binary(), "--version")],
        ["wrk", version("wrk", "--version")],
        ["Commit", version("git", "-C", str(ROOT), "describe", "--always", "--dirty")],
    ]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def report(sizes: Sizes, binary: Path) -> str:
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        accuracy_rows = accuracy(binary, sizes, tmp)
        rhythm_rows = rhythm(binary, sizes)
        cost_rows = cost(binary, sizes, tmp)
        throughput_rows, ratio = throughput(binary, sizes)
        scrape_rows = scrape_cost(binary, sizes)
    took = time.monotonic() - started

    # Read the rows back by (condition, prober) for the sentences under each table.
    acc = {(r[0], r[1].split()[0]): (float(r[2]), float(r[3])) for r in accuracy_rows}
    delays = sorted({r[0] for r in accuracy_rows}, key=lambda d: int(d.split()[0]))
    median_gap = [acc[(d, "client")][0] - acc[(d, "blackbox_exporter")][0] for d in delays]
    p99_gap = [acc[(d, "client")][1] - acc[(d, "blackbox_exporter")][1] for d in delays]
    accuracy_goal = all(gap <= 1 for gap in p99_gap)
    cpu = {(r[0], r[1]): float(r[3]) for r in cost_rows}
    cadences = list(dict.fromkeys(r[0] for r in cost_rows))
    cpu_ratios = ", ".join(
        f"{cpu[(c, 'client')] / cpu[(c, 'blackbox_exporter')]:.1f}x at {c}"
        if cpu[(c, "blackbox_exporter")]
        else f"an unmeasurable multiple (blackbox_exporter below one 10 ms tick) at {c}"
        for c in cadences
    )
    rps = {r[0]: float(r[1].replace(",", "")) for r in throughput_rows}
    extra_us = (1 / rps["instrumented"] - 1 / rps["without telemetry"]) * 1e6
    rhythm_ok = all(r[-1] == "yes" for r in rhythm_rows)

    return f"""# Benchmarks

Measured by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {took:.0f} s, every figure from
this one run on one machine. Absolute times on a shared machine are noise: read the
differences and ratios, which were measured side by side. Nothing here fails a build.

{table(["Machine", ""], machine())}

## 1. How accurate is `duration_ms`?

The server waits a fixed, known time before each answer (`-delay`) and logs how long it
took to handle each request. The client's `probe()` (the code the monitor runs) and
blackbox_exporter (`probe_duration_seconds`) probe it {sizes.accuracy_probes} times each,
turn about; each measurement is compared with the server's own time for that request (the
client's by trace ID, blackbox_exporter's in order). The error is what the prober adds:
connecting, sending, reading, its own overhead.

{table(["Server delay", "Prober", "Median error (ms)", "p99 error (ms)", "Max error (ms)"], accuracy_rows)}

The client's median error is {min(median_gap):+.2f} to {max(median_gap):+.2f} ms from
blackbox_exporter's, its p99 {min(p99_gap):+.2f} to {max(p99_gap):+.2f} ms. Goal: the client's p99
error no worse than blackbox_exporter's + 1 ms: **{"met" if accuracy_goal else "not met"}** in this run.
Both errors grow with the server's delay: a process that waited longer for its answer takes
longer to wake up and finish on this virtual machine, and the client, interpreted Python,
does more work after the last byte (parsing the answer in http.client and requests) than
blackbox_exporter's compiled Go.

## 2. Does the loop keep its rhythm?

The real client (`python -m client`) probes a flaky server (random 0-500 ms delays) every
{sizes.rhythm_interval:g} s with a 2 s timeout; the gaps between probe starts (record time minus
`duration_ms`) are compared with the interval. Then the same with `--loki-url` pointing at a
server that accepts connections and never answers.

{
        table(
            [
                "Scenario",
                "Interval",
                "Gaps",
                "Median deviation (ms)",
                "Max deviation (ms)",
                "Largest gap",
                "Within interval + timeout + 0.5 s",
            ],
            rhythm_rows,
        )
    }

Goal: no gap above interval + timeout + 0.5 s: **{"met" if rhythm_ok else "not met"}**. The loop
pins each run to the previous start, so a slow answer does not push the next probe back, and
a black-holed Loki costs the probes nothing: its pushes wait on their own thread.

## 3. What does the client cost?

The real client and blackbox_exporter (driven by `/probe` requests at the same rate) probe the
same steady server side by side. CPU is user + system time from `/proc/<pid>/stat` (10 ms
ticks), counted from each one's first probe on (start-up left out); peak memory is `VmHWM`.
blackbox_exporter's figure does not include whoever calls its `/probe` (Prometheus, usually).

{table(["Cadence", "Prober", "Probes", "CPU seconds per 1,000 probes", "Peak RSS (MiB)"], cost_rows)}

The client uses {cpu_ratios} blackbox_exporter's CPU. Per probe both cost more at the slow
cadence, where their idle work (timers, runtime housekeeping) is shared by fewer probes and
each probe runs on a CPU gone cold.

## 4. What does the server's telemetry cost?

`wrk -t1 -c8 -d{sizes.wrk_seconds}s --latency` against `GET /status` (flaky off), {sizes.wrk_rounds} round(s) each,
alternating: the server as shipped (a span, the request histogram and a JSON log line per request)
against the same handler with `-telemetry=false`. Medians of the rounds.

{table(["Server", "Requests/s", "p99 latency (ms)"], throughput_rows)}

Instrumented throughput is **{ratio:.0%}** of the bare handler's: telemetry costs **{1 - ratio:.0%}**
of the throughput, about {extra_us:.0f} µs per request at saturation (goal: under 15 %:
**{"met" if 1 - ratio < 0.15 else "not met"}**). The handler itself does almost nothing, so the
instrumentation is most of the work: a CPU profile under this load puts it in the JSON log line
written per request, otelhttp's histogram recording (attribute sets, exemplars) and span
bookkeeping. At the monitor's rate of one request every few seconds it is invisible; a server
taking thousands of requests a second would sample its request logs.

## 5. How big is a scrape?

The server in flaky mode without delays answers every status code at random; `/metrics` is
read after one request and after at least {sizes.scrape_requests:,} (driven by wrk).

{
        table(
            [
                "Requests",
                "Text bytes",
                "OpenMetrics bytes",
                "Samples",
                "Request-histogram samples",
                "Status codes seen",
            ],
            scrape_rows,
        )
    }

The series are bounded by the label values the server allows (method, route, status code):
once every code has been answered, more requests add no series, and a scrape stays near
this size however long the server runs. (Of the 61 codes, 100, 102 and 103 never show: Go
sends them as interim answers before a final 200, which is what is counted.)

## Reproduce

```sh
make bench   # installs wrk and blackbox_exporter (Debian packages) if missing
```
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs/benchmarks.md")
    parser.add_argument("--server", type=Path, default=ROOT / "bin/server", help="the server binary")
    parser.add_argument("--smoke", action="store_true", help="tiny counts: prove the harness works")
    args = parser.parse_args(argv)
    text = report(SMOKE if args.smoke else FULL, args.server)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
