"""python -m client.healthcheck: exit 0 while the monitor's loop is alive.

The loop touches HEARTBEAT_FILE after every probe. The check reads the same
environment as the client and fails when the file is older than
2 x (interval + timeout) + 5 s: two probes in a row that never finished.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping

from client.config import Config, ConfigError, parse_config


def max_age(config: Config) -> float:
    return 2 * (config.interval + config.timeout) + 5


def main(environ: Mapping[str, str] | None = None, now: Callable[[], float] = time.time) -> int:
    try:
        config = parse_config([], os.environ if environ is None else environ)
    except ConfigError as exc:
        sys.stderr.write(f"unhealthy: {exc}\n")
        return 1
    if not config.heartbeat_file:
        sys.stderr.write("unhealthy: HEARTBEAT_FILE is not set\n")
        return 1
    try:
        age = now() - os.stat(config.heartbeat_file).st_mtime
    except OSError as exc:
        sys.stderr.write(f"unhealthy: no heartbeat: {exc}\n")
        return 1
    if age > max_age(config):
        sys.stderr.write(f"unhealthy: the last probe finished {age:.0f} s ago (limit {max_age(config):.0f} s)\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
