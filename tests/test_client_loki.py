"""The Loki path, against a loopback stand-in for Loki's push API: payload
shape, labels, lines equal to stdout; and with Loki slow, failing, down or
black-holed, probes keep their rhythm and shutdown stays bounded."""

from __future__ import annotations

import io
import itertools
import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from client.config import parse_config
from client.logs import LOKI_DRAIN, LOKI_TIMEOUT, Logs
from client.monitor import Monitor, Stop, run
from client.probe import ProbeResult, probe
from tests.conftest import GoServer, LokiReceiver, free_port


def test_payload_labels_and_lines(loki: Callable[[str], LokiReceiver], go_server: Callable[..., GoServer]) -> None:
    receiver = loki("ok")
    server = go_server()
    out = io.StringIO()
    config = parse_config(["--target", server.url, "--loki-url", receiver.url], {})
    logs = Logs(config, out)
    monitor = Monitor(config, logs.events)
    for _ in range(5):
        monitor.probe_once()
    monitor.toggle_once(config.timeout)
    monitor.summarize()
    logs.close()

    stdout = out.getvalue().splitlines()
    shipped = stdout[:-1]  # the last line, the shipping report, stays local
    assert json.loads(stdout[-1])["event"] == "loki_shipping"
    assert len(receiver.pushes) == len(shipped) == 8  # 5 probes, health_changed, toggle, summary
    for push, line in zip(receiver.pushes, shipped, strict=True):
        assert push["path"] == "/loki/api/v1/push"
        (stream,) = push["payload"]["streams"]
        record = json.loads(line)
        assert stream["stream"] == {"service_name": "status-monitor", "severity": record["level"], "logger": "monitor"}
        ((ts, text),) = stream["values"]
        assert text == line, "Loki gets the stdout line"
        # The entry's time is the record's, not the send time.
        stamp = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")).timestamp()
        assert abs(int(ts) / 1e9 - stamp) < 0.001


@pytest.mark.parametrize("tenant", ["prod", None])
def test_every_push_names_the_tenant(loki: Callable[[str], LokiReceiver], tenant: str | None) -> None:
    receiver = loki("ok")
    argv = ["--loki-url", receiver.url] + (["--loki-tenant", tenant] if tenant else [])
    logs = Logs(parse_config(argv, {}), io.StringIO())
    for n in range(3):
        logs.events.probe(n, ProbeResult("GET", "u", 200, 1.0, True, None, None, "0" * 32))
    logs.close()
    assert len(receiver.pushes) == 3
    assert [push["tenant"] for push in receiver.pushes] == [tenant] * 3


def test_text_on_stdout_json_to_loki(loki: Callable[[str], LokiReceiver]) -> None:
    receiver = loki("ok")
    out = io.StringIO()
    config = parse_config(["--loki-url", receiver.url, "--log-format", "text"], {})
    logs = Logs(config, out)
    logs.events.probe(1, ProbeResult("GET", "u", 200, 1.0, True, None, None, "0" * 32))
    logs.close()
    assert not out.getvalue().startswith("{")
    (push,) = receiver.pushes
    assert json.loads(push["payload"]["streams"][0]["values"][0][1])["event"] == "probe"


@pytest.mark.parametrize("mode", ["slow", "fail", "blackhole", "down"])
def test_loki_trouble_never_delays_a_probe(
    mode: str,
    loki: Callable[[str], LokiReceiver],
    go_server: Callable[..., GoServer],
    capfd: pytest.CaptureFixture[str],
) -> None:
    url = f"http://127.0.0.1:{free_port()}/loki/api/v1/push" if mode == "down" else loki(mode).url
    server = go_server("-flaky", "-max-delay", "100ms")
    interval, timeout = 0.2, 0.15
    config = parse_config(
        ["--target", server.url, "--loki-url", url, "--interval", str(interval), "--timeout", str(timeout),
         "--summary-interval", "0.5", "--flaky-interval", "0"], {},
    )  # fmt: skip
    out = io.StringIO()
    logs = Logs(config, out, loki_timeout=0.5, loki_drain=0.5)
    starts: list[float] = []

    def timed_probe(*args: Any) -> ProbeResult:
        starts.append(time.monotonic())
        return probe(*args)

    monitor = Monitor(config, logs.events, probe_fn=timed_probe)
    stop = Stop()
    thread = threading.Thread(target=run, args=(monitor, stop))
    thread.start()
    while len(starts) < 15:
        time.sleep(0.01)
    stop.request()
    thread.join(5)
    stop.close()
    began = time.monotonic()
    logs.close()
    closing = time.monotonic() - began

    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert max(gaps) <= interval + 1.5, gaps  # a push to the slow Loki takes 2 s
    assert closing <= 0.5 + 0.5 + 1.0, f"close took {closing:.2f} s"

    stats = logs.stats
    if mode != "slow":
        assert stats.sent == 0
        assert stats.failed + stats.abandoned + stats.dropped > 0
        events = [json.loads(line) for line in out.getvalue().splitlines()]
        reports = [e for e in events if e["event"] == "loki_shipping"]
        assert reports[0]["state"] == "failing"
        assert reports[-1]["state"] == "stopped"
    assert "Traceback" not in capfd.readouterr().err, "a failed push must not print a traceback"


def test_shutdown_drain_is_bounded_with_the_defaults(loki: Callable[[str], LokiReceiver]) -> None:
    receiver = loki("blackhole")
    config = parse_config(["--loki-url", receiver.url], {})
    out = io.StringIO()
    logs = Logs(config, out)
    for i in range(50):
        logs.events.probe(i, ProbeResult("GET", "u", 200, 1.0, True, None, None, "0" * 32))
    began = time.monotonic()
    logs.close()
    assert time.monotonic() - began <= LOKI_DRAIN + LOKI_TIMEOUT + 1.0
    report = json.loads(out.getvalue().splitlines()[-1])
    assert report["event"] == "loki_shipping"
    assert report["state"] == "stopped"
    assert report["sent"] == 0
    assert report["failed"] + report["abandoned"] == 50
