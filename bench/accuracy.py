"""Table 1: how accurate is duration_ms? The client's probe() and
blackbox_exporter probe a server that waits a known time; each measurement
is compared with the server's own time for that request."""

from __future__ import annotations

from client.probe import TWO_XX, probe

from .processes import Run, blackbox_exporter, blackbox_probe, server, wait_for
from .stats import median, met, ms, nearest_rank, table

DELAYS_MS = (0, 50, 200)


def measure(run: Run) -> dict[str, str]:
    probes = run.size(100, 5)  # per prober and delay
    rows = []
    gaps: list[tuple[float, float]] = []  # client minus blackbox_exporter: median, p99
    with blackbox_exporter(run.tmp) as probe_url:
        for delay in DELAYS_MS:
            client_err, box_err = errors(run, probe_url, delay, probes)
            for name, err in (("client (`duration_ms`)", client_err), ("blackbox_exporter", box_err)):
                rows.append([f"{delay} ms", name, ms(median(err)), ms(nearest_rank(err, 99)), ms(max(err))])
            gaps.append(
                (median(client_err) - median(box_err), nearest_rank(client_err, 99) - nearest_rank(box_err, 99))
            )
    header = ["Server delay", "Prober", "Median error (ms)", "p99 error (ms)", "Max error (ms)"]
    return {
        "accuracy_probes": str(probes),
        "accuracy_table": table(header, rows),
        "accuracy_median_gap": f"{min(g[0] for g in gaps):+.2f} to {max(g[0] for g in gaps):+.2f}",
        "accuracy_p99_gap": f"{min(g[1] for g in gaps):+.2f} to {max(g[1] for g in gaps):+.2f}",
        "accuracy_goal": met(all(g[1] <= 1 for g in gaps)),
    }


def errors(run: Run, probe_url: str, delay: int, probes: int) -> tuple[list[float], list[float]]:
    """What each prober measured minus what the server logged, in ms."""
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
        box_err = [b - h for b, h in zip(box, handled.values(), strict=True)]
    return client_err, box_err
