"""Configuration: one typed object from flags and environment, validated once."""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from client.shard import parse_shard

# Only what the options need is imported here: python -m client.healthcheck
# reads three of them, and must stay cheap (no requests, no idna).

LOG_FORMATS = ("json", "text")


class ConfigError(Exception):
    """Bad input in a flag or environment variable; the message names it."""


@dataclass(frozen=True)
class Config:
    target: str
    interval: float
    timeout: float
    flaky_interval: float
    summary_interval: float
    loki_url: str | None
    log_format: str
    success_codes: frozenset[int]
    heartbeat_file: str | None = None
    loki_tenant: str | None = None
    targets: str | None = None  # the targets file; None = --target alone
    target_given: bool = False  # --target or TARGET_URL was set, not defaulted
    shard: tuple[int, int] | None = None  # (index, count); None = every target

    @property
    def status_url(self) -> str:
        return self.target + "/status"

    @property
    def flaky_url(self) -> str:
        return self.target + "/flaky"


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL with a host")
    try:
        port = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"{value!r} has a bad port: {exc}") from None
    if port == 0:  # no server listens on port 0: connecting there fails, as an odd error
        raise ValueError(f"{value!r} has a bad port: 0 is no port")
    _host(parts.hostname)
    return value


_LABEL = re.compile(r"[A-Za-z0-9_-]{1,63}", re.ASCII)


def _host(host: str) -> None:
    """Refuse a host name no resolver could be asked for: an empty label,
    whitespace, or characters IDNA cannot encode (as requests encodes them)."""
    with_brackets_stripped = host.strip("[]")
    try:
        ipaddress.ip_address(with_brackets_stripped)
        return
    except ValueError:
        pass
    if host.isascii():
        bad = [label for label in host.removesuffix(".").split(".") if not _LABEL.fullmatch(label)]
        if bad:
            raise ValueError(f"host {host!r} has a bad label {bad[0]!r}")
        return
    import idna  # only for a non-ASCII host: see the note on imports

    try:
        idna.encode(host, uts46=True)
    except idna.IDNAError as exc:
        raise ValueError(f"host {host!r} cannot be encoded: {exc}") from None


def _target(value: str) -> str:
    _url(value)
    parts = urlsplit(value)
    if parts.query or parts.fragment:
        raise ValueError(f"{value!r}: give the base URL only, without query or fragment")
    return value.rstrip("/")


_NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)", re.ASCII)


def _seconds(minimum: float, allow_zero: bool = False) -> Callable[[str], float]:
    def parse(value: str) -> float:
        if not _NUMBER.fullmatch(value):
            raise ValueError(f"{value!r} is not a number of seconds such as 2 or 0.5")
        seconds = float(value)
        if allow_zero and seconds == 0:
            return 0.0
        if seconds < minimum:
            zero = "0 or " if allow_zero else ""
            raise ValueError(f"{value!r} must be {zero}at least {minimum:g} seconds")
        if seconds > 86400:
            raise ValueError(f"{value!r} is more than a day")
        return seconds

    return parse


def _path(value: str) -> str:
    if not value.strip():
        raise ValueError("is empty")
    return value


#: Loki's tenant IDs (as Mimir's and Tempo's): at most 150 bytes of these
#: characters, and neither "." nor "..". "|" joins tenants in a query.
_TENANT = re.compile(r"[A-Za-z0-9!_.*'()-]{1,150}", re.ASCII)


def _tenant(value: str) -> str:
    if len(value) > 150:
        raise ValueError(f"{value[:20]!r}... is longer than Loki's 150 characters")
    if not _TENANT.fullmatch(value) or value in (".", ".."):
        raise ValueError(f"{value!r} is not a Loki tenant ID: letters, digits and ! - _ . * ' ( ) only")
    return value


def _log_format(value: str) -> str:
    if value not in LOG_FORMATS:
        raise ValueError(f"{value!r} is not one of {', '.join(LOG_FORMATS)}")
    return value


_CODES = re.compile(r"(\d{3})(?:-(\d{3}))?", re.ASCII)


def parse_codes(value: str) -> frozenset[int]:
    """Parse a list of status codes and ranges such as "200-299,304"."""
    codes: set[int] = set()
    for part in value.split(","):
        match = _CODES.fullmatch(part)
        if not match:
            raise ValueError(f"{part!r} is not a status code or a range such as 200-299")
        low, high = int(match[1]), int(match[2] or match[1])
        if not 100 <= low <= high <= 599:
            raise ValueError(f"{part!r} is not within 100-599")
        codes.update(range(low, high + 1))
    return frozenset(codes)


def format_codes(codes: frozenset[int]) -> str:
    """The shortest list of codes and ranges parse_codes reads back as codes."""
    parts: list[str] = []
    run: list[int] = []
    for code in [*sorted(codes), None]:
        if run and code != run[-1] + 1:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
            run = []
        if code is not None:
            run.append(code)
    return ",".join(parts)


def _plain(value: str) -> str:
    """Refuse a value whose surrounding whitespace a reader would not see."""
    if value != value.strip():
        raise ValueError(f"{value!r} has whitespace around it")
    return value


@dataclass(frozen=True)
class _Option:
    flag: str
    env: str
    parse: Callable[[str], Any]
    default: str | None
    help: str
    metavar: str = "SECONDS"


OPTIONS = (
    _Option("--target", "TARGET_URL", _target, "http://localhost:8080", "base URL of the status server", "URL"),
    _Option(
        "--interval",
        "PROBE_INTERVAL",
        _seconds(0.05),
        "3",
        "seconds between GET /status probes; with --targets, the default of each target's interval",
    ),
    _Option(
        "--timeout",
        "PROBE_TIMEOUT",
        _seconds(0.01),
        "2",
        "seconds one request may take in all: connecting, headers and body; "
        "with --targets, the default of each target's timeout",
    ),
    _Option(
        "--flaky-interval",
        "FLAKY_INTERVAL",
        _seconds(0.05, allow_zero=True),
        "10",
        "seconds between POST /flaky toggles; 0 = never toggle",
    ),
    _Option(
        "--summary-interval",
        "SUMMARY_INTERVAL",
        _seconds(0.05),
        "30",
        "seconds between summary records; also the window the verdict is computed over",
    ),
    _Option(
        "--loki-url",
        "LOKI_URL",
        _url,
        None,
        "Loki push URL, e.g. http://loki:3100/loki/api/v1/push; unset = stdout only",
        "URL",
    ),
    _Option(
        "--loki-tenant",
        "LOKI_TENANT",
        _tenant,
        None,
        "Loki tenant, sent as X-Scope-OrgID with every push; unset = no header (Loki's auth_enabled: false)",
        "TENANT",
    ),
    _Option(
        "--log-format", "LOG_FORMAT", _log_format, "json", "json (one object per line) or text (for people)", "FORMAT"
    ),
    _Option(
        "--heartbeat-file",
        "HEARTBEAT_FILE",
        _path,
        None,
        "file touched after every probe (with --targets, every half second), for python -m client.healthcheck; "
        "unset = none",
        "PATH",
    ),
    _Option(
        "--success-codes",
        "SUCCESS_CODES",
        parse_codes,
        "200-299",
        "status codes that count as success, e.g. 200-299,304; with --targets, the default of each target's "
        "expect.status",
        "CODES",
    ),
    _Option(
        "--targets",
        "TARGETS_FILE",
        _path,
        None,
        "YAML file of targets to probe instead of --target's /status (see client/targets.example.yml); "
        "--target then only receives the flaky toggles, if given",
        "FILE",
    ),
    _Option(
        "--shard",
        "SHARD",
        parse_shard,
        None,
        "probe only this shard of the targets, e.g. 2/5 (numbered from 0): those whose name Prometheus' "
        "hashmod puts there; needs --targets; unset = every target",
        "INDEX/COUNT",
    ),
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m client",
        allow_abbrev=False,
        description=(
            "Probe the status server on a schedule (or, with --targets, every target a YAML file lists, each "
            "with its own expectations), log one JSON record per request to stdout (and Loki), toggle its "
            "flaky mode, and say whether each is healthy."
        ),
        epilog=ENV_FALLBACK,
    )
    add_options(parser, OPTIONS)
    return parser


ENV_FALLBACK = "Each option falls back to the environment variable in brackets, then to its default."


def add_options(parser: argparse.ArgumentParser, options: Sequence[_Option]) -> None:
    """One flag per option, its help naming its default and variable."""
    for opt in options:
        default = f" (default: {opt.default})" if opt.default is not None else ""
        parser.add_argument(opt.flag, metavar=opt.metavar, help=f"{opt.help}{default} [{opt.env}]")


def resolve(options: Sequence[_Option], args: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Each option's value: the flag, else its environment variable, else
    its default, parsed; raises ConfigError naming the bad one."""
    values: dict[str, Any] = {}
    for opt in options:
        name = opt.flag.removeprefix("--").replace("-", "_")
        raw, source = args[name], opt.flag
        if raw is None and environ.get(opt.env):
            raw, source = environ[opt.env], opt.env
        if raw is None:
            raw, source = opt.default, f"the default of {opt.flag}"
        try:
            values[name] = None if raw is None else opt.parse(_plain(raw))
        except ValueError as exc:
            from client.probe import hide_password  # see the note on imports

            raise ConfigError(f"invalid {source}: {hide_password(str(exc), raw)}") from None
    return values


def parse_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Build the configuration; raises ConfigError naming the bad option.

    argparse itself exits 2 on unknown flags and prints the help on -h.
    """
    environ = os.environ if environ is None else environ
    args = vars(_parser().parse_args(argv))
    config = Config(
        **resolve(OPTIONS, args, environ), target_given=args["target"] is not None or bool(environ.get("TARGET_URL"))
    )
    if config.timeout >= config.interval:
        raise ConfigError(
            f"--timeout ({config.timeout:g} s) is not shorter than --interval ({config.interval:g} s): "
            "a probe could still run when the next one is due"
        )
    if config.summary_interval < config.interval and config.targets is None:  # else checked per target
        raise ConfigError(
            f"--summary-interval ({config.summary_interval:g} s) is shorter than --interval "
            f"({config.interval:g} s): a summary would see no probe"
        )
    if config.shard is not None and config.targets is None:
        raise ConfigError("--shard splits the targets of --targets: give --targets too")
    return config
