"""Run every table and fill template.md with what they measured."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from string import Template

from . import accuracy, cost, rhythm, scrape, throughput
from .processes import ROOT, Run, blackbox_binary
from .stats import table

TABLES: list[Callable[[Run], dict[str, str]]] = [
    accuracy.measure,
    rhythm.measure,
    cost.measure,
    throughput.measure,
    scrape.measure,
]
TEMPLATE = Path(__file__).with_name("template.md")


def report(binary: Path, smoke: bool) -> str:
    started, load_before = time.monotonic(), os.getloadavg()
    values: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for measure in TABLES:
            values |= measure(Run(binary, Path(tmp), smoke))
    load_after = os.getloadavg()
    values |= {
        "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M}",
        "took": f"{time.monotonic() - started:.0f}",
        "machine": table(["Machine", ""], machine(load_before, load_after)),
    }
    return Template(TEMPLATE.read_text()).substitute(values)


def machine(load_before: tuple[float, float, float], load_after: tuple[float, float, float]) -> list[list[str]]:
    cpu = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    os_name = re.search(r'^PRETTY_NAME="(.+)"$', Path("/etc/os-release").read_text(), re.M)
    return [
        ["CPU", f"{cpu.group(1) if cpu else platform.processor()}, {os.cpu_count()} logical CPUs"],
        ["Load average (1, 5, 15 min)", f"{loads(load_before)} at the start, {loads(load_after)} at the end"],
        ["OS", f"{os_name.group(1) if os_name else platform.system()}, kernel {platform.release()}"],
        ["Go", version("go", "version")],
        ["Python", platform.python_version()],
        ["blackbox_exporter", version(blackbox_binary(), "--version")],
        ["wrk", version("wrk", "--version")],
        ["Commit", version("git", "-C", str(ROOT), "describe", "--always", "--dirty")],
    ]


def loads(avg: tuple[float, float, float]) -> str:
    return " / ".join(f"{x:.1f}" for x in avg)


def version(*cmd: str) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except OSError:
        return "not found"
    return (out.stdout or out.stderr).strip().splitlines()[0]
