"""python -m client: parse the configuration, wire the parts, run."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import TextIO

from client import __version__, shard
from client.config import ConfigError, format_codes, parse_config
from client.fleet import Fleet, fleet_toggle
from client.logs import Logs, discard_stdout
from client.monitor import Monitor, Stop, run
from client.probe import redact
from client.targets import load_targets
from client.tracing import Tracing, trace_settings

#: The exit status when stdout was closed under the client: 128 + SIGPIPE,
#: what a shell reports for a Unix tool that a closed pipe ended.
STDOUT_CLOSED = 128 + signal.SIGPIPE


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    stream: TextIO = sys.stdout,
) -> int:
    try:
        config = parse_config(argv, environ)
        traces = trace_settings(os.environ if environ is None else environ)
        targets = load_targets(config.targets, config, environ) if config.targets else ()
        if config.shard is not None:
            targets = tuple(shard.select(targets, *config.shard))
    except ConfigError as exc:
        sys.stderr.write(f"python -m client: error: {exc}\n")
        return 2

    heartbeat = Path(config.heartbeat_file) if config.heartbeat_file else None
    if heartbeat is not None:
        try:
            heartbeat.touch()
        except OSError as exc:
            sys.stderr.write(f"python -m client: error: cannot write --heartbeat-file: {exc}\n")
            return 2

    stop = Stop()
    logs = Logs(config, stream, on_stdout_closed=stop.request)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.request()  # a flag and a byte on a pipe: no lock

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    tracing = Tracing(traces)
    monitor: Monitor | Fleet
    if config.targets:  # a shard may hold no target: it then probes nothing
        toggle = fleet_toggle(config)
        monitor = Fleet(
            targets, logs.events, config.summary_interval, toggle=toggle, heartbeat=heartbeat, tracing=tracing
        )
        of = f" (shard {config.shard[0]}/{config.shard[1]})" if config.shard else ""
        what = f"monitoring {len(targets)} targets from {config.targets}{of}"
    else:
        monitor = Monitor(config, logs.events, heartbeat=heartbeat, tracing=tracing)
        what = f"monitoring {redact(config.status_url)} every {config.interval:g} s"
    logs.events.emit(
        logging.INFO, "started", what,
        version=__version__, target=redact(config.target), interval=config.interval,
        timeout=config.timeout, flaky_interval=config.flaky_interval,
        summary_interval=config.summary_interval, success_codes=format_codes(config.success_codes),
        log_format=config.log_format, loki_url=config.loki_url and redact(config.loki_url),
        heartbeat_file=config.heartbeat_file, loki_tenant=config.loki_tenant, targets_file=config.targets,
    )  # fmt: skip
    restored = ""
    try:
        if isinstance(monitor, Fleet):
            monitor.run(stop)
        else:
            run(monitor, stop)
        restored = monitor.restore_flaky()
    finally:
        logs.events.emit(
            logging.INFO, "stopped", f"stopped after {monitor.probes} probes" + (f"; {restored}" if restored else ""),
            probes=monitor.probes, toggles=monitor.toggles,
        )  # fmt: skip
        with tracing.closing():  # spans drain beside the Loki queue, each within its bound
            logs.close()
        stop.close()
    if logs.stdout.closed:  # python -m client | head -1: stop as Unix tools do
        if stream is sys.stdout:
            discard_stdout()
        return STDOUT_CLOSED
    return 0


if __name__ == "__main__":
    sys.exit(main())
