"""Tier 1 of the Helm chart's checks: a real Helm lints and renders the chart
over the values matrix, its schema refuses bad values, and what it renders
is what the repository's own files and programs expect."""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from client import healthcheck
from client.config import OPTIONS, ConfigError, parse_config
from client.tracing import trace_settings
from tests.conftest import GoServer
from tests.helm.chart import (
    BAD_VALUES,
    CHART,
    CI_VALUES,
    MATRIX,
    MATRIX_IDS,
    NAMESPACE,
    OBJECT_NAME,
    ODD_FILES,
    REFUSED_VALUES,
    Manifest,
    chart_with_odd_names,
    client_deployments,
    container_env,
    deployment_env,
    enabled,
    find,
    helm,
    kinds,
    parse,
    pod_spec,
    rejected_word,
    render,
    run,
    template_args,
)
from tests.stack import ROOT, tool


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: v.name if v else "no-values")
def test_lint_strict_passes(values: Path | None) -> None:
    args = [helm(), "lint", "--strict", str(CHART)]
    if values is not None:
        args += ["--values", str(values)]
    out = run(args)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in out.stdout


@pytest.mark.parametrize("bad", BAD_VALUES, ids=lambda p: p.stem)
def test_schema_refuses_bad_values(bad: Path) -> None:
    word = rejected_word(bad)
    for args in ([helm(), "lint", "--strict", str(CHART), "--values", str(bad)], template_args(bad)):
        out = run(args)
        assert out.returncode != 0, f"{' '.join(args[:2])} accepted {bad.name}"
        assert "values don't meet the specifications of the schema" in out.stdout + out.stderr
        assert word in out.stdout + out.stderr, out.stdout + out.stderr


# The programs' settings by the chart's value names.
CLIENT_ENV = {"interval": "PROBE_INTERVAL", "timeout": "PROBE_TIMEOUT", "summaryInterval": "SUMMARY_INTERVAL"}
SERVER_ENV = {"maxDelay": "SERVER_MAX_DELAY"}


@pytest.mark.parametrize("refused", REFUSED_VALUES, ids=lambda p: p.stem)
def test_chart_refuses_what_the_programs_refuse(refused: Path, server_binary: Path, tmp_path: Path) -> None:
    """Settings the schema cannot judge (options valid alone but not
    together, a bound on a duration): the chart's templates refuse them,
    naming them (helm template, install and upgrade fail; lint only logs a
    template's fail, by Helm's design), and so does the program itself,
    which would otherwise crash-loop the pod (or Prometheus, which would
    drop the scrape: StatusServerDown could never fire)."""
    out = run(template_args(refused))
    assert out.returncode != 0, f"helm template accepted {refused.name}"
    assert "values don't meet the specifications of the schema" not in out.stderr
    assert rejected_word(refused) in out.stderr, out.stderr
    settings = yaml.safe_load(refused.read_text())
    if "client" in settings:
        env = container_env(render(), "client")
        env.update({CLIENT_ENV[key]: str(value) for key, value in settings["client"].items()})
        with pytest.raises(ConfigError):
            parse_config([], env)
    if "server" in settings:
        env = {"SERVER_ADDR": "127.0.0.1:0", "SERVER_METRICS_ADDR": "127.0.0.1:0", "PATH": "/usr/bin:/bin"}
        env.update({SERVER_ENV[key]: str(value) for key, value in settings["server"].items()})
        server = subprocess.run([str(server_binary)], env=env, capture_output=True, text=True, timeout=60, check=False)
        assert server.returncode == 2, server.stderr  # bad configuration
    if "scrapeTimeout" in settings.get("serviceMonitor", {}):
        assert _prometheus_refuses_scrape(settings["serviceMonitor"], tmp_path)


def _prometheus_refuses_scrape(monitor: dict[str, str], tmp_path: Path) -> bool:
    """Whether promtool refuses a scrape config with the ServiceMonitor's
    interval and timeout (prometheus-operator passes them on as they are)."""
    job = {"job_name": "server", "scrape_interval": monitor["interval"], "scrape_timeout": monitor["scrapeTimeout"]}
    job["static_configs"] = [{"targets": ["localhost:9090"]}]
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({"scrape_configs": [job]}))
    out = run([tool("PROMTOOL", "promtool"), "check", "config", str(config)])
    return out.returncode != 0 and "scrape timeout greater than scrape interval" in out.stdout + out.stderr


@pytest.mark.parametrize(("values", "crds"), MATRIX, ids=MATRIX_IDS)
def test_monitoring_objects_only_with_the_crds(values: Path, crds: bool) -> None:
    manifest = render(values, crds)
    assert ("ServiceMonitor" in kinds(manifest)) == (crds and enabled(values, "serviceMonitor"))
    assert ("PrometheusRule" in kinds(manifest)) == (crds and enabled(values, "prometheusRule"))


def test_each_monitoring_kind_needs_its_own_crd() -> None:
    """A cluster with the ServiceMonitor CRD only gets no PrometheusRule,
    which it would refuse."""
    only = ["--api-versions", "monitoring.coreos.com/v1", "--api-versions", "monitoring.coreos.com/v1/ServiceMonitor"]
    out = run([*template_args(), *only])
    assert out.returncode == 0, out.stderr
    assert "ServiceMonitor" in kinds(parse(out.stdout))
    assert "PrometheusRule" not in kinds(parse(out.stdout))


def test_defaults_render_every_object() -> None:
    manifest = render(crds=True)
    rules = len(list((ROOT / "prometheus/rules").glob("*.yml")))
    dashboards = len(list((ROOT / "grafana/dashboards").glob("*.json")))
    tenants = len({p.parent for p in (ROOT / "loki/rules").glob("*/*.yml")})
    assert kinds(manifest) == sorted(
        ["ServiceAccount", "Service", "Deployment", "Deployment", "ServiceMonitor", "Pod"]
        + ["PrometheusRule"] * rules
        + ["ConfigMap"] * (dashboards + tenants)
    )
    server = find(manifest, "Deployment", "-server")
    assert server["spec"]["replicas"] == 1
    assert server["spec"]["strategy"] == {"type": "Recreate"}
    monitor = find(manifest, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"][0]["relabelings"][0]["replacement"] == "server"


def test_rules_and_dashboards_are_the_repository_files() -> None:
    """The chart reads them through symbolic links (files/*): the rendered
    objects hold the files the compose stack mounts, byte for byte, but the
    alerts' dashboard links and the dashboard's uid, title, scrape job and $target options (each release
    has its copy; test_helm_shards.py checks the options)."""
    manifest = render(crds=True)
    prometheus = yaml.safe_load((ROOT / "prometheus/prometheus.yml").read_text())
    assert prometheus["rule_files"] == ["rules/*.yml"], "the chart globs the same files as Prometheus"
    (uid,) = [
        json.loads(t)["uid"]
        for d in manifest
        if "grafana_dashboard" in d["metadata"]["labels"]
        for t in d["data"].values()
    ]
    for path in sorted((ROOT / "prometheus/rules").glob("*.yml")):
        rule = find(manifest, "PrometheusRule", f"-{path.stem}")
        # The alerts' links open the release's dashboard (test_helm_releases.py).
        text = path.read_text().replace("/d/status-server?", f"/d/{uid}?")
        assert rule["spec"] == yaml.safe_load(text), path
    prefix = f"{NAMESPACE}_sw-statuswatch_"
    for path in sorted((ROOT / "grafana/dashboards").glob("*.json")):
        configmap = find(manifest, "ConfigMap", f"-dashboard-{path.stem}")
        assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
        ((key, text),) = configmap["data"].items()
        assert key == prefix + path.name
        rendered, original = json.loads(text), json.loads(path.read_text())
        assert rendered["uid"].startswith(original["uid"] + "-")
        assert rendered["title"] == f"{original['title']} ({NAMESPACE}/sw)"
        rendered.update(uid=original["uid"], title=original["title"])
        for variable in rendered["templating"]["list"]:
            if variable["name"] == "target":
                assert variable["query"] == "status-server"
                (variable["query"],) = [v["query"] for v in original["templating"]["list"] if v["name"] == "target"]
        assert rendered == original  # the job is server, as in the file
    for tenant in sorted({p.parent for p in (ROOT / "loki/rules").glob("*/*.yml")}):
        configmap = find(manifest, "ConfigMap", f"-loki-rules-{tenant.name}")
        assert configmap["metadata"]["annotations"] == {"k8s-sidecar-target-directory": tenant.name}
        assert configmap["data"] == {prefix + p.name: p.read_text() for p in sorted(tenant.glob("*.yml"))}


def test_every_loki_rule_file_reaches_the_chart() -> None:
    """Loki's local rule store reads every file of a tenant's folder, the
    chart only <tenant>/*.yml: a rule file named otherwise (slo.yaml, or
    one level deeper) would run under compose and be missing on Kubernetes.
    New files need no change to the chart; this says when one would."""
    files = {p.relative_to(ROOT / "loki/rules") for p in (ROOT / "loki/rules").rglob("*") if p.is_file()}
    assert files, "no Loki rule files"
    for path in files:
        assert len(path.parts) == 2, f"loki/rules/{path}: the chart reads loki/rules/<tenant>/*.yml only"
        assert path.suffix == ".yml", f"loki/rules/{path}: the chart reads loki/rules/<tenant>/*.yml only"


def test_heartbeat_file_is_on_a_writable_volume(tmp_path: Path) -> None:
    """The root file system is read-only: the monitor's heartbeat file must
    be on a mounted volume, and its liveness probe's check, with the
    rendered environment, passes on a fresh heartbeat and fails on none."""
    manifest = render()
    pod = find(manifest, "Deployment", "-client")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = container_env(manifest, "client")
    heartbeat = Path(env["HEARTBEAT_FILE"])
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"] if not m.get("readOnly")}
    covering = [m for m in mounts if heartbeat.is_relative_to(m)]
    assert len(covering) == 1, f"{heartbeat} is on no writable volume (mounts: {sorted(mounts)})"
    mount = covering[0]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mounts[mount]]
    assert "emptyDir" in volume
    assert container["livenessProbe"]["exec"]["command"] == ["python", "-m", "client.healthcheck"]
    env["HEARTBEAT_FILE"] = str(tmp_path / heartbeat.relative_to(mount))
    assert healthcheck.main([], env) == 1  # no probe finished yet
    Path(env["HEARTBEAT_FILE"]).touch()
    assert healthcheck.main([], env) == 0


def test_file_names_become_valid_object_names(tmp_path: Path) -> None:
    """Rule files, dashboards and tenant folders with upper case, "_" or "."
    in their names (slo_x.yml) still give valid object names; the Loki
    ruler's folder keeps the tenant's name as it is."""
    manifest = render(chart=chart_with_odd_names(tmp_path), crds=True)
    for doc in manifest:
        name = doc["metadata"]["name"]
        assert OBJECT_NAME.fullmatch(name), f"{doc['kind']} {name!r} is no object name"
        assert len(name) <= 253, name
    for kind, suffix in ODD_FILES.values():
        find(manifest, kind, suffix)
    tenant = find(manifest, "ConfigMap", "-loki-rules-team-a")
    assert tenant["metadata"]["annotations"] == {"k8s-sidecar-target-directory": "Team_A"}


def test_two_files_of_one_object_name_are_refused(tmp_path: Path) -> None:
    chart = chart_with_odd_names(tmp_path)
    (chart / "files/prometheus-rules/slo-availability.yml").write_text("groups: []\n")
    out = run(template_args(chart=chart, crds=True))
    assert out.returncode != 0
    assert "slo-availability.yml and SLO_availability.yml both make the object name" in out.stderr, out.stderr


def test_links_point_into_the_repository() -> None:
    for link in (CHART / "files").iterdir():
        assert link.is_symlink(), f"{link} must be a symbolic link, never a copy"
        assert link.resolve().is_relative_to(ROOT), link


def test_package_holds_the_files_not_links(tmp_path: Path) -> None:
    """helm package follows the links: the archive holds regular files with
    the repository's content and renders as the chart directory does."""
    out = run([helm(), "package", str(CHART), "--destination", str(tmp_path)])
    assert out.returncode == 0, out.stderr
    (archive,) = tmp_path.glob("statuswatch-*.tgz")
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        rules = members["statuswatch/files/prometheus-rules/server.yml"]
        assert rules.isfile()
        extracted = tar.extractfile(rules)
        assert extracted is not None
        assert extracted.read() == (ROOT / "prometheus/rules/server.yml").read_bytes()
        assert not any(m.issym() for m in members.values())
        assert not any(name.startswith("statuswatch/ci/") for name in members)
    assert render(chart=archive, crds=True) == render(crds=True)


def _containers(manifest: Manifest) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    pods = [d["spec"]["template"]["spec"] for d in manifest if d["kind"] == "Deployment"]
    pods += [d["spec"] for d in manifest if d["kind"] == "Pod"]
    return [(pod, c) for pod in pods for c in pod["containers"]]


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_every_container_is_hardened(values: Path) -> None:
    for pod, container in _containers(render(values)):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
        assert container["image"].startswith(("statuswatch/", "registry.example.com/"))


def test_probes_check_what_the_programs_health_checks_check() -> None:
    """The server's probes GET /healthz on the API port, as its -healthcheck
    does (the test pod runs that); the monitor's run its own check."""
    manifest = render()
    (server,) = pod_spec(manifest, "server")["containers"]
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert f":{ports['http']}" == container_env(manifest, "server")["SERVER_ADDR"]
    assert '"/healthz"' in (ROOT / "server/healthcheck.go").read_text()
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert server[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    (client,) = pod_spec(manifest, "client")["containers"]
    assert client["livenessProbe"]["exec"]["command"] == ["python", "-m", "client.healthcheck"]
    test_pod = find(manifest, "Pod", "-test-server")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"


def test_test_pod_probes_the_server_by_its_service_name(
    server_binary: Path, go_server: Callable[..., GoServer]
) -> None:
    """The helm test pod runs the server binary with the rendered arguments
    and SERVER_ADDR naming the Service; here the name is localhost and the
    port the running server's: exit 0, and 1 once the server is gone."""
    (container,) = find(render(), "Pod", "-test-server")["spec"]["containers"]
    (addr,) = [e["value"] for e in container["env"] if e["name"] == "SERVER_ADDR"]
    assert addr == f"sw-statuswatch-server.{NAMESPACE}.svc.cluster.local.:8080"
    server = go_server()
    env = {"SERVER_ADDR": "localhost:" + server.url.rsplit(":", 1)[1], "PATH": "/usr/bin:/bin"}
    probe = [str(server_binary), *container["args"]]
    assert subprocess.run(probe, env=env, timeout=30, check=False).returncode == 0
    server.stop()
    assert subprocess.run(probe, env=env, timeout=30, check=False, capture_output=True).returncode == 1


def _server_env_names() -> set[str]:
    source = (ROOT / "server/config.go").read_text()
    block = re.search(r"var envVars = map\[string\]string\{(.*?)\n\}", source, re.DOTALL)
    assert block, "server/config.go: envVars not found"
    return set(re.findall(r':\s*"([A-Z_]+)"', block.group(1)))


# --targets comes with the many-targets client (issue #17): until it is
# merged the variable is not among the options here, and is left out.
TARGETS_ENV = {"TARGETS_FILE"} - {opt.env for opt in OPTIONS}


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_client_accepts_its_rendered_environment(values: Path) -> None:
    """The chart configures the client by its environment variables: the
    client's own parser takes what the chart renders, in every shard."""
    if not enabled(values, "client"):
        pytest.skip(f"{values.name} turns the client off")
    manifest = render(values)
    # Every variable is one the client reads: its options, and the two OTEL_*
    # variables of its trace export (client/tracing.py).
    otel = {"OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"}
    deployments = client_deployments(manifest)
    assert deployments
    for deployment in deployments:
        env = deployment_env(deployment)
        assert set(env) <= {opt.env for opt in OPTIONS} | otel | TARGETS_ENV
        parse_config([], {k: v for k, v in env.items() if k not in otel | TARGETS_ENV})
    env = deployment_env(deployments[0])
    config = parse_config([], {k: v for k, v in env.items() if k not in otel | TARGETS_ENV})
    # Both programs export to the same endpoint, or neither does.
    settings = trace_settings(env)
    server_endpoint = container_env(manifest, "server").get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    assert (settings.endpoint if settings else None) == server_endpoint
    service = find(manifest, "Service", "-server")
    port = service["spec"]["ports"][0]["port"]
    domain = (yaml.safe_load(values.read_text()) or {}).get("clusterDomain", "cluster.local")
    # Fully qualified, with the trailing dot: one DNS query, no search path.
    # The first (or only) monitor probes it, or toggles it among its targets.
    assert config.target == f"http://{service['metadata']['name']}.{NAMESPACE}.svc.{domain}.:{port}"


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_server_starts_with_its_rendered_environment(values: Path, go_server: Callable[..., GoServer]) -> None:
    """The server's own flag parsing takes the environment the chart renders
    (the listen addresses are the test's; nothing is exported over OTLP)."""
    env = container_env(render(values), "server")
    # The OTel SDK reads these (server/telemetry.go: resource.WithFromEnv,
    # otlptracehttp and otlploghttp take the signal's full endpoint URL).
    otel = {"OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"}
    assert set(env) <= _server_env_names() | otel
    env = {k: v for k, v in env.items() if not k.startswith("OTEL_EXPORTER_")}
    server = go_server(env=env)
    assert server.proc.poll() is None


def test_notes_say_what_was_installed() -> None:
    out = run([helm(), "install", "sw", str(CHART), "--dry-run", "--namespace", "statuswatch"])
    assert out.returncode == 0, out.stderr
    notes = out.stdout.split("NOTES:", 1)[1]
    assert "NO ServiceMonitor" in notes  # no cluster: no CRDs
    assert "/d/status-server" in notes
    assert "helm test sw" in notes
