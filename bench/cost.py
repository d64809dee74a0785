"""Table 3: what does the client cost? The real client and blackbox_exporter
probe the same steady server at the same rate; CPU from /proc, counted from
each one's first probe on, and peak memory."""

from __future__ import annotations

import time

from .processes import (
    Run,
    Usage,
    blackbox_exporter,
    blackbox_pid,
    blackbox_probe,
    client_process,
    records,
    server,
    usage,
)
from .stats import table


def measure(run: Run) -> dict[str, str]:
    rows = []
    ratios = []
    with server(run.binary, logs="discard") as s, blackbox_exporter(run.tmp) as probe_url:
        for cadence, interval, probes in (
            ("default (every 3 s)", 3.0, run.size(21, 2)),
            ("20 probes/s", 0.05, run.size(1000, 20)),
        ):
            (client_n, client_use), box_use = side_by_side(s.url, probe_url, interval, probes)
            per_1000 = {}
            for name, (start, end), n in (("client", client_use, client_n), ("blackbox_exporter", box_use, probes)):
                per_1000[name] = (end.cpu_seconds - start.cpu_seconds) / max(1, n - 1) * 1000
                rows.append([cadence, name, str(n), f"{per_1000[name]:.2f}", f"{end.peak_rss_mb:.1f}"])
            ratios.append(
                f"{per_1000['client'] / per_1000['blackbox_exporter']:.1f}x at {cadence}"
                if per_1000["blackbox_exporter"]
                else f"an unmeasurable multiple (blackbox_exporter below one 10 ms tick) at {cadence}"
            )
    header = ["Cadence", "Prober", "Probes", "CPU seconds per 1,000 probes", "Peak RSS (MiB)"]
    return {"cost_table": table(header, rows), "cost_ratios": ", ".join(ratios)}


def side_by_side(
    url: str, probe_url: str, interval: float, probes: int
) -> tuple[tuple[int, tuple[Usage, Usage]], tuple[Usage, Usage]]:
    """The client's probe count and usage from its first probe to its last,
    and blackbox_exporter's over the same probes on the same schedule."""
    target = url + "/status"
    with client_process(
        "--target", url, "--interval", str(interval), "--timeout", str(interval / 2),
        "--flaky-interval", "0", "--summary-interval", "60",
    ) as proc:  # fmt: skip
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
        return (client_probes, (client_start, usage(proc.pid))), (box_start, usage(box_pid))
