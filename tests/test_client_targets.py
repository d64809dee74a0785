"""The targets file: what it accepts, and every way it is refused, with
exit 2 and a message naming the file, the target and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from client.__main__ import main
from client.config import ConfigError, parse_config
from client.targets import SCHEMA, STATUS_SERVER, load_targets, status_server
from tests.conftest import ROOT

EXAMPLE = ROOT / "client" / "targets.example.yml"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "targets.yml"
    path.write_text(text)
    return str(path)


def test_the_example_file_is_valid() -> None:
    targets = load_targets(str(EXAMPLE), parse_config([], {}), {"SHOP_API_TOKEN": "s3cret"})
    assert [t.name for t in targets] == ["status-server", "shop-api", "docs-site", "cdn-edge"]
    shop = targets[1]
    assert dict(shop.headers) == {"Authorization": "Bearer s3cret"}
    assert "s3cret" not in repr(shop)
    assert shop.secrets == ("s3cret",)  # hidden where an answer echoes it
    assert shop.expect.tls_min_days == 14
    assert targets[3].method == "HEAD"


def test_the_schema_is_a_valid_json_schema() -> None:
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(SCHEMA)


def test_defaults_apply_unless_a_target_overrides_them(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
defaults:
  interval: 10
  timeout: 4
  headers: {X-Team: ops}
  expect: {status: "200,204", max_duration: 2}
targets:
  - {name: a, url: "http://a.invalid/"}
  - name: b
    url: http://b.invalid/
    timeout: 1
    headers: {X-Extra: "1"}
    expect: {status: 200, body: {matches: [ok]}}
""",
    )
    a, b = load_targets(path, parse_config([], {}), {})
    assert (a.interval, a.timeout, a.expect.status, a.expect.max_duration) == (10, 4, frozenset({200, 204}), 2)
    assert (b.interval, b.timeout, b.expect.status, b.expect.max_duration) == (10, 1, frozenset({200}), 2)
    assert dict(b.headers) == {"X-Team": "ops", "X-Extra": "1"}
    assert [p.pattern for p in b.expect.body_matches] == ["ok"]


def test_tls_from_the_defaults_is_for_the_https_targets(tmp_path: Path) -> None:
    path = write(tmp_path, "defaults: {expect: {tls: {min_days_left: 14}}}\n" + ONE)
    (api,) = load_targets(path, parse_config([], {}), {})
    assert api.expect.tls_min_days == 14  # kept, and never judged: an http answer has no certificate


def test_without_defaults_a_target_takes_the_options(tmp_path: Path) -> None:
    path = write(tmp_path, "targets: [{name: a, url: 'http://a.invalid/'}]")
    (a,) = load_targets(path, parse_config(["--interval", "7", "--timeout", "3", "--success-codes", "204"], {}), {})
    assert (a.method, a.interval, a.timeout, a.expect.status, a.expect.max_duration) == (
        "GET", 7, 3, frozenset({204}), 0.3
    )  # fmt: skip


def test_target_is_the_status_server_shorthand() -> None:
    t = status_server(parse_config(["--target", "http://h:1"], {}))
    assert (t.name, t.url, t.method, t.interval, t.timeout) == (STATUS_SERVER, "http://h:1/status", "GET", 3, 2)
    assert t.expect.status == frozenset(range(200, 300))


ONE = "targets:\n  - name: api\n    url: http://a.invalid/\n"

BAD = {
    "not a mapping": ("- a\n", "['a'] is not of type 'object'"),
    "no targets": ("defaults: {}\n", "'targets' is a required property"),
    "empty list": ("targets: []\n", "should be non-empty"),
    "no url": ("targets: [{name: api}]\n", "target 'api' (targets[0]): 'url' is a required property"),
    "no name": ("targets: [{url: 'http://x/'}]\n", "targets[0]: 'name' is a required property"),
    "unknown key": (ONE + "    retries: 3\n", "target 'api' (targets[0]): unknown key 'retries'"),
    "unknown key in defaults": ("defaults: {name: x}\n" + ONE, "defaults: unknown key 'name'"),
    "unknown top key": ("target: []\n" + ONE, "unknown key 'target'"),
    "unknown expectation": (ONE + "    expect: {statuss: 200}\n", "field expect: unknown key 'statuss'"),
    "bad method": (ONE + "    method: POST\n", "field method: 'POST' is not one of ['GET', 'HEAD']"),
    "interval a string": (ONE + "    interval: soon\n", "field interval: 'soon' is not of type 'number'"),
    "interval too short": (ONE + "    interval: 0.001\n", "field interval: 0.001 is less than the minimum"),
    "bad name": ("targets: [{name: 'a b', url: 'http://x/'}]\n", "field name: 'a b' does not match"),
    "bad scheme": ("targets: [{name: a, url: 'ftp://x/'}]\n", "field url: 'ftp://x/' does not match"),
    "bad host": ("targets: [{name: a, url: 'http://exa mple/'}]\n", "target 'a' (targets[0]), field url:"),
    "timeout over interval": (
        ONE + "    interval: 2\n    timeout: 3\n",
        "target 'api' (targets[0]), field timeout: 3 s is not shorter than the interval (2 s)",
    ),
    "timeout from defaults over interval": (
        "defaults: {timeout: 5}\n" + ONE + "    interval: 4\n",
        "target 'api' (targets[0]), field timeout: 5 s is not shorter than the interval (4 s)",
    ),
    "duplicate names": (
        ONE + "  - {name: api, url: 'http://b.invalid/'}\n",
        "target 'api' (targets[1]), field name: 'api' is the name of an earlier target",
    ),
    "missing env var": (
        ONE + "    headers: {Authorization: 'Bearer ${NO_SUCH_TOKEN}'}\n",
        "field headers.Authorization: environment variable NO_SUCH_TOKEN is not set",
    ),
    "bad header name": (ONE + "    headers: {'X Bad': v}\n", "field headers: 'X Bad' does not match"),
    "bad status": (ONE + "    expect: {status: '200-'}\n", "field expect.status: '200-' is not a status code"),
    "bad regex": (
        ONE + "    expect: {body: {matches: ['(']}}\n",
        "field expect.body.matches[0]: '(' is not a regular expression",
    ),
    "bad header regex": (
        ONE + "    expect: {headers: [{name: X, matches: '['}]}\n",
        "field expect.headers[0].matches: '[' is not a regular expression",
    ),
    "bad jmespath": (
        ONE + "    expect: {json: [{query: 'a[', equals: 1}]}\n",
        "field expect.json[0].query: 'a[' is not a JMESPath query",
    ),
    "json without equals": (
        ONE + "    expect: {json: [{query: a}]}\n",
        "field expect.json[0]: 'equals' is a required property",
    ),
    "tls without days": (ONE + "    expect: {tls: {}}\n", "field expect.tls: 'min_days_left' is a required property"),
    "negative max_duration": (ONE + "    expect: {max_duration: -1}\n", "field expect.max_duration: -1 is less than"),
    "missing ca_file": (ONE + "    ca_file: /no/such.pem\n", "field ca_file: '/no/such.pem' is not a file"),
    "interval over summary": (ONE + "    interval: 60\n", "field interval: 60 s is longer than --summary-interval"),
    "body expected of HEAD": (
        ONE + "    method: HEAD\n    expect: {body: {matches: [ok]}}\n",
        "field expect.body: the answer to a HEAD request has no body to check",
    ),
    "tls expected of http": (
        ONE + "    expect: {tls: {min_days_left: 14}}\n",
        "target 'api' (targets[0]), field expect.tls: an http URL has no certificate to judge",
    ),
    "not YAML": ("targets: [\n", "not YAML"),
}


@pytest.mark.parametrize("name", BAD)
def test_a_bad_file_exits_2_naming_the_place(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    text, want = BAD[name]
    path = write(tmp_path, text)
    assert main(["--targets", path], {}) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"python -m client: error: {path}: "), err
    assert want in err, err
    assert err.count("\n") == 1, err


def test_a_missing_file_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    assert main([], {"TARGETS_FILE": str(missing)}) == 2
    assert f"cannot read --targets {missing}" in capsys.readouterr().err


def test_the_secret_of_a_header_never_reaches_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, ONE + "    headers: {Authorization: 'Bearer ${TOKEN}'}\n    timeout: 9\n")
    assert main(["--targets", path], {"TOKEN": "s3cret"}) == 2
    assert "s3cret" not in capsys.readouterr().err


def test_every_bad_case_is_valid_yaml_but_one() -> None:
    """The table tests the schema and the checks, not the YAML parser."""
    broken = [name for name, (text, _) in BAD.items() if not _parses(text)]
    assert broken == ["not YAML"]


def _parses(text: str) -> bool:
    try:
        json.dumps(yaml.safe_load(text))
    except yaml.YAMLError:
        return False
    return True


def test_with_targets_the_summary_interval_is_checked_per_target(tmp_path: Path) -> None:
    """--interval's check against --summary-interval is the targets' own."""
    path = write(tmp_path, "targets: [{name: a, url: 'http://a.invalid/', interval: 0.5, timeout: 0.4}]")
    config = parse_config(["--targets", path, "--summary-interval", "1"], {})
    assert load_targets(path, config, {})[0].interval == 0.5


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("s3cret\n", "has whitespace at its start or end"),
        ("s3cret ", "has whitespace at its start or end"),
        ("s3c\r\nret", "has a control character"),
        ("s3cr\u20act", "has a character HTTP/1.1 cannot send"),
    ],
)
def test_a_header_value_no_request_could_carry_is_refused_unshown(tmp_path: Path, value: str, want: str) -> None:
    """A secret from the environment with a trailing newline (a Kubernetes
    secret made from a file) would fail every probe, as `dns` or `unknown`,
    with the secret quoted in the record: it is refused at start instead,
    naming the header and the variable, not the value."""
    path = write(tmp_path, ONE + "    headers: {Authorization: 'Bearer ${TOKEN}'}\n")
    with pytest.raises(ConfigError) as refused:
        load_targets(path, parse_config([], {}), {"TOKEN": value})
    err = str(refused.value)
    assert f"target 'api' (targets[0]), field headers.Authorization: the value (from ${{TOKEN}}) {want}" in err, err
    assert "s3c" not in err, err


def test_a_json_value_yaml_made_a_date_is_refused(tmp_path: Path) -> None:
    """YAML reads an unquoted 2026-12-01 as a date, which no JSON body can
    equal (and which the json_mismatch message could not even show)."""
    path = write(tmp_path, ONE + "    expect: {json: [{query: built, equals: 2026-12-01}]}\n")
    with pytest.raises(ConfigError) as refused:
        load_targets(path, parse_config([], {}), {})
    assert "target 'api' (targets[0]), field expect.json[0].equals: 2026-12-01 is not a JSON value" in str(
        refused.value
    )


def test_help_says_what_the_options_mean_beside_a_targets_file(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_config(["--help"], {})
    shown = " ".join(capsys.readouterr().out.split())
    assert "or, with --targets, every target a YAML file lists, each with its own expectations" in shown
    assert shown.count("with --targets, the default of each target's") == 3  # interval, timeout, status
    assert "with --targets, every half second" in shown  # the heartbeat file
    assert "needs --targets" in shown
