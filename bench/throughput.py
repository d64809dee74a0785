"""Table 4: what does the server's telemetry cost? wrk saturates GET /status
on the server as shipped, on the same handler behind one plain log/slog
line per request, and on the bare handler, rounds alternating."""

from __future__ import annotations

from dataclasses import dataclass

from .processes import Run, server, usage, wrk
from .stats import median, met, ms, table

SERVERS = {
    "instrumented": [],
    "plain log/slog line per request": ["-telemetry=slog"],
    "without telemetry": ["-telemetry=false"],
}
CONNECTIONS = 8


@dataclass(frozen=True)
class Sample:
    per_second: float
    p99_ms: float
    cpu_us: float  # the server's CPU time per request


def measure(run: Run) -> dict[str, str]:
    seconds, rounds = run.size(8, 1), run.size(3, 1)
    samples: dict[str, list[Sample]] = {name: [] for name in SERVERS}
    for _ in range(rounds):
        for name, args in SERVERS.items():
            samples[name].append(saturate(run, args, seconds))
    m = {name: medians(runs) for name, runs in samples.items()}
    rows = [[name, f"{s.per_second:,.0f}", ms(s.p99_ms), f"{s.cpu_us:.1f}"] for name, s in m.items()]
    ours, plain, bare = m["instrumented"], m["plain log/slog line per request"], m["without telemetry"]
    ratio = ours.per_second / bare.per_second
    header = ["Server", "Requests/s", "p99 latency (ms)", "Server CPU per request (µs)"]
    return {
        "throughput_wrk": f"wrk -t1 -c{CONNECTIONS} -d{seconds}s --latency",
        "throughput_rounds": str(rounds),
        "throughput_table": table(header, rows),
        "throughput_ratio": f"{ratio:.0%}",
        "throughput_noise": " (above 100 %: the noise of a shared machine)" if ratio > 1 else "",
        "throughput_cost": f"{max(0.0, 1 - ratio):.0%}",
        "throughput_cost_goal": met(1 - ratio < 0.15),
        "throughput_p99": f"{ours.p99_ms:.2f} ms against {bare.p99_ms:.2f} ms",
        "throughput_p99_goal": met(ours.p99_ms <= bare.p99_ms),
        "throughput_cpu_extra": f"{ours.cpu_us - bare.cpu_us:.1f} µs ({(ours.cpu_us - bare.cpu_us) / bare.cpu_us:.0%})",
        "throughput_slog_ratio": f"{plain.per_second / bare.per_second:.0%}",
        "throughput_vs_slog": f"{ours.per_second / plain.per_second:.2f}x",
    }


def saturate(run: Run, args: list[str], seconds: int) -> Sample:
    """One wrk run against a fresh server whose log goes to a file, as a
    container's log would, and the server's CPU time for it."""
    log = run.tmp / "server.log"
    with log.open("wb") as out, server(run.binary, *args, logs=out) as s:
        before = usage(s.proc.pid).cpu_seconds
        result = wrk(s.url + "/status", seconds, CONNECTIONS)
        cpu = usage(s.proc.pid).cpu_seconds - before
    log.unlink()
    return Sample(result.per_second, result.p99_ms, cpu / result.requests * 1e6)


def medians(runs: list[Sample]) -> Sample:
    return Sample(
        median([r.per_second for r in runs]), median([r.p99_ms for r in runs]), median([r.cpu_us for r in runs])
    )
