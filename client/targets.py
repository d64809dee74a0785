"""The targets file: YAML, checked against targets.schema.json, then turned
into one immutable Target per entry, once, at start.

A bad file is refused with a message that names the file, the target (by
name, and by its place in the list) and the field.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jmespath
import jmespath.exceptions
import jmespath.parser
import jsonschema
import yaml

from client.config import Config, ConfigError, _url, parse_codes
from client.summary import SLOW_P95_MS

SCHEMA: dict[str, Any] = json.loads((Path(__file__).parent / "targets.schema.json").read_text())
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

#: The name of the one target --target makes (and of the status server's
#: records when no file is given).
STATUS_SERVER = "status-server"
#: The expect.max_duration a target has unless told: today's p95 threshold.
DEFAULT_MAX_DURATION = SLOW_P95_MS / 1000

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class HeaderRule:
    """A response header that must be present (unless allow_missing) and
    match / not match."""

    name: str
    matches: re.Pattern[str] | None = None
    not_matches: re.Pattern[str] | None = None
    allow_missing: bool = False


@dataclass(frozen=True)
class JsonRule:
    """A JMESPath query on the JSON body and the value it must give."""

    query: str
    equals: Any
    compiled: jmespath.parser.ParsedResult = field(compare=False, repr=False)


@dataclass(frozen=True)
class Expect:
    """What a healthy answer looks like."""

    status: frozenset[int]
    headers: tuple[HeaderRule, ...] = ()
    body_matches: tuple[re.Pattern[str], ...] = ()
    body_not_matches: tuple[re.Pattern[str], ...] = ()
    json: tuple[JsonRule, ...] = ()
    tls_min_days: float | None = None
    max_duration: float = DEFAULT_MAX_DURATION  # seconds


@dataclass(frozen=True)
class Target:
    """Everything needed to probe one target and judge its answer."""

    name: str
    url: str
    method: str
    interval: float
    timeout: float
    expect: Expect
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # may hold secrets
    ca_bundle: str = ""  # the file's ca_file: the CAs an https answer is verified against, else certifi's
    secrets: tuple[str, ...] = field(default=(), repr=False)  # the ${VAR} values in headers: never shown


def status_server(config: Config) -> Target:
    """The one target --target stands for, with today's defaults."""
    return Target(
        STATUS_SERVER, config.status_url, "GET", config.interval, config.timeout, Expect(config.success_codes)
    )


def load_targets(path: str, config: Config, environ: Mapping[str, str] | None = None) -> tuple[Target, ...]:
    """Read, validate and build the targets of the file at path; raises
    ConfigError naming the file, the target and the field."""
    environ = os.environ if environ is None else environ
    data = _read(path)
    errors = sorted(_VALIDATOR.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError(f"{path}: {_where(data, list(errors[0].absolute_path))}{_message(errors[0])}")
    defaults = data.get("defaults", {})
    targets: list[Target] = []
    for index, entry in enumerate(data["targets"]):
        place = f"target {entry['name']!r} (targets[{index}])"
        try:
            target = _target(_merged(defaults, entry), config, environ)
            if "tls" in entry.get("expect", {}) and not target.url.lower().startswith("https:"):
                # From the defaults it is every https target's: an http one has no certificate to judge.
                raise _FieldError("expect.tls", "an http URL has no certificate to judge")
        except _FieldError as exc:
            raise ConfigError(f"{path}: {place}, field {exc.field}: {' '.join(exc.message.split())}") from None
        if any(t.name == target.name for t in targets):
            raise ConfigError(f"{path}: {place}, field name: {target.name!r} is the name of an earlier target")
        targets.append(target)
    return tuple(targets)


def _read(path: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read --targets {path}: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not YAML: {' '.join(str(exc).split())}") from None


def _where(data: Any, at: list[Any]) -> str:
    """Where an error is, in words: the target by name and place, then the field."""
    if not at:
        return ""
    if at[0] == "targets" and len(at) > 1:
        entry = data["targets"][at[1]]
        name = entry.get("name") if isinstance(entry, dict) else None
        who = f"target {name!r} (targets[{at[1]}])" if isinstance(name, str) else f"targets[{at[1]}]"
        rest = at[2:]
    else:
        who, rest = str(at[0]), at[1:]
    return f"{who}, field {_dotted(rest)}: " if rest else f"{who}: "


def _dotted(at: list[Any]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in at).lstrip(".")


def _message(error: jsonschema.ValidationError) -> str:
    if error.validator in ("unevaluatedProperties", "additionalProperties"):
        found = re.findall(r"'([^']*)'", error.message)
        return f"unknown key {', '.join(map(repr, found)) or error.message}"
    return error.message


class _FieldError(Exception):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field_name, message


def _merged(defaults: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """The entry over the defaults; headers and expect merge key by key."""
    merged = {**defaults, **entry}
    for key in ("headers", "expect"):
        merged[key] = {**defaults.get(key, {}), **entry.get(key, {})}
    return merged


def _target(raw: dict[str, Any], config: Config, environ: Mapping[str, str]) -> Target:
    try:
        url = _url(raw["url"])
    except ValueError as exc:
        raise _FieldError("url", str(exc)) from None
    interval = float(raw.get("interval", config.interval))
    timeout = float(raw.get("timeout", config.timeout))
    if timeout >= interval:
        raise _FieldError("timeout", f"{timeout:g} s is not shorter than the interval ({interval:g} s)")
    if interval > config.summary_interval:
        raise _FieldError(
            "interval", f"{interval:g} s is longer than --summary-interval ({config.summary_interval:g} s)"
        )
    method = raw.get("method", "GET")
    for kind in ("body", "json"):
        if method == "HEAD" and kind in raw["expect"]:
            raise _FieldError(f"expect.{kind}", "the answer to a HEAD request has no body to check")
    ca_file = raw.get("ca_file", "")
    if ca_file and not Path(ca_file).is_file():
        raise _FieldError("ca_file", f"{ca_file!r} is not a file")
    return Target(
        name=raw["name"],
        url=url,
        method=method,
        interval=interval,
        timeout=timeout,
        expect=_expect(raw["expect"], config),
        headers=tuple((k, _expand(k, v, environ)) for k, v in raw["headers"].items()),
        ca_bundle=ca_file,
        secrets=tuple(environ[var] for v in raw["headers"].values() for var in _ENV.findall(v) if environ[var]),
    )


def _expand(name: str, value: str, environ: Mapping[str, str]) -> str:
    """value with each ${VAR} replaced by the environment variable VAR."""

    def lookup(match: re.Match[str]) -> str:
        if match[1] not in environ:
            raise _FieldError(f"headers.{name}", f"environment variable {match[1]} is not set")
        return str(environ[match[1]])

    expanded = _ENV.sub(lookup, value)
    problem = _unsendable(expanded)
    if problem:
        names = ", ".join("${" + var + "}" for var in _ENV.findall(value))
        source = f" (from {names})" if names else ""
        raise _FieldError(f"headers.{name}", f"the value{source} {problem}")
    return expanded


#: What HTTP/1.1 can carry in a header value: tab, visible ASCII and space,
#: and Latin-1's upper half (http.client encodes values as Latin-1).
_UNSENDABLE = re.compile(r"[^\t\x20-\x7e\x80-\xff]")


def _unsendable(value: str) -> str:
    """Why value cannot be a request header's value, or "". The value is
    never quoted: it may be a secret. Left to the request, such a value
    fails every probe, with the secret quoted in the record's error."""
    if value != value.strip():
        return "has whitespace at its start or end (a trailing newline?)"
    bad = _UNSENDABLE.search(value)
    if bad is None:
        return ""
    if bad[0] < " " or bad[0] == "\x7f":
        return f"has a control character at position {bad.start()}"
    return f"has a character HTTP/1.1 cannot send (not Latin-1) at position {bad.start()}"


def _expect(raw: dict[str, Any], config: Config) -> Expect:
    status = config.success_codes
    if "status" in raw:
        try:
            status = parse_codes(str(raw["status"]))
        except ValueError as exc:
            raise _FieldError("expect.status", str(exc)) from None
    body = raw.get("body", {})
    tls = raw.get("tls")
    return Expect(
        status=status,
        headers=tuple(_header_rule(i, rule) for i, rule in enumerate(raw.get("headers", []))),
        body_matches=tuple(_regex(f"expect.body.matches[{i}]", p) for i, p in enumerate(body.get("matches", []))),
        body_not_matches=tuple(
            _regex(f"expect.body.not_matches[{i}]", p) for i, p in enumerate(body.get("not_matches", []))
        ),
        json=tuple(_json_rule(i, rule) for i, rule in enumerate(raw.get("json", []))),
        tls_min_days=None if tls is None else float(tls["min_days_left"]),
        max_duration=float(raw.get("max_duration", DEFAULT_MAX_DURATION)),
    )


def _regex(where: str, pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise _FieldError(where, f"{pattern!r} is not a regular expression: {exc}") from None


def _header_rule(index: int, raw: dict[str, Any]) -> HeaderRule:
    where = f"expect.headers[{index}]"
    return HeaderRule(
        name=raw["name"],
        matches=_regex(f"{where}.matches", raw["matches"]) if "matches" in raw else None,
        not_matches=_regex(f"{where}.not_matches", raw["not_matches"]) if "not_matches" in raw else None,
        allow_missing=raw.get("allow_missing", False),
    )


def _json_rule(index: int, raw: dict[str, Any]) -> JsonRule:
    try:
        compiled = jmespath.compile(raw["query"])
    except jmespath.exceptions.JMESPathError as exc:
        raise _FieldError(f"expect.json[{index}].query", f"{raw['query']!r} is not a JMESPath query: {exc}") from None
    try:
        json.dumps(raw["equals"], allow_nan=False)
    except (TypeError, ValueError):
        why = "is not a JSON value (YAML reads an unquoted date, time or .nan so: quote it)"
        raise _FieldError(f"expect.json[{index}].equals", f"{raw['equals']} {why}") from None
    return JsonRule(raw["query"], raw["equals"], compiled)
