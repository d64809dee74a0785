"""Shards of the fleet (client/shard.py): every target in exactly one shard,
the shares even, the same split in every process, and the split Prometheus'
own hashmod relabel action makes (tests/helm/hashmod, a Go program built on
prometheus/model/relabel)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from client import shard
from client.config import ConfigError, parse_config
from tests.conftest import ClientProcess
from tests.stack import ROOT, tool
from tests.test_client_main import wait_for

COUNTS = range(1, 8)
# Names as a fleet has them: services, regions, numbers, dots, upper case.
NAMES = [f"{kind}-{region}.{i}" for i in range(1000) for kind in ("api", "Web") for region in "abcde"]


@dataclass(frozen=True)
class Target:
    name: str


def test_every_target_is_in_exactly_one_shard() -> None:
    assert len(set(NAMES)) == 10_000
    targets = [Target(name) for name in NAMES]
    for count in COUNTS:
        shares = [shard.select(targets, index, count) for index in range(count)]
        seen = Counter(t.name for share in shares for t in share)
        assert set(seen) == set(NAMES), f"count {count}: a target in no shard"
        assert max(seen.values()) == 1, f"count {count}: a target in two shards"
        for share in shares:
            places = [NAMES.index(t.name) for t in share[:50]]
            assert places == sorted(places), "select keeps the file's order"


@pytest.mark.parametrize("count", COUNTS)
def test_shares_are_even(count: int) -> None:
    """Each share within 10% of an even split: for 10,000 names and 7 shards
    one binomial standard deviation is 2.5% of a share, so 10% is four."""
    sizes = Counter(shard.hashmod(name, count) for name in NAMES)
    even = len(NAMES) / count
    assert sorted(sizes) == list(range(count))
    assert all(abs(size - even) <= 0.1 * even for size in sizes.values()), sizes


def test_the_split_is_the_same_in_every_process() -> None:
    """Unlike hash(), which Python salts per process: another interpreter
    with another PYTHONHASHSEED splits alike."""
    names = NAMES[:500]
    code = "import sys; from client.shard import hashmod; print(*(hashmod(n, 7) for n in sys.stdin.read().split()))"
    here = " ".join(str(shard.hashmod(name, 7)) for name in names)
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            input="\n".join(names),
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
            timeout=60,
            check=True,
        )
        assert out.stdout.strip() == here


def test_the_split_is_prometheus_hashmod() -> None:
    """Prometheus' own relabel code (tests/helm/hashmod) gives every name of
    a sample, for every count, the shard client/shard.py gives it."""
    names = [*NAMES[::97], "status-server", "shop-api", "ünïcode-name", "a"]
    out = subprocess.run(
        [tool("GO", "go"), "run", ".", *map(str, COUNTS)],
        input="\n".join(names) + "\n",
        capture_output=True,
        text=True,
        cwd=ROOT / "tests/helm/hashmod",
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    prometheus = dict(line.split("\t") for line in out.stdout.splitlines())
    assert set(prometheus) == set(names)
    for name in names:
        ours = " ".join(str(shard.hashmod(name, count)) for count in COUNTS)
        assert ours == prometheus[name], name


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("2/5", None),
        ("0/1", None),
        ("5/5", "INDEX must be below COUNT"),
        ("0/0", "COUNT must be at least 1"),
        ("-1/3", "is not INDEX/COUNT"),
        ("1 / 3", "is not INDEX/COUNT"),
        ("2", "is not INDEX/COUNT"),
        ("a/b", "is not INDEX/COUNT"),
        ("01/3", "is not INDEX/COUNT"),  # a value means one thing: no leading zeros, no signs
        ("1/03", "is not INDEX/COUNT"),
        ("+1/3", "is not INDEX/COUNT"),
    ],
)
def test_shard_option(value: str, words: str | None) -> None:
    for argv, env, source in (
        ([f"--shard={value}", "--targets=t.yml"], {}, "--shard"),
        (["--targets=t.yml"], {"SHARD": value}, "SHARD"),
    ):
        if words is None:
            index, count = map(int, value.split("/"))
            assert parse_config(argv, env).shard == (index, count)
            continue
        with pytest.raises(ConfigError) as error:
            parse_config(argv, env)
        assert str(error.value).startswith(f"invalid {source}: {value!r}"), error.value
        assert words in str(error.value)


def test_no_shard_by_default() -> None:
    assert parse_config([], {}).shard is None


def test_a_bad_shard_exits_2_naming_the_option() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "client", "--shard", "3/3"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert out.stderr.startswith("python -m client: error: invalid --shard: '3/3'"), out.stderr
    assert "Traceback" not in out.stderr


def test_shard_needs_a_targets_file() -> None:
    with pytest.raises(ConfigError, match="--shard splits the targets of --targets"):
        parse_config(["--shard", "0/2"], {})


@pytest.mark.parametrize("count", [3, 7])
def test_each_monitor_probes_its_shard_only(client: ClientProcess, tmp_path: Path, count: int) -> None:
    """python -m client --shard i/N probes exactly the targets shard.select
    gives it, an empty shard none (not --target's server instead), and
    the N monitors together every target once."""
    names = [f"svc-{i}" for i in range(6)]
    path = tmp_path / "targets.yml"
    entries = "".join(f"  - {{name: {n}, url: 'http://127.0.0.1:1/'}}\n" for n in names)
    path.write_text(f"defaults: {{interval: 0.5, timeout: 0.4}}\ntargets:\n{entries}")
    assert any(not shard.select(names_as_targets(names), i, 7) for i in range(7)), "an empty shard is tested"
    probed: list[str] = []
    for index in range(count):
        mine = {n for n in names if shard.belongs(n, index, count)}
        proc, lines, reader = client(
            "--targets", str(path), "--shard", f"{index}/{count}", "--flaky-interval", "0", "--summary-interval", "1"
        )
        wait_for(lines, "fleet", timeout=20)  # after 1 s: every target of 0.5 s has had its first slot
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        reader.join(5)
        assert f"monitoring {len(mine)} targets" in lines[0]["message"], lines[0]
        got = {line["target"] for line in lines if line["event"] == "probe"}
        assert got == mine, (index, count)
        probed += sorted(got)
    assert sorted(probed) == sorted(names)


@dataclass(frozen=True)
class _Named:
    name: str


def names_as_targets(names: list[str]) -> list[_Named]:
    return [_Named(n) for n in names]
