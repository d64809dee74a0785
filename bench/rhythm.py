"""Table 2: does the loop keep its rhythm? The real client probes a flaky
server, then the same with Loki black-holed; the gaps between probe starts
are compared with the interval."""

from __future__ import annotations

import itertools
from datetime import datetime

from .processes import Run, black_hole, client_process, records, server
from .stats import median, met, ms, table


def measure(run: Run) -> dict[str, str]:
    probes = run.size(45, 4)
    # The client wants its timeout shorter than its interval; both outlast
    # the server's longest delay, so no probe times out.
    interval, timeout = (0.6, 0.55) if run.smoke else (1.0, 0.75)
    limit = interval + timeout + 0.5
    rows = []
    with server(run.binary, "-flaky", "-max-delay", "500ms", logs="discard") as s, black_hole() as loki:
        for name, extra in (("flaky server", []), ("flaky server, Loki black-holed", ["--loki-url", loki])):
            gaps = probe_gaps(s.url, interval, timeout, probes, extra)
            deviation = [abs(g - interval) * 1000 for g in gaps]
            rows.append([
                name, f"{interval:g} s", str(len(gaps)), ms(median(deviation)), ms(max(deviation)),
                f"{max(gaps):.3f} s", "yes" if max(gaps) <= limit else "**no**",
            ])  # fmt: skip
    header = ["Scenario", "Interval", "Gaps", "Median deviation (ms)", "Max deviation (ms)", "Largest gap",
              "Within interval + timeout + 0.5 s"]  # fmt: skip
    return {
        "rhythm_interval": f"{interval:g}",
        "rhythm_timeout": f"{timeout:g}",
        "rhythm_table": table(header, rows),
        "rhythm_goal": met(all(r[-1] == "yes" for r in rows)),
    }


def probe_gaps(url: str, interval: float, timeout: float, probes: int, extra: list[str]) -> list[float]:
    """Seconds between the starts (record time minus duration_ms) of
    consecutive probes of the real client."""
    with client_process(
        "--target", url, "--interval", str(interval), "--timeout", str(timeout),
        "--flaky-interval", "0", "--summary-interval", "60", *extra,
    ) as proc:  # fmt: skip
        found = records(proc, "probe", probes + 1)
    if len(found) < probes + 1:
        raise RuntimeError(f"the client stopped after {len(found)} probes (its error is above)")
    starts = [datetime.fromisoformat(p["timestamp"]).timestamp() - p["duration_ms"] / 1000 for p in found]
    return [b - a for a, b in itertools.pairwise(starts)]
