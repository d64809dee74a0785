"""python -m client.healthcheck: exit 0 while the monitor's loop is alive.

The loop touches the heartbeat file after every probe. The check takes the
client's --heartbeat-file, --interval and --timeout (each falling back to
the same environment variable as in the client) and fails when the file is
older than 2 x (interval + timeout) + 5 s: two probes in a row that never
finished. It imports only what it needs: it runs every few seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import NoReturn

from client.config import ENV_FALLBACK, OPTIONS, ConfigError, add_options, resolve

#: The client's options the check reads.
CHECK_OPTIONS = tuple(opt for opt in OPTIONS if opt.flag in ("--heartbeat-file", "--interval", "--timeout"))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse exits 2, which Docker reserves: a health check fails with 1.
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def max_age(interval: float, timeout: float) -> float:
    return 2 * (interval + timeout) + 5


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    now: Callable[[], float] = time.time,
) -> int:
    parser = _Parser(
        prog="python -m client.healthcheck",
        allow_abbrev=False,
        description="Exit 0 while python -m client's loop is alive: its heartbeat file is fresh.",
        epilog=ENV_FALLBACK,
    )
    add_options(parser, CHECK_OPTIONS)
    try:
        values = resolve(CHECK_OPTIONS, vars(parser.parse_args(argv)), os.environ if environ is None else environ)
    except ConfigError as exc:
        sys.stderr.write(f"unhealthy: {exc}\n")
        return 1
    if not values["heartbeat_file"]:
        sys.stderr.write("unhealthy: neither --heartbeat-file nor HEARTBEAT_FILE is set\n")
        return 1
    try:
        age = now() - os.stat(values["heartbeat_file"]).st_mtime
    except OSError as exc:
        sys.stderr.write(f"unhealthy: no heartbeat: {exc}\n")
        return 1
    limit = max_age(values["interval"], values["timeout"])
    if age > limit:
        sys.stderr.write(f"unhealthy: the last probe finished {age:.0f} s ago (limit {limit:.0f} s)\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
