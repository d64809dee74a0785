"""docker-compose.yml and the Dockerfiles, checked without a Docker engine:
the Compose specification's schema, then what the schema cannot say."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest

from tests.stack import ROOT, compose, load_yaml

SERVICES = ("server", "client", "prometheus", "alertmanager", "loki", "tempo", "grafana")


def services() -> dict[str, Any]:
    s: dict[str, Any] = compose()["services"]
    return s


def test_valid_against_the_compose_specification() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", "docker-compose.yml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_stack_has_its_services() -> None:
    assert set(services()) == set(SERVICES)


@pytest.mark.parametrize(
    ("service", "image"),
    [
        ("prometheus", r"prom/prometheus:v3\.\d+\.\d+"),
        ("alertmanager", r"prom/alertmanager:v0\.\d+\.\d+"),
        ("loki", r"grafana/loki:3\.7\.\d+"),
        ("tempo", r"grafana/tempo:3\.\d+\.\d+"),
        # The newest 13.2 patch (late 2026); 13.2.0 bundles plugins built
        # with an older Go (grafana/grafana#131863), and with the preinstaller
        # off (test_grafana_downloads_no_plugin) they stay as built.
        ("grafana", r"grafana/grafana:13\.2\.3"),
        ("server", r"statuswatch/server:\d+\.\d+\.\d+"),
        ("client", r"statuswatch/client:\d+\.\d+\.\d+"),
    ],
)
def test_images_are_pinned(service: str, image: str) -> None:
    assert re.fullmatch(image, services()[service]["image"])


@pytest.mark.parametrize("service", SERVICES)
def test_hardened(service: str) -> None:
    s = services()[service]
    assert s.get("read_only") is True
    assert s.get("cap_drop") == ["ALL"]
    assert "no-new-privileges:true" in s.get("security_opt", [])
    assert not s.get("privileged")
    assert "restart" in s
    user = str(s.get("user", ""))
    assert user, "runs as a fixed user"
    assert user.split(":")[0] not in ("0", "root"), "a non-root one"
    for port in s.get("ports", []):
        assert str(port).startswith("127.0.0.1:"), f"{service} publishes {port} beyond localhost"
    for volume in s.get("volumes", []):
        assert "docker.sock" not in volume


@pytest.mark.parametrize("service", SERVICES)
def test_health_checks_run_without_a_shell(service: str) -> None:
    check = services()[service]["healthcheck"]["test"]
    assert check[0] == "CMD", "exec form: the server and Loki images have no shell"


def test_dependencies_wait_for_health_checks() -> None:
    waits = 0
    for name, s in services().items():
        for dep, cond in s.get("depends_on", {}).items():
            assert cond == {"condition": "service_healthy"}, f"{name} -> {dep}"
            assert "healthcheck" in services()[dep]
            waits += 1
    assert waits >= 4
    assert set(services()["server"]["depends_on"]) == {"loki"}, "its logs go to Loki from the first request"
    assert set(services()["client"]["depends_on"]) == {"server", "loki"}
    assert set(services()["grafana"]["depends_on"]) == {"prometheus", "loki"}


def test_every_mounted_file_exists() -> None:
    for name, s in services().items():
        for volume in s.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in compose()["volumes"], f"{name} uses undeclared volume {source}"
        build = s.get("build")
        if build:
            context = ROOT / build["context"]
            assert (context / build.get("dockerfile", "Dockerfile")).exists()


def test_grafana_has_no_default_password() -> None:
    env = services()["grafana"]["environment"]
    for key, var in (
        ("GF_SECURITY_ADMIN_PASSWORD", "GRAFANA_ADMIN_PASSWORD"),
        ("GF_SECURITY_SECRET_KEY", "GRAFANA_SECRET_KEY"),
    ):
        assert env[key].startswith(f"${{{var}:?"), f"{key} must come from the environment, with no default"
        example = (ROOT / ".env.example").read_text()
        assert re.search(rf"^{var}=\S*$", example, re.M), f".env.example lacks {var}"
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_grafana_downloads_no_plugin() -> None:
    """Grafana 13's preinstaller replaces bundled plugins that have a newer
    release; on a read-only root it unloads them first and then fails, and
    every panel says "plugin not registered" (grafana/grafana#132528)."""
    env = services()["grafana"]["environment"]
    assert env["GF_PLUGINS_PREINSTALL_DISABLED"] == "true"
    assert env["GF_PLUGINS_PREINSTALL_AUTO_UPDATE"] == "false"
    assert not {k for k in env if k in ("GF_INSTALL_PLUGINS", "GF_PLUGINS_PREINSTALL", "GF_PLUGINS_PREINSTALL_SYNC")}


def test_grafana_finds_every_provisioning_folder() -> None:
    """The mount hides the image's folders; Grafana logs an error for each
    one that is missing."""
    for folder in ("datasources", "dashboards", "plugins", "alerting", "notifiers"):
        assert (ROOT / "grafana/provisioning" / folder).is_dir(), folder


@pytest.mark.parametrize("service", ["client", "loki", "grafana"])
def test_a_writable_tmp(service: str) -> None:
    """Loki's compactor reads retention markers through a copy in
    os.TempDir(): with a read-only /tmp nothing past the retention period is
    ever deleted."""
    assert "/tmp" in services()[service]["tmpfs"]  # noqa: S108 (a path in the container)


def test_prometheus_runs_with_exemplar_storage() -> None:
    command = services()["prometheus"]["command"]
    assert "--enable-feature=exemplar-storage" in command
    assert "--config.file=/etc/prometheus/prometheus.yml" in command
    assert not [flag for flag in command if flag.startswith("--storage.tsdb.retention")], (
        "deprecated since 3.x: the retention is in prometheus.yml"
    )
    assert load_yaml("prometheus/prometheus.yml")["storage"]["tsdb"]["retention"]["time"] == "31d"


def test_server_logs_go_to_loki_over_otlp() -> None:
    env = services()["server"]["environment"]
    assert env["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"] == "http://loki:3100/otlp/v1/logs"
    assert services()["client"]["environment"]["LOKI_URL"] == "http://loki:3100/loki/api/v1/push"


@pytest.mark.parametrize("dockerfile", ["server/Dockerfile", "client/Dockerfile"])
def test_dockerfiles_lint_clean(dockerfile: str) -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), dockerfile], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    text = (ROOT / dockerfile).read_text()
    for base in re.findall(r"^FROM (\S+)", text, re.M):
        assert base == "scratch" or re.search(r":\d+\.\d+\.\d+", base), f"{base} is not pinned to a version"
    assert re.search(r"^USER \d+:\d+$", text, re.M), "a numeric non-root USER"
    assert re.search(r'^(CMD|ENTRYPOINT) \[".*"\]$', text, re.M), "exec form, so SIGTERM reaches the process"


def test_server_image_is_under_20_mb(tmp_path: Path) -> None:
    """The image is the static binary in scratch: build it as the Dockerfile does."""
    text = (ROOT / "server/Dockerfile").read_text()
    build = re.search(r"RUN (CGO_ENABLED=0 go build .*)", text)
    assert build, "the Dockerfile's build step"
    command = build.group(1).replace("${VERSION}", "test").replace("/out/server", str(tmp_path / "server"))
    subprocess.run(["sh", "-c", command], cwd=ROOT / "server", check=True)
    size = (tmp_path / "server").stat().st_size
    assert size < 20 * 1024 * 1024, f"{size / 2**20:.1f} MiB"
    assert "HEALTHCHECK" in text
    assert '"/server", "-healthcheck"' in text


def test_client_build_context_holds_only_what_the_image_needs() -> None:
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*") :][:3] == ["*", "!requirements.txt", "!client/"]


# The fleet the stack's monitor probes (docs/stack.md#the-fleet-the-monitor-watches).
TARGETS = "client/targets.stack.yml"


def stack_targets() -> list[dict[str, Any]]:
    targets: list[dict[str, Any]] = load_yaml(TARGETS)["targets"]
    return targets


def test_the_monitor_reads_the_fleet_from_its_mount() -> None:
    """The file is mounted read-only at the path it has in the repository,
    under the image's WORKDIR; the flaky toggles still reach the server."""
    client = services()["client"]
    env = client["environment"]
    workdir = re.search(r"^WORKDIR (\S+)$", (ROOT / "client/Dockerfile").read_text(), re.M)
    assert workdir, "the client image's WORKDIR"
    assert env["TARGETS_FILE"] == f"{workdir.group(1)}/{TARGETS}"
    assert f"./{TARGETS}:{env['TARGETS_FILE']}:ro" in client["volumes"]
    assert env["TARGET_URL"] == "http://server:8080", "the toggles' POST /flaky"
    assert "PROBE_INTERVAL" not in env, "each target's interval is in the file"


def test_the_fleet_follows_the_clients_schema() -> None:
    schema = ROOT / "client/targets.schema.json"
    if not schema.is_file():
        pytest.skip("client/targets.schema.json comes with the targets file (issue #17)")
    jsonschema.Draft202012Validator(json.loads(schema.read_text())).validate(load_yaml(TARGETS))


def test_the_client_accepts_the_fleet() -> None:
    """What the schema cannot check (timeout below interval, regular
    expressions, JMESPath, unique names): the client's own loader."""
    targets = pytest.importorskip("client.targets", reason="client/targets.py comes with issue #17")
    from client.config import parse_config

    loaded = targets.load_targets(str(ROOT / TARGETS), parse_config([], {}), {})
    assert [t.name for t in loaded] == [t["name"] for t in stack_targets()]


def listening_ports(service: dict[str, Any]) -> set[int]:
    """The container ports a service listens on: the container side of its
    published ports (every service of the stack publishes its API)."""
    return {int(str(p).rsplit(":", 1)[1]) for p in service.get("ports", [])}


def test_the_fleet_is_the_stack() -> None:
    """Every service but the monitor itself, each on a port it listens on,
    named after it (the server as status-server, as --target names it)."""
    hosts = {}
    for target in stack_targets():
        url = urlsplit(target["url"])
        assert url.scheme == "http", target
        assert url.hostname, target
        assert url.port, f"{target['name']}: the port, explicitly"
        assert url.hostname in services(), f"{target['name']}: {url.hostname} is not a compose service"
        assert url.port in listening_ports(services()[url.hostname]), f"{target['name']}: port {url.port}"
        assert target["name"] == ("status-server" if url.hostname == "server" else url.hostname)
        hosts[url.hostname] = url
    assert set(hosts) == set(SERVICES) - {"client"}


def test_the_monitor_asks_what_docker_asks() -> None:
    """Where a service's health check is an HTTP request, the fleet probes
    the same path and port: the monitor and Docker agree on what healthy is."""
    compared = 0
    for target in stack_targets():
        url = urlsplit(target["url"])
        check = " ".join(services()[url.hostname]["healthcheck"]["test"])
        probed = re.search(r"http://127\.0\.0\.1:(\d+)(/\S*)", check)
        if probed:
            assert (int(probed.group(1)), probed.group(2)) == (url.port, url.path), target["name"]
            compared += 1
    assert compared == 3, "Prometheus, Alertmanager and Grafana check over HTTP"
