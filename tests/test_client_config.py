"""Configuration: flags, environment fallbacks and their error messages."""

from __future__ import annotations

import pytest

from client.config import Config, ConfigError, format_codes, parse_codes, parse_config
from client.probe import TWO_XX


def test_defaults() -> None:
    assert parse_config([], {}) == Config(
        target="http://localhost:8080",
        interval=3.0,
        timeout=2.0,
        flaky_interval=10.0,
        summary_interval=30.0,
        loki_url=None,
        log_format="json",
        success_codes=TWO_XX,
    )


def test_environment_and_flags() -> None:
    env = {
        "TARGET_URL": "http://server:8080/",
        "PROBE_INTERVAL": "5",
        "PROBE_TIMEOUT": "1.5",
        "FLAKY_INTERVAL": "0",
        "SUMMARY_INTERVAL": "60",
        "LOKI_URL": "http://loki:3100/loki/api/v1/push",
        "LOG_FORMAT": "text",
        "SUCCESS_CODES": "200,204,300-304",
        "LOKI_TENANT": "team-a_prod",
    }
    config = parse_config([], env)
    assert config.target == "http://server:8080"  # trailing slash dropped
    assert config.status_url == "http://server:8080/status"
    assert (config.interval, config.timeout, config.flaky_interval, config.summary_interval) == (5, 1.5, 0, 60)
    assert config.loki_url == "http://loki:3100/loki/api/v1/push"
    assert config.log_format == "text"
    assert config.success_codes == {200, 204, 300, 301, 302, 303, 304}
    assert config.loki_tenant == "team-a_prod"

    flags = parse_config(["--interval", "2", "--log-format", "json", "--target", "https://x.test:8443"], env)
    assert (flags.interval, flags.log_format, flags.target) == (2, "json", "https://x.test:8443")
    assert flags.timeout == 1.5  # not given as a flag: the environment's


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--interval", "0"], {}, "invalid --interval: '0' must be at least 0.05 seconds"),
        (["--interval", "soon"], {}, "invalid --interval: 'soon' is not a number of seconds"),
        (["--interval", "nan"], {}, "invalid --interval: 'nan' is not a number of seconds"),
        (["--interval", "1e3"], {}, "invalid --interval: '1e3' is not a number of seconds"),
        (["--interval", "\N{FULLWIDTH DIGIT THREE}"], {}, "is not a number of seconds"),
        (["--interval", "\N{ARABIC-INDIC DIGIT THREE}"], {}, "is not a number of seconds"),
        (["--interval", " 3"], {}, "invalid --interval: ' 3' has whitespace around it"),
        ([], {"PROBE_INTERVAL": "3\n"}, "invalid PROBE_INTERVAL: '3\\n' has whitespace around it"),
        ([], {"PROBE_INTERVAL": "-1"}, "invalid PROBE_INTERVAL: '-1' must be at least"),
        ([], {"PROBE_TIMEOUT": "x"}, "invalid PROBE_TIMEOUT: 'x' is not a number of seconds"),
        (["--timeout", "100000"], {}, "invalid --timeout: '100000' is more than a day"),
        (["--flaky-interval", "-2"], {}, "invalid --flaky-interval: '-2' must be 0 or at least"),
        ([], {"TARGET_URL": "localhost:8080"}, "invalid TARGET_URL: 'localhost:8080' is not an http(s) URL"),
        (["--target", "ftp://x"], {}, "invalid --target: 'ftp://x' is not an http(s) URL"),
        (["--target", "http://x:99999"], {}, "invalid --target: 'http://x:99999' has a bad port"),
        (["--target", "http://x:0"], {}, "invalid --target: 'http://x:0' has a bad port: 0 is no port"),
        (["--loki-url", "http://loki:00/push"], {}, "invalid --loki-url: 'http://loki:00/push' has a bad port"),
        (["--target", "http://x/?a=1"], {}, "give the base URL only"),
        (["--loki-url", "loki:3100"], {}, "invalid --loki-url: 'loki:3100' is not an http(s) URL"),
        ([], {"LOG_FORMAT": "xml"}, "invalid LOG_FORMAT: 'xml' is not one of json, text"),
        (["--success-codes", "2xx"], {}, "invalid --success-codes: '2xx' is not a status code or a range"),
        (["--success-codes", "200-700"], {}, "invalid --success-codes: '200-700' is not within 100-599"),
        (["--success-codes", "200-"], {}, "invalid --success-codes: '200-' is not a status code or a range"),
        (["--success-codes", "200, 204"], {}, "invalid --success-codes: ' 204' is not a status code"),
        (["--success-codes", "\N{FULLWIDTH DIGIT TWO}00"], {}, "is not a status code or a range"),
        (["--target", "http://.invalid"], {}, "invalid --target: host '.invalid' has a bad label ''"),
        (["--target", "http://a..b"], {}, "has a bad label ''"),
        (["--target", "http://exa mple.invalid"], {}, "has a bad label 'exa mple'"),
        (["--target", "http://\N{SNOWMAN}.invalid"], {}, "cannot be encoded"),
        (["--target", " http://x"], {}, "invalid --target: ' http://x' has whitespace around it"),
        (["--timeout", "3"], {}, "--timeout (3 s) is not shorter than --interval (3 s)"),
        ([], {"PROBE_TIMEOUT": "5", "PROBE_INTERVAL": "4"}, "--timeout (5 s) is not shorter than --interval (4 s)"),
        (["--summary-interval", "1"], {}, "--summary-interval (1 s) is shorter than --interval (3 s)"),
        (["--loki-tenant", "a|b"], {}, "invalid --loki-tenant: 'a|b' is not a Loki tenant ID"),
        ([], {"LOKI_TENANT": "a/b"}, "invalid LOKI_TENANT: 'a/b' is not a Loki tenant ID"),
        (["--loki-tenant", "team a"], {}, "invalid --loki-tenant: 'team a' is not a Loki tenant ID"),
        (["--loki-tenant", ".."], {}, "invalid --loki-tenant: '..' is not a Loki tenant ID"),
        (["--loki-tenant", "t\N{LATIN SMALL LETTER E WITH ACUTE}"], {}, "is not a Loki tenant ID"),
        (["--loki-tenant", "x" * 151], {}, "invalid --loki-tenant: 'xxxxxxxxxxxxxxxxxxxx'... is longer than"),
    ],
)
def test_errors_name_the_option(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(argv, env)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "argv",
    [
        ["--target", "http://u:s3cret@exa mple.invalid"],
        ["--target", "ftp://u:s3cret@x"],
        ["--target", " http://u:s3cret@x"],
        ["--target", "http://u:s3cret@x:99999"],
        ["--loki-url", "http://u:s3cret@/push"],
    ],
)
def test_errors_never_show_a_password(argv: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(argv, {})
    assert str(info.value).startswith(f"invalid {argv[0]}: ")
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize("flag", ["--intervall", "--int", "--time", "--loki"])
def test_unknown_or_abbreviated_flag_exits_2(capsys: pytest.CaptureFixture[str], flag: str) -> None:
    with pytest.raises(SystemExit) as info:
        parse_config([flag, "3"], {})
    assert info.value.code == 2
    assert f"unrecognized arguments: {flag}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "target",
    [
        "http://server:8080",
        "http://status_server",
        "http://[::1]:8080",
        "http://b\N{LATIN SMALL LETTER U WITH DIAERESIS}cher.test",
        "https://x.test.",
    ],
)
def test_good_hosts_are_accepted(target: str) -> None:
    assert parse_config(["--target", target], {}).target == target


@pytest.mark.parametrize("tenant", ["fake", "prod", "team-a_prod.eu", "it's(*)!", "x" * 150, "..."])
def test_good_tenants_are_accepted(tenant: str) -> None:
    assert parse_config(["--loki-tenant", tenant], {}).loki_tenant == tenant


def test_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_config(["--help"], {})
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag, env in [
        ("--target", "TARGET_URL"),
        ("--interval", "PROBE_INTERVAL"),
        ("--timeout", "PROBE_TIMEOUT"),
        ("--flaky-interval", "FLAKY_INTERVAL"),
        ("--summary-interval", "SUMMARY_INTERVAL"),
        ("--loki-url", "LOKI_URL"),
        ("--log-format", "LOG_FORMAT"),
        ("--success-codes", "SUCCESS_CODES"),
        ("--heartbeat-file", "HEARTBEAT_FILE"),
        ("--loki-tenant", "LOKI_TENANT"),
    ]:
        assert flag in text
        assert f"[{env}]" in text


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("200", {200}),
        ("200-202", {200, 201, 202}),
        ("200,300-301", {200, 300, 301}),
        ("200-299,304", set(range(200, 300)) | {304}),
    ],
)
def test_parse_codes(text: str, codes: set[int]) -> None:
    assert parse_codes(text) == codes
    assert parse_codes(format_codes(frozenset(codes))) == codes
    assert format_codes(frozenset(codes)) == text
