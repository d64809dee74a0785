"""make bench's harness, run small: it must produce every table. Its figures
are not checked; benchmarks never fail a build on a number."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.stack import ROOT, tool


def test_smoke_run_writes_every_table(tmp_path: Path, server_binary: Path) -> None:
    tool("WRK", "wrk")
    tool("BLACKBOX_EXPORTER", "prometheus-blackbox-exporter")
    out = tmp_path / "benchmarks.md"
    subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out), "--server", str(server_binary)],
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    text = out.read_text()
    headings = re.findall(r"^## (\d)\. ", text, re.M)
    assert headings == ["1", "2", "3", "4", "5", "6"]
    for section in re.split(r"^## \d\. ", text, flags=re.M)[1:]:
        rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("|---")]
        assert len(rows) >= 3, f"a table with a header and rows:\n{section}"
    assert "| CPU |" in text  # the machine's facts
    for goal in (
        "blackbox_exporter's + 1 ms",
        "goal: under 15 %",
        "goal: no worse",
        "Within interval + timeout + 0.5 s",
    ):
        assert goal in text
    table4 = re.split(r"^## \d\. ", text, flags=re.M)[4]
    for server in ("| instrumented |", "| plain log/slog line per request |", "| without telemetry |"):
        assert server in table4
    assert "$" not in text  # every placeholder of the template filled


def test_one_table_updates_its_section_only(tmp_path: Path, server_binary: Path) -> None:
    tool("BLACKBOX_EXPORTER", "prometheus-blackbox-exporter")
    out = tmp_path / "benchmarks.md"
    before = (ROOT / "docs" / "benchmarks.md").read_text()
    out.write_text(before)
    subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--table", "1", "--out", str(out), "--server", str(server_binary)],
        cwd=ROOT,
        check=True,
        timeout=120,
    )
    old, new = (re.split(r"^## \d\. ", text, flags=re.M) for text in (before, out.read_text()))
    assert [new[0], *new[2:]] == [old[0], *old[2:]], "only table 1 changes"
    assert "`dns` median (ms)" in new[1]
    assert "_Measured again alone by `python -m bench --table 1` on " in new[1]
