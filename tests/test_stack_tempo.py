"""Tempo: its configuration, checked against what Tempo 3 documents, and
the dashboard's TraceQL, parsed with Grafana's own TraceQL grammar. (No
Tempo runs here: its Go module is not served by the module proxy, and a
build takes minutes; docs/traces.md says how it was run by hand.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser

from tests.stack import ROOT, compose, dashboard, grammar, load_yaml

TRACEQL = ROOT / "tests/traceql"

#: The top-level blocks of Tempo 3.0's configuration (its documentation's
#: "Configure Tempo" page and manifest). The parser refuses anything else.
TEMPO_3_BLOCKS = {
    "target", "auth_enabled", "multitenancy_enabled", "shutdown_delay", "stream_over_http_enabled",
    "http_api_prefix", "enable_go_runtime_metrics", "span_profiling", "memory", "server", "internal_server",
    "distributor", "live_store_client", "querier", "query_frontend", "metrics_generator", "ingest",
    "block_builder", "storage", "overrides", "memberlist", "usage_report", "cache", "backend_scheduler",
    "backend_scheduler_client", "backend_worker", "live_store",
}  # fmt: skip
#: Blocks of Tempo 2 that make Tempo 3 refuse to start.
TEMPO_2_BLOCKS = {"ingester", "compactor", "metrics_generator_client"}


def config() -> dict[str, Any]:
    c: dict[str, Any] = load_yaml("tempo/tempo.yml")
    return c


def test_only_tempo_3_blocks() -> None:
    assert set(config()) <= TEMPO_3_BLOCKS, set(config()) - TEMPO_3_BLOCKS
    assert not set(config()) & TEMPO_2_BLOCKS


def test_otlp_http_listens_beyond_localhost() -> None:
    receivers = config()["distributor"]["receivers"]
    assert receivers == {"otlp": {"protocols": {"http": {"endpoint": "0.0.0.0:4318"}}}}


def test_spans_are_sent_where_tempo_listens() -> None:
    port = config()["distributor"]["receivers"]["otlp"]["protocols"]["http"]["endpoint"].rsplit(":", 1)[1]
    for service in ("server", "client"):
        env = compose()["services"][service]["environment"]
        assert env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] == f"http://tempo:{port}/v1/traces", service


def test_the_service_reads_the_config_and_writes_to_its_volume() -> None:
    tempo = compose()["services"]["tempo"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in tempo["volumes"]}
    # The image runs as 10001 and creates /var/tempo for it: a fresh named
    # volume there inherits the owner; a host directory would not.
    assert tempo["user"] == "10001:10001"
    assert mounts["/var/tempo"] == "tempo-data"
    assert tempo["command"] == [f"-config.file={next(k for k, v in mounts.items() if v == './tempo/tempo.yml')}"]
    assert tempo["healthcheck"]["test"] == ["CMD", "/tempo", "-health"], "distroless: the binary checks /ready"
    assert f"127.0.0.1:{config()['server']['http_listen_port']}:3200" in tempo["ports"]


def test_everything_is_written_under_var_tempo() -> None:
    c = config()
    trace = c["storage"]["trace"]
    assert trace["backend"] == "local"
    paths = [trace["wal"]["path"], trace["local"]["path"], c["metrics_generator"]["storage"]["path"]]
    assert all(p.startswith("/var/tempo/") for p in paths), paths


def test_tempo_phones_no_one_and_stops_within_dockers_grace() -> None:
    c = config()
    assert c["usage_report"]["reporting_enabled"] is False
    timeout = c["backend_worker"]["finish_on_shutdown_timeout"]
    assert timeout.endswith("s")
    assert float(timeout[:-1]) < 10, "docker stop kills after 10 s"


def test_search_answers_whole_trace_ids() -> None:
    """Without left_pad_trace_ids Tempo 3's search drops a trace ID's leading
    zeros (grafana/tempo#5395; the option is grafana/tempo#6489): 16 of 212
    IDs in a run against a real Tempo 3.0.3, none with it."""
    defaults = config()["overrides"]["defaults"]
    # The blocks of Tempo 3's overrides (modules/overrides/config.go).
    blocks = {
        "global",
        "ingestion",
        "read",
        "metrics_generator",
        "forwarders",
        "compaction",
        "storage",
        "cost_attribution",
    }
    assert set(defaults) <= blocks
    assert defaults["read"] == {"left_pad_trace_ids": True}


def test_the_metrics_generator_writes_into_prometheus() -> None:
    c = config()
    (remote,) = c["metrics_generator"]["storage"]["remote_write"]
    assert remote == {"url": "http://prometheus:9090/api/v1/write", "send_exemplars": True}
    assert "--web.enable-remote-write-receiver" in compose()["services"]["prometheus"]["command"]
    assert set(c["overrides"]["defaults"]["metrics_generator"]["processors"]) == {"service-graphs", "span-metrics"}


def parse(queries: list[str]) -> list[dict[str, Any]]:
    return grammar(TRACEQL, queries)


def test_the_grammar_finds_errors() -> None:
    good, bad = '{resource.service.name="status-monitor" && status=error}', "{status=error && duration > }"
    parsed_good, parsed_bad = parse([good, bad])
    assert parsed_good["errors"] == []
    assert parsed_bad["errors"]


def traceql_queries() -> list[str]:
    return [
        t["query"]
        for p in dashboard()["panels"]
        for t in p.get("targets", [])
        if t["datasource"]["uid"] == "tempo" and t["queryType"] == "traceql"
    ]


def test_dashboard_traceql_parses() -> None:
    queries = traceql_queries()
    assert len(queries) == 2, "the failed and the slowest probes, as traces"
    for p in parse(queries):
        assert p["errors"] == [], p


def test_dashboard_lists_the_clients_probe_spans() -> None:
    """The root span of a probe's trace is the client's, kind client; its
    phases are internal, the server's span is kind server
    (tests/test_traces.py checks the spans themselves)."""
    for query in traceql_queries():
        assert query.startswith('{resource.service.name="status-monitor" && kind=client && '), query


def test_the_slowest_probes_cover_the_default_window() -> None:
    """Tempo's search cannot sort by duration: the panel lists the latest
    probes, slowest first. Its limit must hold every probe of the dashboard's
    default range, and its title says how many it looks at."""
    (panel,) = [p for p in dashboard()["panels"] if p["title"].startswith("Slowest")]
    (target,) = panel["targets"]
    probe_interval_s = float(compose()["services"]["client"]["environment"].get("PROBE_INTERVAL", 3))  # default 3
    minutes = re.fullmatch(r"now-(\d+)m", dashboard()["time"]["from"])
    assert minutes, dashboard()["time"]
    range_s = 60 * int(minutes.group(1))
    assert target["limit"] * probe_interval_s >= 2 * range_s, "the default window, twice over"
    assert f"latest {target['limit']:,} probes" in panel["title"]
    assert panel["options"]["sortBy"] == [{"displayName": "Duration", "desc": True}]


def test_grammar_is_pinned() -> None:
    package = json.loads((TRACEQL / "package.json").read_text())
    version = package["dependencies"]["@grafana/lezer-traceql"]
    assert version[0].isdigit(), "an exact version"
    assert Path(TRACEQL / "package-lock.json").is_file()


def datasource(uid: str) -> dict[str, Any]:
    sources = load_yaml("grafana/provisioning/datasources/datasources.yml")["datasources"]
    found: dict[str, Any] = next(d for d in sources if d["uid"] == uid)
    return found


def grafana(value: str) -> str:
    """A provisioned value as Grafana uses it: $$ is a literal $."""
    return value.replace("$$", "$")


def test_a_spans_logs_are_both_services_lines_with_its_trace_id() -> None:
    links = datasource("tempo")["jsonData"]["tracesToLogsV2"]
    assert links["datasourceUid"] == "loki"
    assert links["customQuery"] is True
    query = grafana(links["query"]).replace("${__trace.traceId}", "0af7651916cd43dd8448eb211c80319c")
    (parsed,) = grammar(ROOT / "tests/logql", [query])
    assert parsed["errors"] == [], query
    # The client's records carry service_name=status-monitor and trace_id in
    # their JSON; the server's OTLP lines service_name=status-server and
    # trace_id as structured metadata (test_stack_loki.py checks both).
    assert parsed["stream_labels"] == ["service_name"]
    assert parsed["values"]["service_name"] == ["status-monitor|status-server"]
    assert parsed["fields"] == ["trace_id"]


def test_a_spans_metrics_are_tempos_span_metrics() -> None:
    links = datasource("tempo")["jsonData"]["tracesToMetrics"]
    assert links["datasourceUid"] == "prometheus"
    assert links["tags"] == [{"key": "service.name", "value": "service"}]
    for q in links["queries"]:
        expr = grafana(q["query"]).replace("$__tags", 'service="status-monitor"')
        expr = expr.replace("${__span.name}", "GET /status")
        promql_parser.parse(expr)
        assert "traces_spanmetrics_" in expr, "the metrics generator's names (seen in Prometheus, docs/traces.md)"


def test_the_tempo_datasource_sets_nothing_grafana_ignores() -> None:
    """lokiSearch has done nothing since Grafana 11 (search goes through
    TraceQL): tracesToLogsV2 is the way from a trace to its logs."""
    assert "lokiSearch" not in datasource("tempo")["jsonData"]


def test_a_records_trace_id_opens_its_trace_and_the_servers_line() -> None:
    fields = datasource("loki")["jsonData"]["derivedFields"]
    assert [(f["name"], f["datasourceUid"]) for f in fields] == [("trace_id", "tempo"), ("trace_id", "loki")]
    assert fields[0]["url"] == "$${__value.raw}", "a trace ID is the whole query of an internal Tempo link"
    assert fields[0]["matcherRegex"] == fields[1]["matcherRegex"]
    assert datasource("tempo")["jsonData"]["serviceMap"]["datasourceUid"] == "prometheus"
