"""Table 5: how big is a scrape? /metrics of a flaky server without delays,
after one request and after many, every status code answered."""

from __future__ import annotations

import re
import subprocess

import requests

from .processes import Run, server
from .stats import table


def measure(run: Run) -> dict[str, str]:
    many = run.size(100_000, 2_000)
    rows = []
    with server(run.binary, "-flaky", "-max-delay", "0", logs="discard") as s:
        requests.get(s.url + "/status", timeout=5)
        rows.append(["1", *size(s.metrics_url)])
        while (total := requests_counted(s.metrics_url)) < many:
            subprocess.run(["wrk", "-t1", "-c8", "-d1s", s.url + "/status"], capture_output=True, check=True)
        rows.append([f"{total:,}", *size(s.metrics_url)])
    header = [
        "Requests",
        "Text bytes",
        "OpenMetrics bytes",
        "Samples",
        "Request-histogram samples",
        "Status codes seen",
    ]
    return {"scrape_requests": f"{many:,}", "scrape_table": table(header, rows)}


def requests_counted(metrics_url: str) -> int:
    """GET /status requests the server has counted."""
    text = requests.get(metrics_url, timeout=5).text
    pattern = r'^http_server_request_duration_seconds_count\{[^}]*http_route="/status"[^}]*\} (\S+)$'
    return int(sum(float(v) for v in re.findall(pattern, text, re.M)))


def size(metrics_url: str) -> list[str]:
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
