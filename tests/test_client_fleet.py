"""Many targets on one loop: no target waits for another, every target gets
one probe record per slot, and every record names its target."""

from __future__ import annotations

import datetime
import io
import itertools
import json
import signal
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import time_machine

from client.config import parse_config
from client.fleet import Fleet, Toggle, fleet_toggle, judged, offset, pool_size
from client.logs import Logs
from client.monitor import Stop
from client.probe import ProbeResult, ToggleResult
from client.summary import DEGRADED, DOWN, HEALTHY, Summary
from client.targets import Expect, Target
from client.tracing import TraceSettings, Tracing
from client.transport import Phase
from tests.conftest import ClientProcess, FaultServer, answer, read_request, schema_errors, stand_ins
from tests.test_client_main import wait_for
from tests.test_traces import OTLPReceiver

OK = frozenset({200})


def ok(conn: socket.socket) -> None:
    read_request(conn)
    conn.sendall(answer("200 OK", b'{"status": "UP"}', "Content-Type: application/json\r\n"))


def hang(conn: socket.socket) -> None:
    read_request(conn)
    conn.recv(1)


def records(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def up(target: Target) -> ProbeResult:
    return ProbeResult("GET", target.url, 200, 1.0, True, None, None, "")


def run_for(fleet: Fleet, seconds: float) -> None:
    """Run fleet until seconds have passed."""
    stop = Stop()
    threading.Timer(seconds, stop.request).start()
    fleet.run(stop)
    stop.close()


def test_a_hung_target_delays_no_other(fault_server: Callable[..., FaultServer]) -> None:
    """Six targets on one interval, one of them hanging for its whole
    timeout: every target gets a record for every slot, the slots follow
    each other by exactly the interval, and the others start on time."""
    interval, timeout, runtime = 2.0, 1.5, 6.5
    targets = [Target(f"ok-{i}", fault_server(ok).url + "/", "GET", interval, timeout, Expect(OK)) for i in range(5)]
    targets.append(Target("hung", fault_server(hang).url + "/", "GET", interval, timeout, Expect(OK)))
    starts: dict[str, list[tuple[float, float]]] = defaultdict(list)
    out = io.StringIO()
    fleet = Fleet(
        tuple(targets), Logs(parse_config([], {}), out).events, 30,
        on_start=lambda name, slot, began: starts[name].append((slot, began)),
    )  # fmt: skip
    run_for(fleet, runtime)

    lines = records(out)
    probes = Counter(line["target"] for line in lines if line["event"] == "probe")
    assert probes == Counter({name: len(starts[name]) for name in starts})
    for target in targets:
        slots = [slot for slot, _ in starts[target.name]]
        assert len(slots) >= int(runtime / interval) - 1, target.name
        assert all(abs(b - a - interval) < 1e-9 for a, b in itertools.pairwise(slots)), slots
    late = [began - slot for name, series in starts.items() if name != "hung" for slot, began in series]
    assert max(late) < 1.0, f"a probe started {max(late):.3f} s late behind the hung target"
    hung = [line for line in lines if line["event"] == "probe" and line["target"] == "hung"]
    assert {line["error_type"] for line in hung} == {"read_timeout"}
    for line in lines:
        assert schema_errors(line) == [], line


def test_summaries_per_target_and_the_fleet(fault_server: Callable[..., FaultServer]) -> None:
    """A verdict per target (max_duration makes a slow one degraded, not
    down), and the fleet's counts."""

    def slow(conn: socket.socket) -> None:
        read_request(conn)
        time.sleep(0.2)
        conn.sendall(answer("200 OK", b"OK"))

    targets = (
        Target("up", fault_server(ok).url + "/", "GET", 1.2, 1.0, Expect(OK, max_duration=30)),
        Target("slow", fault_server(slow).url + "/", "GET", 1.2, 1.0, Expect(OK, max_duration=0.1)),
        Target("down", fault_server(hang).url + "/", "GET", 1.2, 0.3, Expect(OK)),
    )
    out = io.StringIO()
    fleet = Fleet(targets, Logs(parse_config([], {}), out).events, 2.5)
    run_for(fleet, 5.5)
    lines = records(out)
    summaries = [line for line in lines if line["event"] == "summary"]
    last = {line["target"]: line["verdict"] for line in summaries}
    assert last == {"up": HEALTHY, "slow": DEGRADED, "down": DOWN}
    fleets = [line for line in lines if line["event"] == "fleet"]
    assert len(fleets) == len(summaries) / 3
    assert {k: fleets[-1][k] for k in ("targets", "healthy", "degraded", "down", "unknown")} == {
        "targets": 3, "healthy": 1, "degraded": 1, "down": 1, "unknown": 0
    }  # fmt: skip
    changes = [(line["target"], line["verdict"]) for line in lines if line["event"] == "health_changed"]
    assert {("up", HEALTHY), ("slow", DEGRADED), ("down", DOWN)} <= set(changes)


def test_offsets_are_stable_and_spread() -> None:
    assert offset("api", 15) == offset("api", 15)
    spread = sorted(offset(f"target-{i}", 15) for i in range(1000))
    assert spread[0] >= 0
    assert spread[-1] < 15
    per_second = Counter(int(o) for o in spread)
    assert max(per_second.values()) < 120, per_second  # 67 a second on average, never a burst of 1,000


def test_the_pool_fits_every_target_hanging_at_once() -> None:
    targets = tuple(Target(f"t{i}", "http://x/", "GET", 15, 5, Expect(OK)) for i in range(1000))
    assert 333 < pool_size(targets) <= 512
    assert pool_size(targets[:1]) >= 1


def test_max_duration_degrades_and_never_downs() -> None:
    s = Summary(30, 10, 10, 100.0, 20.0, 600.0, 700.0, {}, DEGRADED, "p95 latency 600 ms >= 300 ms")
    assert judged(s, 1.0).verdict == HEALTHY
    assert judged(s, 0.5).verdict == DEGRADED
    failing = Summary(30, 10, 2, 20.0, 20.0, 600.0, 700.0, {}, DOWN, "availability 20% < 50%")
    assert judged(failing, 10).verdict == DOWN


def test_targets_file_end_to_end(
    tmp_path: Path, fault_server: Callable[..., FaultServer], client: ClientProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """python -m client --targets: one record per probe, each naming its
    target; a header's secret reaches the server and no record."""
    seen: list[bytes] = []

    def record_and_answer(conn: socket.socket) -> None:
        seen.append(read_request(conn))
        conn.sendall(answer("200 OK", b'{"status": "UP"}', "Content-Type: application/json\r\n"))

    url = fault_server(record_and_answer).url
    path = tmp_path / "targets.yml"
    path.write_text(
        f"""
defaults: {{interval: 0.5, timeout: 0.45}}
targets:
  - name: api
    url: {url}/health
    headers: {{Authorization: "Bearer ${{API_TOKEN}}"}}
    expect:
      json: [{{query: status, equals: UP}}]
  - name: api-wrong
    url: {url}/health
    expect:
      body: {{not_matches: ['"UP"']}}
"""
    )
    monkeypatch.setenv("API_TOKEN", "s3cret-token")
    proc, lines, reader = client("--targets", str(path), "--summary-interval", "1", "--flaky-interval", "0")
    wait_for(lines, "fleet")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    reader.join(5)
    assert lines[0]["event"] == "started"
    assert lines[0]["targets_file"] == str(path)
    probes = [line for line in lines if line["event"] == "probe"]
    assert {line["target"] for line in probes} == {"api", "api-wrong"}
    # a loaded machine may time a probe out; anything else is a bug
    assert {line["error_type"] for line in probes if line["target"] == "api"} <= {None, "read_timeout"}
    assert {line["error_type"] for line in probes if line["target"] == "api-wrong"} <= {"body_mismatch", "read_timeout"}
    assert any(line["success"] for line in probes if line["target"] == "api")
    assert any(line["error_type"] == "body_mismatch" for line in probes)
    assert any(b"Bearer s3cret-token" in request for request in seen)
    assert not any("s3cret" in json.dumps(line) for line in lines)
    assert lines[-1]["event"] == "stopped"
    assert lines[-1]["probes"] == len(probes)


def test_a_probe_that_raises_still_gives_its_record() -> None:
    def broken(_: Target) -> Any:
        raise RuntimeError("bug")

    out = io.StringIO()
    fleet = Fleet(
        (Target("t", "http://x.invalid/", "GET", 0.2, 0.1, Expect(OK)),), Logs(parse_config([], {}), out).events, 1
    )
    fleet.probe_fn = broken
    run_for(fleet, 1.0)
    lines = records(out)
    probes = [line for line in lines if line["event"] == "probe"]
    assert probes
    assert {line["error_type"] for line in probes} == {"unknown"}
    assert any(line["event"] == "internal_error" for line in lines)


@pytest.fixture
def otlp() -> Iterator[Callable[[str], OTLPReceiver]]:
    yield from stand_ins(OTLPReceiver)


def test_concurrent_probes_keep_their_own_trace_ids(otlp: Callable[[str], OTLPReceiver]) -> None:
    """Workers record spans at once; each root span keeps the IDs its probe
    sent, and no child takes them."""
    receiver = otlp("ok")
    counter = itertools.count()

    def fake_probe(target: Target) -> ProbeResult:
        n = next(counter)
        phases = tuple(Phase(p, i / 1000, (i + 1) / 1000) for i, p in enumerate(("dns", "connect", "wait", "transfer")))
        return ProbeResult(
            "GET", target.url, 200, 4.0, True, None, None, f"{n + 1:032x}",
            span_id=f"{n + 1:016x}", started_at=time.time(), phases=phases,
        )  # fmt: skip

    targets = tuple(Target(f"t{i}", f"http://t{i}.invalid/", "GET", 0.05, 0.04, Expect(OK)) for i in range(40))
    tracing = Tracing(TraceSettings(receiver.url + "/v1/traces", 5.0))
    fleet = Fleet(targets, Logs(parse_config([], {}), io.StringIO()).events, 1, tracing=tracing, probe_fn=fake_probe)
    run_for(fleet, 1.5)
    tracing.close()
    roots = [s for s in receiver.spans if not s.parent_id]
    children = [s for s in receiver.spans if s.parent_id]
    assert len(roots) == fleet.probes
    assert all(r.trace_id == f"{int(r.span_id, 16):032x}" for r in roots)
    assert len({s.span_id for s in receiver.spans}) == len(receiver.spans)
    by_id = {r.span_id: r for r in roots}
    assert all(c.parent_id in by_id and by_id[c.parent_id].trace_id == c.trace_id for c in children)


def test_the_example_file_runs(client: ClientProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    """The example's hosts do not resolve here: every target still gets its
    records, each failing as dns (or dns_timeout) under its own name."""
    monkeypatch.setenv("SHOP_API_TOKEN", "s3cret")
    proc, lines, reader = client("--targets", "client/targets.example.yml", "--flaky-interval", "0")
    wait_for(lines, "probe", timeout=20)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    reader.join(5)
    assert lines[0]["targets_file"] == "client/targets.example.yml"
    probes = [line for line in lines if line["event"] == "probe"]
    assert {line["target"] for line in probes} <= {"status-server", "shop-api", "docs-site", "cdn-edge"}
    assert all(line["error_type"] in ("dns", "dns_timeout", "connect_refused") for line in probes), probes


@pytest.mark.parametrize(
    ("argv", "environ", "toggle"),
    [
        (["--targets", "f.yml"], {}, None),
        (["--targets", "f.yml", "--target", "http://s:1"], {}, Toggle("http://s:1/flaky", 10, 2)),
        (["--targets", "f.yml"], {"TARGET_URL": "http://s:1"}, Toggle("http://s:1/flaky", 10, 2)),
        (["--targets", "f.yml", "--target", "http://s:1", "--flaky-interval", "0"], {}, None),
        (
            ["--targets", "f.yml", "--target", "http://s:1", "--flaky-interval", "1"],
            {},
            Toggle("http://s:1/flaky", 1, 0.9),
        ),
    ],
)
def test_with_targets_only_a_given_target_is_toggled(
    argv: list[str], environ: dict[str, str], toggle: Toggle | None
) -> None:
    assert fleet_toggle(parse_config(argv, environ)) == toggle


def test_a_failing_record_costs_no_verdict() -> None:
    """Each side effect of a probe runs even when another one failed: a
    probe record that cannot be written still leaves the verdict."""
    out = io.StringIO()
    events = Logs(parse_config([], {}), out).events

    def broken(*_: object) -> None:
        raise OSError("disk full")

    events.probe = broken  # type: ignore[method-assign]
    fleet = Fleet((Target("t", "http://t.invalid/", "GET", 0.2, 0.1, Expect(OK)),), events, 1, probe_fn=up)
    run_for(fleet, 0.5)
    lines = records(out)
    assert [line["verdict"] for line in lines if line["event"] == "health_changed"] == [HEALTHY]
    assert any(line["event"] == "internal_error" and "disk full" in line["error"] for line in lines)


def test_the_fleet_turns_flaky_mode_back_off_at_stop() -> None:
    states = itertools.cycle((True, False))

    def toggle(url: str, budget: float) -> ToggleResult:
        return ToggleResult("POST", url, 200, 1.0, True, None, None, "", flaky=next(states))

    out = io.StringIO()
    fleet = Fleet(
        (Target("t", "http://t.invalid/", "GET", 1, 0.5, Expect(OK)),), Logs(parse_config([], {}), out).events, 1,
        probe_fn=up, toggle=Toggle("http://s.invalid/flaky", 0.3, 0.2), toggle_fn=toggle,
    )  # fmt: skip
    run_for(fleet, 0.45)  # one toggle: flaky mode on
    assert fleet.toggles == 1
    assert fleet.restore_flaky() == "flaky mode turned back off"
    toggles = [line for line in records(out) if line["event"] == "flaky_toggle"]
    assert [line["restore"] for line in toggles] == [False, True]


def test_the_fleet_says_once_when_the_heartbeat_fails_and_recovers(tmp_path: Path) -> None:
    beat_dir = tmp_path / "beat"
    beat_dir.mkdir()
    out = io.StringIO()
    fleet = Fleet(
        (Target("t", "http://t.invalid/", "GET", 1, 0.5, Expect(OK)),), Logs(parse_config([], {}), out).events, 1,
        probe_fn=up, heartbeat=beat_dir / "beat",
    )  # fmt: skip
    stop = Stop()
    runner = threading.Thread(target=fleet.run, args=(stop,))
    runner.start()
    assert wait_until(lambda: (beat_dir / "beat").exists())
    (beat_dir / "beat").unlink()
    beat_dir.rmdir()
    assert wait_until(lambda: any(line["event"] == "heartbeat" for line in records(out)))
    time.sleep(1.2)  # more beats fail: said once
    beat_dir.mkdir()
    assert wait_until(lambda: (beat_dir / "beat").exists())
    stop.request()
    runner.join(10)
    stop.close()
    beats = [(line["state"], line["error"] is None) for line in records(out) if line["event"] == "heartbeat"]
    assert beats == [("failing", False), ("recovered", True)]


def wait_until(ready: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_seq_counts_each_targets_probes_apart() -> None:
    out = io.StringIO()
    a, b = (Target(name, "http://x.invalid/", "GET", 1, 0.5, Expect(OK)) for name in ("a", "b"))
    fleet = Fleet((a, b), Logs(parse_config([], {}), out).events, 2)
    fleet.probe_fn = up
    for target in (a, b, a):
        fleet.probe_once(target, 0.0)
    seqs = [(line["target"], line["seq"]) for line in records(out) if line["event"] == "probe"]
    assert seqs == [("a", 1), ("b", 1), ("a", 2)]
    assert fleet.probes == 3


@pytest.mark.parametrize("step", [-20.0, 20.0])
def test_a_wall_clock_step_changes_no_targets_rhythm(step: float) -> None:
    """The fleet's slots are on the monotonic clock, as the loop's: the
    wall clock stepped mid-run (NTP, a resumed VM) stalls no target and
    adds no probe."""
    starts: defaultdict[str, list[float]] = defaultdict(list)
    targets = tuple(Target(name, "http://x.invalid/", "GET", 0.2, 0.1, Expect(OK)) for name in ("a", "b"))
    fleet = Fleet(targets, Logs(parse_config([], {}), io.StringIO()).events, 10)
    fleet.probe_fn = up
    fleet.on_start = lambda name, _slot, at: starts[name].append(at)
    stop = Stop()
    with time_machine.travel(datetime.datetime.now(), tick=True) as traveller:
        stepped = threading.Timer(0.7, traveller.shift, args=(step,))
        stepped.start()
        threading.Timer(2.5, stop.request).start()
        fleet.run(stop)
        stepped.join()
    stop.close()
    for name, at in starts.items():
        gaps = [b - a for a, b in itertools.pairwise(at)]
        assert len(at) >= 8, (name, at)
        assert max(gaps) < 1.0, (name, gaps)  # stepped back, schedule's own timing stalled for 20 s
        assert len(at) <= (at[-1] - at[0]) / 0.2 + 2, (name, gaps)  # and none came extra
