"""Run every table and fill template.md with what they measured; or run
some tables and update their sections of an earlier report."""

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

from . import accuracy, cost, fleet, rhythm, scrape, throughput
from .processes import ROOT, Run, blackbox_binary
from .stats import table

TABLES: list[Callable[[Run], dict[str, str]]] = [
    accuracy.measure,
    rhythm.measure,
    cost.measure,
    throughput.measure,
    scrape.measure,
    fleet.measure,
]
TEMPLATE = Path(__file__).with_name("template.md")


def report(binary: Path, smoke: bool) -> str:
    started, load_before = time.monotonic(), os.getloadavg()
    values = measure(binary, smoke, TABLES)
    load_after = os.getloadavg()
    values |= {
        "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M}",
        "took": f"{time.monotonic() - started:.0f}",
        "machine": table(["Machine", ""], machine(load_before, load_after)),
    }
    return Template(TEMPLATE.read_text()).substitute(values)


def check(current: str) -> None:
    """Raise ValueError unless current is a report whose tables update can
    replace."""
    if len(_sections(current)) != len(_sections(TEMPLATE.read_text())):
        raise ValueError(f"not a report with {len(TABLES)} numbered tables")


def update(current: str, binary: Path, smoke: bool, numbers: list[int]) -> str:
    """current, a report (see check), with the sections of the tables
    numbered `numbers` measured anew, each saying when and how."""
    load_before = os.getloadavg()
    values = measure(binary, smoke, [TABLES[n - 1] for n in numbers])
    commit = version("git", "-C", str(ROOT), "describe", "--always", "--dirty")
    when = (
        f"on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {loads(load_before)} at the start, "
        f"{loads(os.getloadavg())} at the end, commit {commit}"
    )
    template, sections = _sections(TEMPLATE.read_text()), _sections(current)
    for n in numbers:
        note = f"_Measured again alone by `python -m bench --table {n}` {when}; the machine table is the full run's._"
        sections[n] = Template(template[n]).substitute(values).rstrip("\n") + f"\n\n{note}\n\n"
    return "".join(sections).rstrip("\n") + "\n"


def measure(binary: Path, smoke: bool, tables: list[Callable[[Run], dict[str, str]]]) -> dict[str, str]:
    values: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for measure_table in tables:
            values |= measure_table(Run(binary, Path(tmp), smoke))
    return values


def _sections(text: str) -> list[str]:
    """text before the first numbered table, then each table's section."""
    return re.split(r"(?m)^(?=## \d\. )", text)


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
