"""Configuration: flags, environment fallbacks and their error messages."""

from __future__ import annotations

import pytest

from client.config import Config, ConfigError, parse_codes, parse_config
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
    }
    config = parse_config([], env)
    assert config.target == "http://server:8080"  # trailing slash dropped
    assert config.status_url == "http://server:8080/status"
    assert (config.interval, config.timeout, config.flaky_interval, config.summary_interval) == (5, 1.5, 0, 60)
    assert config.loki_url == "http://loki:3100/loki/api/v1/push"
    assert config.log_format == "text"
    assert config.success_codes == {200, 204, 300, 301, 302, 303, 304}

    flags = parse_config(["--interval", "2", "--log-format", "json", "--target", "https://x.test:8443"], env)
    assert (flags.interval, flags.log_format, flags.target) == (2, "json", "https://x.test:8443")
    assert flags.timeout == 1.5  # not given as a flag: the environment's


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--interval", "0"], {}, "invalid --interval: '0' must be at least 0.05 seconds"),
        (["--interval", "soon"], {}, "invalid --interval: 'soon' is not a number of seconds"),
        (["--interval", "nan"], {}, "invalid --interval: 'nan' must be at least"),
        ([], {"PROBE_INTERVAL": "-1"}, "invalid PROBE_INTERVAL: '-1' must be at least"),
        ([], {"PROBE_TIMEOUT": "x"}, "invalid PROBE_TIMEOUT: 'x' is not a number of seconds"),
        (["--timeout", "100000"], {}, "invalid --timeout: '100000' is more than a day"),
        (["--flaky-interval", "-2"], {}, "invalid --flaky-interval: '-2' must be 0 or at least"),
        ([], {"TARGET_URL": "localhost:8080"}, "invalid TARGET_URL: 'localhost:8080' is not an http(s) URL"),
        (["--target", "ftp://x"], {}, "invalid --target: 'ftp://x' is not an http(s) URL"),
        (["--target", "http://x:99999"], {}, "invalid --target: 'http://x:99999' has a bad port"),
        (["--target", "http://x/?a=1"], {}, "give the base URL only"),
        (["--loki-url", "loki:3100"], {}, "invalid --loki-url: 'loki:3100' is not an http(s) URL"),
        ([], {"LOG_FORMAT": "xml"}, "invalid LOG_FORMAT: 'xml' is not one of json, text"),
        (["--success-codes", "2xx"], {}, "invalid --success-codes: '2xx' is not a status code or a range"),
        (["--success-codes", "200-700"], {}, "invalid --success-codes: '200-700' is not within 100-599"),
        (["--summary-interval", "1"], {}, "--summary-interval (1 s) is shorter than --interval (3 s)"),
    ],
)
def test_errors_name_the_option(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(argv, env)
    assert message in str(info.value)


def test_unknown_flag_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_config(["--intervall", "3"], {})
    assert info.value.code == 2
    assert "--intervall" in capsys.readouterr().err


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
    ]:
        assert flag in text
        assert f"[{env}]" in text


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("200", {200}),
        ("200-202", {200, 201, 202}),
        (" 200 , 300-301 ", {200, 300, 301}),
    ],
)
def test_parse_codes(text: str, codes: set[int]) -> None:
    assert parse_codes(text) == codes
