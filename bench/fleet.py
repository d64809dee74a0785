"""Table 6: many targets on one loop. The client's fleet probes 10, 100 and
1,000 loopback targets every 15 s, a tenth of them hanging until the
timeout; then blackbox_exporter is driven at the same rate against the same
targets. Per target: slots without a record, start lateness; per process:
CPU per 1,000 probes and peak memory.

The targets are one process of this module's own (python -m bench.fleet
serve N) listening on N ports; the fleet runs in a process of its own too
(python -m bench.fleet client ...), the real Fleet with the real JSON
records written to a discarded stdout, so its CPU and memory are the
client's alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import resource
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from client.config import parse_config
from client.fleet import Fleet, offset
from client.logs import Logs
from client.monitor import Stop
from client.targets import Expect, Target

from .processes import ROOT, Run, blackbox_exporter, blackbox_pid, blackbox_probe, usage
from .stats import met, nearest_rank, table

HANG_EVERY = 10  # target i hangs when i % HANG_EVERY == HANG_EVERY - 1
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nOK\n"


def measure(run: Run) -> dict[str, str]:
    sizes = (10, 100, 1000) if not run.smoke else (3, 10)
    interval, timeout = (15.0, 5.0) if not run.smoke else (1.0, 0.5)
    seconds = 3 * interval + timeout + 1  # three full intervals, the last probes finished
    rows, goals = [], []
    for size in sizes:
        with targets_server(size) as ports:
            ours = run_client(run.tmp, ports, interval, timeout, seconds)
            theirs = run_blackbox(run.tmp, ports, interval, seconds)
        ratio = ours["cpu_per_1000"] / theirs["cpu_per_1000"] if theirs["cpu_per_1000"] else float("inf")
        rows.append([
            str(size), str(ours["probes"]), str(ours["missing"]), f"{ours['late_p99_ms']:.1f}",
            f"{ours['late_max_ms']:.1f}", f"{ours['cpu_per_1000']:.2f}", f"{theirs['cpu_per_1000']:.2f}",
            f"{ratio:.2f}x", f"{ours['peak_rss_mb']:.1f}", f"{theirs['peak_rss_mb']:.1f}",
        ])  # fmt: skip
        goals.append((size, ours["missing"] == 0, ours["late_p99_ms"] < 100, ratio <= 1.5, ours["peak_rss_mb"] < 100))
    header = [
        "Targets", "Probes", "Slots without a record", "Start lateness p99 (ms)", "Start lateness max (ms)",
        "Client CPU s / 1,000 probes", "blackbox_exporter CPU s / 1,000 probes", "Ratio",
        "Client peak RSS (MiB)", "blackbox_exporter peak RSS (MiB)",
    ]  # fmt: skip
    largest = goals[-1]
    cpu_per_probe = float(rows[-1][5]) / 1000  # the largest run's
    return {
        "fleet_ceiling_rate": f"{1 / cpu_per_probe:,.0f}" if cpu_per_probe else "an unmeasured number of",
        "fleet_ceiling": f"{interval / cpu_per_probe:,.0f}" if cpu_per_probe else "an unmeasured number of",
        "fleet_interval": f"{interval:g}",
        "fleet_timeout": f"{timeout:g}",
        "fleet_seconds": f"{seconds:g}",
        "fleet_table": table(header, rows),
        "fleet_goal_missing": met(all(g[1] for g in goals)),
        "fleet_goal_late": met(all(g[2] for g in goals)),
        "fleet_goal_cpu": met(all(g[3] for g in goals)),
        "fleet_goal_rss": met(largest[4]),
        "fleet_largest": f"{largest[0]:,}",
        "fleet_cpu_worst": max((row[7] for row in rows), key=lambda r: float(r.rstrip("x"))),
    }


class targets_server:  # noqa: N801 - used as a context manager, like processes.server
    """python -m bench.fleet serve N: N loopback ports; yields them."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __enter__(self) -> list[int]:
        cmd = [sys.executable, "-m", "bench.fleet", "serve", str(self.count)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        ports: list[int] = json.loads(self.proc.stdout.readline())
        return ports

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def run_client(tmp: Path, ports: list[int], interval: float, timeout: float, seconds: float) -> dict[str, Any]:
    """The fleet in a process of its own; what it measured of itself."""
    out = tmp / "fleet-result.json"
    spec = {"ports": ports, "interval": interval, "timeout": timeout, "seconds": seconds, "out": str(out)}
    subprocess.run(
        [sys.executable, "-m", "bench.fleet", "client", json.dumps(spec)],
        cwd=ROOT, stdout=subprocess.DEVNULL, check=True, timeout=seconds + 60,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def run_blackbox(tmp: Path, ports: list[int], interval: float, seconds: float) -> dict[str, float]:
    """blackbox_exporter's /probe driven on the same slots (same offsets)
    against the same targets; its CPU and peak memory."""
    with blackbox_exporter(tmp) as probe_url:
        pid = blackbox_pid(probe_url)
        names = [name(i) for i in range(len(ports))]
        start = time.monotonic() + 0.5
        slots = [(start + offset(n, interval), i) for i, n in enumerate(names)]
        heapq.heapify(slots)
        before, probes = usage(pid), 0
        with ThreadPoolExecutor(256) as pool:
            while slots[0][0] < start + seconds - interval / 3:
                slot, i = heapq.heappop(slots)
                time.sleep(max(0.0, slot - time.monotonic()))
                pool.submit(_blackbox_once, probe_url, f"http://127.0.0.1:{ports[i]}/")
                probes += 1
                heapq.heappush(slots, (slot + interval, i))
        after = usage(pid)
    return {"cpu_per_1000": (after.cpu_seconds - before.cpu_seconds) / probes * 1000, "peak_rss_mb": after.peak_rss_mb}


def _blackbox_once(probe_url: str, target: str) -> None:
    with contextlib.suppress(OSError, AssertionError):  # counted by its CPU, not its answer
        blackbox_probe(probe_url, target)


def name(i: int) -> str:
    return f"target-{i:04d}"


def client_main(spec: dict[str, Any]) -> None:
    """Run the real Fleet for spec['seconds'] and write what it measured."""
    interval, timeout, ports = spec["interval"], spec["timeout"], spec["ports"]
    targets = tuple(
        Target(name(i), f"http://127.0.0.1:{port}/", "GET", interval, timeout, Expect(frozenset({200})))
        for i, port in enumerate(ports)
    )
    logs = Logs(parse_config([], {}), sys.stdout)
    late: list[float] = []
    slot_of = threading.local()
    recorded: Counter[tuple[str, int]] = Counter()

    def on_start(target: str, slot: float, began: float) -> None:
        late.append(began - slot)
        slot_of.slot = slot

    fleet = Fleet(targets, logs.events, max(60.0, interval), on_start=on_start)
    probe_record = fleet.events.probe

    def counted(seq: int, result: Any, target: str = "") -> None:
        k = round((slot_of.slot - fleet.started - offset(target, interval)) / interval)
        recorded[(target, k)] += 1
        probe_record(seq, result, target)

    fleet.events.probe = counted  # type: ignore[method-assign]
    stop = Stop()
    cpu_before = _cpu()
    threading.Timer(spec["seconds"], stop.request).start()
    fleet.run(stop)
    cpu = _cpu() - cpu_before
    due = [(t.name, k) for t in targets for k in range(_slots(t, spec["seconds"] - timeout - 1))]
    result = {
        "probes": fleet.probes,
        "missing": sum(1 for key in due if recorded[key] == 0),
        "late_p99_ms": nearest_rank(late, 99) * 1000,
        "late_max_ms": max(late) * 1000,
        "cpu_per_1000": cpu / fleet.probes * 1000,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    Path(spec["out"]).write_text(json.dumps(result))
    logs.close()


def _slots(t: Target, within: float) -> int:
    """How many slots of t the fleet's grid had in its first within seconds."""
    return max(0, int((within - offset(t.name, t.interval)) // t.interval) + 1)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def serve_main(count: int) -> None:
    """Listen on count ports; every HANG_EVERY-th holds its requests
    unanswered until the client closes. Prints the ports as a JSON line."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, hangs: bool) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            if hangs:
                await reader.read()  # until the client gives up
            else:
                writer.write(ANSWER)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        servers = []
        for i in range(count):
            hangs = i % HANG_EVERY == HANG_EVERY - 1
            servers.append(
                await asyncio.start_server(lambda r, w, h=hangs: handle(r, w, h), "127.0.0.1", 0, backlog=64)
            )
        print(json.dumps([s.sockets[0].getsockname()[1] for s in servers]), flush=True)
        await asyncio.Event().wait()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * count + 256)), hard))
    asyncio.run(main())


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve_main(int(sys.argv[2]))
    else:
        client_main(json.loads(sys.argv[2]))
