"""Alertmanager: its configuration checked by amtool, then the alert path
live: the real server held at 503 while the real client probes it, a real
Prometheus 3 with the repository's rule files, a real Alertmanager; and a
real Alertmanager delivering to a loopback webhook: a silenced target's
alert is not delivered, another target's is, a page holds back its
target's ticket.

The rules are the stack's own, windows and thresholds unchanged; only the
history is short. The page alert needs the 5xx ratio over 1 h and 5 min above
14.4 x 1 % (or over 6 h and 30 min above 6 x 1 %). With a minute of history
every window holds the same samples, so the alert fires as soon as 503s
are over 14.4 % of all answers Prometheus has seen: two scrapes after the
switch (rate() needs two samples of the new 503 series), then one rule
evaluation. It resolves once the 5xx ratio of all windows is under 6 %
again and its keep_firing_for (5 min) has passed: the test sends those
healthy answers itself and checks that the page is held, not gone.
promtool's unit tests (prometheus/tests/slo-*_test.yml) check the same rules
over hours and days.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.conftest import GoServer, PushStandIn, free_port, wait_until
from tests.stack import ROOT, Prometheus, dashboard_queries, load_yaml, ready, tool

CONFIG = "alertmanager/alertmanager.yml"
SCRAPE = 5.0  # prometheus.yml: scrape and evaluation interval
PAGE = {
    "alertname": "RequestAvailabilityBudgetBurn",
    "severity": "page",
    "slo": "request-availability",
    "target": "status-server",
}


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("AMTOOL", "amtool"), *args], cwd=ROOT, capture_output=True, text=True)


def test_config_is_valid() -> None:
    result = amtool("check-config", CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr


def test_routes_group_by_target_and_slo() -> None:
    config = load_yaml(CONFIG)
    assert config["route"]["group_by"] == ["target", "slo", "severity"]
    (receiver,) = config["receivers"]
    assert set(receiver) == {"name"}, "the demo delivers nothing: a receiver needs a secret from .env"
    (inhibit,) = config["inhibit_rules"]
    assert inhibit["equal"] == ["target", "slo"], "a page holds back only its own target's ticket"


def commented_example(head: str) -> Any:
    """A commented-out example of the config, as YAML: the comment line
    `# <head>` and the more deeply indented comment lines under it."""
    lines = (ROOT / CONFIG).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"# {head}")
    prefix = lines[start][: lines[start].index("#") + 2]
    block = [head]
    for line in lines[start + 1 :]:
        if not line.startswith(prefix + " "):
            break
        block.append(line[len(prefix) :])
    return yaml.safe_load("\n".join(block))


def test_the_commented_examples_are_valid(tmp_path: Path) -> None:
    """The maintenance window, its route and the on-call receiver, once
    uncommented, make a configuration amtool accepts."""
    config = load_yaml(CONFIG)
    config["route"]["routes"] = commented_example("routes:")["routes"]
    config["time_intervals"] = commented_example("time_intervals:")["time_intervals"]
    config["receivers"] += commented_example("- name: on-call")
    muted = [r for r in config["route"]["routes"] if r.get("mute_time_intervals")]
    assert muted, "the example mutes a target's route during a time interval"
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    result = amtool("check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@contextmanager
def running_alertmanager(config: Path, tmp: Path) -> Iterator[str]:
    """A real Alertmanager with config, on loopback; clustering off, as in
    the stack. Yields its address."""
    binary = tool("ALERTMANAGER", "prometheus-alertmanager")
    address = f"127.0.0.1:{free_port()}"
    log = tmp / "alertmanager.log"
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.path={tmp / 'data'}",
         f"--web.listen-address={address}", "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=log.open("w"),
    )  # fmt: skip
    try:
        wait_until(lambda: ready(f"http://{address}/-/ready"), 30, interval=0.5)
        yield address
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    """A real Alertmanager with the repository's configuration."""
    with running_alertmanager(ROOT / CONFIG, tmp_path) as address:
        yield address


def pages(alertmanager: str) -> list[dict[str, Any]]:
    """The page alerts Alertmanager holds as active (resolved ones are gone)."""
    resp = requests.get(f"http://{alertmanager}/api/v2/alerts", timeout=5)
    resp.raise_for_status()
    return [a for a in resp.json() if PAGE.items() <= a["labels"].items()]


def held(prometheus: Prometheus) -> bool:
    """Whether Prometheus holds the page firing after its condition cleared."""
    alerts = requests.get(prometheus.api + "/alerts", timeout=5).json()["data"]["alerts"]
    return any(PAGE.items() <= a["labels"].items() and a.get("keepFiringSince") for a in alerts)


def five_xx_answers(server: GoServer) -> float:
    text = requests.get(server.metrics_url + "/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("http_server_request_duration_seconds_count{")
        and 'http_route="/status"' in line
        and 'http_response_status_code="5' in line
    )


def healthy_answers(url: str, count: int) -> None:
    def some(n: int) -> None:
        with requests.Session() as session:
            for _ in range(n):
                session.get(url, timeout=5).raise_for_status()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(some, [count // 4 + 1] * 4))


def test_a_server_held_at_503_pages_and_the_page_holds_after_recovery(
    tmp_path: Path, server_binary: Path, alertmanager: str
) -> None:
    server = GoServer(server_binary)
    client = subprocess.Popen(
        [str(ROOT / ".venv/bin/python"), "-m", "client", "--target", server.url, "--interval", "0.2",
         "--timeout", "0.1", "--flaky-interval", "0", "--summary-interval", "5"],
        cwd=ROOT, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    prometheus = Prometheus(tmp_path, {"server": server.metrics_url.removeprefix("http://")}, alertmanager)
    try:
        prometheus.wait_for_scrapes("server", 2)
        assert client.poll() is None, "the client exited"
        # Healthy first: an error ratio of 0 (not a missing series), no page.
        healthy = 'slo:sli_error:ratio_rate5m{slo="request-availability"} == 0'
        wait_until(lambda: bool(prometheus.query(healthy)), 60, interval=0.5)
        assert not pages(alertmanager)

        requests.post(server.url + "/status/503", timeout=2).raise_for_status()
        # Two scrapes and an evaluation (about 12 s here), on a busy machine.
        wait_until(lambda: bool(pages(alertmanager)), 3 * SCRAPE + 45, interval=0.5)
        (page,) = pages(alertmanager)
        assert page["annotations"]["dashboard"].startswith("http://localhost:3000/d/")
        assert "times as often as the SLO allows" in page["annotations"]["description"]

        requests.post(server.url + "/status/200", timeout=2).raise_for_status()
        # Enough healthy answers to bring every window's 5xx ratio to 4 %,
        # under the 6 % of the 6h/30m pair (and the 14.4 % of the 1h/5m one).
        healthy_answers(server.url + "/status", int(five_xx_answers(server) * 25))
        # The burn is over: the page keeps firing for its keep_firing_for
        # (5 min) rather than resolving, so a burn that comes back at once
        # does not page again.
        wait_until(lambda: held(prometheus), 60, interval=0.5)
        assert pages(alertmanager), "the page is held, not resolved"

        # The dashboard's error-budget and burn-rate panels of this SLO have data.
        panels = [q for q in dashboard_queries("prometheus") if 'slo="request-availability"' in q]
        assert any("group_left" in q for q in panels), "the burn-rate panels are among them"
        for expr in panels:
            wait_until(lambda e=expr: bool(prometheus.query(e)), 70, interval=0.5)
    finally:
        prometheus.stop()
        client.terminate()
        client.wait(10)
        server.stop()


class WebhookReceiver(PushStandIn):
    """Alertmanager's webhook receiver: keeps each notification's alerts."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        super().__init__()

    def answer(self, request: BaseHTTPRequestHandler, body: bytes) -> tuple[int, str, bytes]:
        self.alerts += json.loads(body)["alerts"]
        return 200, "text/plain", b""

    def delivered(self) -> set[tuple[str, str]]:
        return {(a["labels"]["target"], a["labels"]["severity"]) for a in self.alerts}


def slo_alert(target: str, severity: str) -> dict[str, Any]:
    """An SLO alert as Prometheus sends it, firing for the next hour."""
    return {
        "labels": {"alertname": "ProbeAvailabilityBudgetBurn", "slo": "probe-availability",
                   "target": target, "severity": severity},
        "startsAt": datetime.now(UTC).isoformat(),
        "endsAt": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
    }  # fmt: skip


def test_a_silenced_target_is_not_delivered_and_a_page_holds_its_targets_ticket(tmp_path: Path) -> None:
    """The repository's routes and inhibit rules, delivering to a loopback
    webhook (with a short group_wait); the silence is made with amtool as
    docs/slo.md shows."""
    webhook = WebhookReceiver()
    config = load_yaml(CONFIG)
    (receiver,) = config["receivers"]
    receiver["webhook_configs"] = [{"url": webhook.url, "send_resolved": False}]
    config["route"].update(group_wait="1s", group_interval="1s")
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config))
    try:
        with running_alertmanager(tmp_path / "alertmanager.yml", tmp_path) as address:
            silence = amtool("silence", "add", 'target="grafana"', "--duration=2h", "--author=test",
                             "--comment=grafana upgrade", f"--alertmanager.url=http://{address}")  # fmt: skip
            assert silence.returncode == 0, silence.stderr
            alerts = [slo_alert("grafana", "page"), slo_alert("loki", "page"), slo_alert("loki", "ticket"),
                      slo_alert("tempo", "ticket")]  # fmt: skip
            requests.post(f"http://{address}/api/v2/alerts", json=alerts, timeout=5).raise_for_status()

            wait_until(lambda: webhook.delivered() >= {("loki", "page"), ("tempo", "ticket")}, 30, interval=0.2)
            states = {
                (a["labels"]["target"], a["labels"]["severity"]): a["status"]
                for a in requests.get(f"http://{address}/api/v2/alerts", timeout=5).json()
            }
            assert states[("grafana", "page")]["silencedBy"] == [silence.stdout.strip()]
            assert states[("loki", "ticket")]["inhibitedBy"], "loki's page holds back loki's ticket"
            assert states[("tempo", "ticket")]["state"] == "active", "another target's page does not"
            time.sleep(3)  # three more group_waits: what is muted stays so
            assert webhook.delivered() == {("loki", "page"), ("tempo", "ticket")}
    finally:
        webhook.close()
