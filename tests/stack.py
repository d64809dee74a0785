"""Helpers for the stack's tests: the repository's configuration files, and
the tools that check them (installed by make test)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]


def load_yaml(path: str) -> Any:
    return yaml.safe_load((ROOT / path).read_text())


@cache
def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml("docker-compose.yml")
    return data


@cache
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "grafana/dashboards/status-server.json").read_text())
    return data


def tool(env: str, name: str) -> str:
    """The path of a tool: $env, else name on PATH. Under make test
    (REQUIRE_STACK_TOOLS=1) a missing tool fails the test; elsewhere it
    skips it."""
    path = os.environ.get(env) or shutil.which(name)
    if not path:
        message = f"{name} not found: set {env} or run make test, which installs it"
        if os.environ.get("REQUIRE_STACK_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def grammar(folder: Path, queries: list[str]) -> list[dict[str, Any]]:
    """Run folder/parse.mjs, a parser built on one of Grafana's own grammars
    (installed from npm by make test), on queries."""
    node = tool("NODE", "node")
    if not (folder / "node_modules").is_dir():
        pytest.fail(f"run make test (npm ci --prefix {folder.relative_to(ROOT)}) to install the grammar")
    result = subprocess.run(
        [node, str(folder / "parse.mjs")], input=json.dumps(queries), capture_output=True, text=True, check=True
    )
    parsed: list[dict[str, Any]] = json.loads(result.stdout)
    return parsed


def prometheus_major(binary: str) -> int:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    match = re.search(r"version (\d+)\.", out.stdout + out.stderr)
    assert match, out
    return int(match.group(1))


# Grafana's variables, replaced by values a query engine accepts.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__auto": "1m",
    "$__range": "5m",
    "$target": ".+",  # the dashboard's targets, as its All value
}


def expand(expr: str) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr.replace("$value", "").replace("$labels", ""), f"unknown variable in {expr}"
    return expr


def dashboard_queries(uid: str) -> list[str]:
    """Every query of the dashboard (panels and annotations) for a datasource."""
    d = dashboard()
    exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", []) if t["datasource"]["uid"] == uid]
    exprs += [a["expr"] for a in d["annotations"]["list"] if a.get("datasource", {}).get("uid") == uid and "expr" in a]
    return exprs


def rule_exprs(path: str) -> list[str]:
    return [rule["expr"] for group in load_yaml(path)["groups"] for rule in group["rules"]]


def ready(url: str) -> bool:
    """Whether a Prometheus-style /-/ready URL says so."""
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


class Prometheus:
    """A real Prometheus 3 with this repository's prometheus.yml, flags and
    rule files. Only the addresses differ from the stack: targets maps a
    scrape job to its loopback address (jobs without one are dropped), and
    alerts go to the Alertmanager at alertmanager, or nowhere."""

    def __init__(self, tmp: Path, targets: dict[str, str], alertmanager: str | None = None) -> None:
        binary = tool("PROMETHEUS", "prometheus")
        assert prometheus_major(binary) == 3
        port = free_port()
        targets = {**targets, "prometheus": f"127.0.0.1:{port}"}
        config = load_yaml("prometheus/prometheus.yml")
        config["scrape_configs"] = [
            {**job, "static_configs": [{"targets": [targets[job["job_name"]]]}]}
            for job in config["scrape_configs"]
            if job["job_name"] in targets
        ]
        if alertmanager:
            for am in config["alerting"]["alertmanagers"]:
                am["static_configs"] = [{"targets": [alertmanager]}]
        else:
            config.pop("alerting", None)
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        shutil.copytree(ROOT / "prometheus/rules", tmp / "rules")
        flags = [
            f.replace("/etc/prometheus/", f"{tmp}/").replace("=/prometheus", f"={tmp}/data")
            for f in compose()["services"]["prometheus"]["command"]
        ]
        self.log = tmp / "prometheus.log"
        self.proc = subprocess.Popen(
            [binary, *flags, f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
        )
        self.api = f"http://127.0.0.1:{port}/api/v1"

    def query(self, expr: str) -> list[dict[str, Any]]:
        resp = requests.get(self.api + "/query", params={"query": expr}, timeout=5)
        assert resp.status_code == 200, resp.text
        result: list[dict[str, Any]] = resp.json()["data"]["result"]
        return result

    def wait_for_scrapes(self, job: str, scrapes: int, timeout: float = 60) -> None:
        """Wait until job was scraped this many times within a minute."""
        deadline = time.monotonic() + timeout
        while True:
            if self.ready():
                samples = self.query(f'count_over_time(up{{job="{job}"}}[1m])')
                if samples and float(samples[0]["value"][1]) >= scrapes:
                    return
            assert time.monotonic() < deadline, self.log.read_text()[-3000:]
            time.sleep(0.5)

    def ready(self) -> bool:
        """Whether Prometheus answers queries (its API says 503 until then)."""
        return ready(self.api.removesuffix("/api/v1") + "/-/ready")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
