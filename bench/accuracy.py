"""Table 1: how accurate is duration_ms? The client's probe() and
blackbox_exporter probe a server that waits a known time; each measurement
is compared with the server's own time for that request. Both name the
server by its IP address: the time each spends on name resolution is its
own column."""

from __future__ import annotations

import re

import requests

from client.probe import TWO_XX, probe

from .processes import Run, blackbox_exporter, server, wait_for
from .stats import median, met, ms, nearest_rank, table

DELAYS_MS = (0, 50, 200)

#: The goals: the client's median error at most blackbox_exporter's + this,
#: at every delay; its p99 at most blackbox_exporter's + P99_GAP_MS; its
#: dns phase under DNS_MS (median) for an IP address.
MEDIAN_GAP_MS = 0.5
P99_GAP_MS = 1.0
DNS_MS = 0.1


def measure(run: Run) -> dict[str, str]:
    probes = run.size(100, 5)  # per prober and delay
    rows = []
    gaps: list[tuple[float, float]] = []  # client minus blackbox_exporter: median, p99
    dns: list[float] = []  # the client's median dns phase per delay
    with blackbox_exporter(run.tmp) as probe_url:
        for delay in DELAYS_MS:
            client, box = errors(run, probe_url, delay, probes)
            for name, (err, resolve) in (("client (`duration_ms`)", client), ("blackbox_exporter", box)):
                rows.append([
                    f"{delay} ms", name, ms(median(err)), ms(nearest_rank(err, 99)), ms(max(err)),
                    f"{median(resolve):.3f}",
                ])  # fmt: skip
            gaps.append((median(client[0]) - median(box[0]), nearest_rank(client[0], 99) - nearest_rank(box[0], 99)))
            dns.append(median(client[1]))
    header = ["Server delay", "Prober", "Median error (ms)", "p99 error (ms)", "Max error (ms)", "`dns` median (ms)"]
    return {
        "accuracy_probes": str(probes),
        "accuracy_table": table(header, rows),
        "accuracy_median_gap": f"{min(g[0] for g in gaps):+.2f} to {max(g[0] for g in gaps):+.2f}",
        "accuracy_p99_gap": f"{min(g[1] for g in gaps):+.2f} to {max(g[1] for g in gaps):+.2f}",
        "accuracy_dns": f"{min(dns):.3f} to {max(dns):.3f}",
        "accuracy_goal": met(all(g[1] <= P99_GAP_MS for g in gaps)),
        "accuracy_median_goal": met(all(g[0] <= MEDIAN_GAP_MS for g in gaps)),
        "accuracy_dns_goal": met(all(d < DNS_MS for d in dns)),
    }


Measured = tuple[list[float], list[float]]  # errors and name-resolution times, in ms


def errors(run: Run, probe_url: str, delay: int, probes: int) -> tuple[Measured, Measured]:
    """What each prober measured minus what the server logged, and what it
    spent resolving the server's address, in ms."""
    with server(run.binary, "-delay", f"{delay}ms") as s:
        target = s.url + "/status"
        client, box = [], []
        for _ in range(probes):
            client.append(probe(target, 5.0, TWO_XX))
            box.append(blackbox_probe(probe_url, target))
        wait_for(lambda: len(s.requests()) >= 2 * probes)  # log lines are flushed every 100 ms
        # The client's requests carry its trace IDs; the others are
        # blackbox_exporter's, in the order sent.
        handled = {line["trace_id"]: line["duration_ms"] for line in s.requests()}
        client_err = [r.duration_ms - handled.pop(r.trace_id) for r in client]
        box_err = [b[0] - h for b, h in zip(box, handled.values(), strict=True)]
    client_dns = [r.phases_ms["dns"] or 0.0 for r in client]
    return (client_err, client_dns), (box_err, [b[1] for b in box])


def blackbox_probe(probe_url: str, target: str) -> tuple[float, float]:
    """One probe through blackbox_exporter: its probe_duration_seconds and
    its resolve phase, in ms."""
    text = requests.get(probe_url, params={"module": "http_get", "target": target}, timeout=10).text
    duration = re.search(r"^probe_duration_seconds (\S+)$", text, re.M)
    resolve = re.search(r'^probe_http_duration_seconds\{phase="resolve"\} (\S+)$', text, re.M)
    assert duration, text
    assert resolve, text
    return float(duration.group(1)) * 1000, float(resolve.group(1)) * 1000
