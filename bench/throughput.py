"""Table 4: what does the server's telemetry cost? wrk saturates GET /status
on the server as shipped and on the same handler without telemetry, rounds
alternating."""

from __future__ import annotations

from .processes import Run, server, wrk
from .stats import median, met, ms, table

SERVERS = {"instrumented": [], "without telemetry": ["-telemetry=false"]}


def measure(run: Run) -> dict[str, str]:
    seconds, rounds = run.size(8, 1), run.size(2, 1)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in SERVERS}
    for _ in range(rounds):
        for name, args in SERVERS.items():
            with server(run.binary, *args, logs="discard") as s:
                r = wrk(s.url + "/status", seconds)
                results[name].append((r.per_second, r.p99_ms))
    rps = {name: median([r[0] for r in runs]) for name, runs in results.items()}
    rows = [[name, f"{rps[name]:,.0f}", ms(median([r[1] for r in runs]))] for name, runs in results.items()]
    ratio = rps["instrumented"] / rps["without telemetry"]
    return {
        "throughput_seconds": str(seconds),
        "throughput_rounds": str(rounds),
        "throughput_table": table(["Server", "Requests/s", "p99 latency (ms)"], rows),
        "throughput_ratio": f"{ratio:.0%}",
        "throughput_cost": f"{1 - ratio:.0%}",
        "throughput_extra_us": f"{(1 / rps['instrumented'] - 1 / rps['without telemetry']) * 1e6:.0f}",
        "throughput_goal": met(1 - ratio < 0.15),
    }
