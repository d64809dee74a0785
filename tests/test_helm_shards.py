"""Monitors that share the fleet (client.targets, client.shards): the
targets file rendered from values and checked as the client checks it, one
Deployment per shard, each probing its share by client/shard.py, every
target probed exactly once, and the flaky toggles sent by one monitor."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from client import shard
from client.config import ConfigError, parse_config
from tests.helm.chart import (
    CHART,
    Manifest,
    client_deployments,
    deployment_env,
    find,
    helm,
    refusal,
    render,
    run,
)
from tests.stack import ROOT

SHARDED = CHART / "ci/sharded-values.yaml"
SHARDED_VALUES = yaml.safe_load(SHARDED.read_text())
# The many-targets client's contract (issue #17); skipped where it is not
# merged yet.
TARGETS_SCHEMA = ROOT / "client/targets.schema.json"
NO_TARGETS_SCHEMA = f"{TARGETS_SCHEMA.relative_to(ROOT)} is not in this tree yet (the many-targets client, issue #17)"
COUNTS = range(1, 8)
# A fleet: names as they come, some alike but for case or a dot.
MANY = [
    {"name": f"{kind}-{i}.{region}", "url": f"https://{kind}-{i}.{region}.example/healthz"}
    for i in range(150)
    for kind in ("api", "Web")
    for region in ("eu", "us", "ap")
]


def _targets_file(manifest: Manifest) -> dict[str, Any]:
    text = find(manifest, "ConfigMap", "-targets")["data"]["targets.yml"]
    assert text.startswith("# Made by the statuswatch chart"), text[:80]
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def _shard_of(deployment: dict[str, Any]) -> tuple[int, int]:
    return shard.parse_shard(deployment_env(deployment)["SHARD"])


def _render_shards(count: int, targets: list[dict[str, Any]]) -> Manifest:
    return render(sets=(f"client.shards={count}", f"client.targets={json.dumps(targets)}"))


@pytest.mark.parametrize("count", COUNTS)
def test_one_deployment_per_shard(count: int) -> None:
    """Shard i of N is its own Deployment (-client-<i>; one keeps the
    single monitor's name), SHARD=i/N, with a selector that takes its own
    pods and no other shard's."""
    deployments = client_deployments(_render_shards(count, MANY[:10]))
    assert [_shard_of(d) for d in deployments] == [(i, count) for i in range(count)]
    names = [d["metadata"]["name"] for d in deployments]
    assert names == (["sw-statuswatch-client"] if count == 1 else [f"sw-statuswatch-client-{i}" for i in range(count)])
    for mine in deployments:
        selector = mine["spec"]["selector"]["matchLabels"]
        for other in deployments:
            labels = other["spec"]["template"]["metadata"]["labels"]
            assert (selector.items() <= labels.items()) == (other is mine)
        assert mine["spec"]["replicas"] == 1
        assert mine["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize("count", COUNTS)
def test_only_shard_zero_toggles_the_server(count: int) -> None:
    """The client sends the flaky toggles to TARGET_URL, when it is set
    beside a targets file: shard 0 has it, the others neither it nor a
    toggle interval."""
    deployments = client_deployments(_render_shards(count, MANY[:10]))
    envs = [deployment_env(d) for d in deployments]
    togglers = [env for env in envs if "TARGET_URL" in env and env["FLAKY_INTERVAL"] != "0"]
    assert togglers == [envs[0]]
    assert envs[0]["FLAKY_INTERVAL"] == "10"
    assert all(env["FLAKY_INTERVAL"] == "0" and "TARGET_URL" not in env for env in envs[1:])


@pytest.mark.parametrize("count", COUNTS)
def test_shards_probe_every_target_exactly_once(count: int) -> None:
    """Over 900 targets: the targets file every shard mounts, split by
    client/shard.py on each Deployment's SHARD, gives each target to one
    shard, and together they cover the file."""
    manifest = _render_shards(count, MANY)
    names = [t["name"] for t in _targets_file(manifest)["targets"]]
    assert names == [t["name"] for t in MANY]
    probed: list[str] = []
    for deployment in client_deployments(manifest):
        index, total = _shard_of(deployment)
        assert total == count
        probed += [name for name in names if shard.belongs(name, index, total)]
        assert deployment_env(deployment)["TARGETS_FILE"] == "/etc/statuswatch/targets/targets.yml"
        spec = deployment["spec"]["template"]["spec"]
        (mount,) = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "targets"]
        assert mount == {"name": "targets", "mountPath": "/etc/statuswatch/targets", "readOnly": True}
        (volume,) = [v for v in spec["volumes"] if v["name"] == "targets"]
        assert volume["configMap"]["name"] == find(manifest, "ConfigMap", "-targets")["metadata"]["name"]
    assert sorted(probed) == sorted(names)


def test_without_targets_the_monitor_is_as_before() -> None:
    manifest = render()
    (deployment,) = client_deployments(manifest)
    env = deployment_env(deployment)
    assert "TARGETS_FILE" not in env
    assert "SHARD" not in env
    assert not [d for d in manifest if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-targets")]
    assert "statuswatch/shard" not in deployment["spec"]["selector"]["matchLabels"]


def test_header_secrets_stay_in_secrets() -> None:
    """The file holds ${SHOP_API_TOKEN}; every shard gets the variable from
    the Secret (extraEnv, secretKeyRef), so the client expands it."""
    manifest = render(SHARDED)
    (shop,) = [t for t in _targets_file(manifest)["targets"] if t["name"] == "shop-api"]
    assert shop["headers"] == {"Authorization": "Bearer ${SHOP_API_TOKEN}"}
    for deployment in client_deployments(manifest):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        (var,) = [e for e in container["env"] if e["name"] == "SHOP_API_TOKEN"]
        assert var["valueFrom"]["secretKeyRef"] == {"name": "statuswatch-target-tokens", "key": "shop-api"}


def test_a_changed_file_rolls_the_monitors() -> None:
    """The pods carry the file's checksum: a new file restarts them (a
    mounted ConfigMap changes under a running client, which reads it once)."""

    def checksums(manifest: Manifest) -> set[str]:
        pods = [d["spec"]["template"]["metadata"] for d in client_deployments(manifest)]
        return {pod["annotations"]["checksum/targets"] for pod in pods}

    before = checksums(render(SHARDED))
    after = checksums(render(SHARDED, sets=("client.targetDefaults.interval=20",)))
    assert len(before) == len(after) == 1
    assert before != after


GOOD_URLS = [
    "http://sw-statuswatch-server.statuswatch.svc.cluster.local.:8080/status",
    "https://user:p@ss@a.example:8443/x?y=1#z",
    "http://[::1]:8080/",
    "https://bücher.example/",
    "HTTPS://A_b-c.example",
    "http://10.0.0.1:1/",
]


def test_urls_the_monitor_takes_render() -> None:
    """The URL check refuses nothing the monitor accepts."""
    targets = [{"name": f"t{i}", "url": url} for i, url in enumerate(GOOD_URLS)]
    render(sets=(f"client.targets={json.dumps(targets)}",))
    from client.config import _url

    assert [_url(url) for url in GOOD_URLS] == GOOD_URLS


def test_header_variables_may_come_from_the_environment() -> None:
    """A ${VAR} of a header is accepted when client.extraEnv sets it, or
    when client.extraEnvFrom may (the chart cannot see into those)."""
    targets = f"client.targets={_target(headers={'X-Key': '${KEY}'})}"
    render(sets=(targets, 'client.extraEnv=[{"name": "KEY", "value": "k"}]'))
    render(sets=(targets, 'client.extraEnvFrom=[{"secretRef": {"name": "keys"}}]'))


def test_network_policy_lets_the_monitors_reach_the_targets() -> None:
    policy = find(render(SHARDED), "NetworkPolicy", "-client")["spec"]
    assert policy["egress"][-1] == SHARDED_VALUES["networkPolicy"]["targets"][0]
    without = find(render(SHARDED, sets=("client.targets=[]", "client.shards=1")), "NetworkPolicy", "-client")
    assert SHARDED_VALUES["networkPolicy"]["targets"][0] not in without["spec"]["egress"]


def _schema() -> dict[str, Any]:
    if not TARGETS_SCHEMA.exists():
        pytest.skip(NO_TARGETS_SCHEMA)
    schema: dict[str, Any] = json.loads(TARGETS_SCHEMA.read_text())
    return schema


@pytest.mark.parametrize("values", [SHARDED, None], ids=["sharded", "many"])
def test_the_file_is_a_targets_file(values: Path | None, tmp_path: Path) -> None:
    """The rendered file validates against client/targets.schema.json, and
    the monitor's own loader takes it in every shard's configuration."""
    schema = _schema()
    manifest = render(SHARDED) if values else _render_shards(3, MANY)
    data = _targets_file(manifest)
    jsonschema.validate(data, schema, cls=jsonschema.Draft202012Validator)
    if importlib.util.find_spec("client.targets") is None:
        return
    from client.targets import load_targets  # type: ignore[import-not-found,unused-ignore]

    path = tmp_path / "targets.yml"
    path.write_text(find(manifest, "ConfigMap", "-targets")["data"]["targets.yml"])
    for deployment in client_deployments(manifest):
        config = parse_config([], deployment_env(deployment))
        targets = load_targets(str(path), config, {"SHOP_API_TOKEN": "x"})
        assert [t.name for t in targets] == [t["name"] for t in data["targets"]]


def test_the_chart_checks_targets_as_the_client_does() -> None:
    """values.schema.json's target, settings and expect are those of
    client/targets.schema.json, key by key (draft-07 lists the settings in
    the target again, where 2020-12 refers to them)."""
    theirs = _schema()["$defs"]
    ours = json.loads((CHART / "values.schema.json").read_text())["definitions"]
    settings = ours["targetSettings"]["properties"]
    assert {k: v for k, v in settings.items() if k != "expect"} == {
        k: v for k, v in theirs["settings"]["properties"].items() if k != "expect"
    }
    assert theirs["settings"]["properties"]["expect"] == {"$ref": "#/$defs/expect"}
    assert settings["expect"] == {"$ref": "#/definitions/targetExpect"}
    assert ours["targetExpect"] == theirs["expect"]
    target = ours["target"]["properties"]
    assert {k: target[k] for k in ("name", "url")} == theirs["target"]["properties"]
    assert set(target) == {"name", "url", *settings}
    assert all(target[k] == {"$ref": f"#/definitions/targetSettings/properties/{k}"} for k in settings)
    assert ours["target"]["required"] == theirs["target"]["required"]


def _target(**changes: Any) -> str:
    return json.dumps([{"name": "a", "url": "https://a.example/", **changes}])


# Values the chart's schema refuses: (sets, what Helm's error names).
SCHEMA_REFUSES = [
    pytest.param((f"client.targets={_target(intervall=5)}",), "intervall", id="unknown-target-key"),
    pytest.param((f"client.targets={_target(expect={'stauts': 200})}",), "stauts", id="unknown-expect-key"),
    pytest.param(('client.targetDefaults={"expect": {"tls": {}}}',), "min_days_left", id="tls-without-days"),
    pytest.param(('client.targets=[{"name": "a b", "url": "https://a.example/"}]',), "name", id="bad-name"),
    pytest.param(('client.targets=[{"name": "a", "url": "a.example"}]',), "url", id="url-without-scheme"),
    pytest.param(('client.targets=[{"name": "a"}]',), "url", id="no-url"),
    pytest.param((f"client.targets={_target(method='POST')}",), "method", id="post"),
    pytest.param(("client.shards=0",), "shards", id="no-shard"),
]


@pytest.mark.parametrize(("sets", "word"), SCHEMA_REFUSES)
def test_schema_refuses_bad_targets(sets: tuple[str, ...], word: str) -> None:
    error = refusal(sets=sets)
    assert "values don't meet the specifications of the schema" in error
    assert word in error, error


# Values only the templates refuse (the client refuses them too, at start).
TEMPLATES_REFUSE = [
    pytest.param(
        ('client.targets=[{"name": "a", "url": "https://a/"}, {"name": "a", "url": "https://b/"}]',),
        "client.targets names a twice (targets[0] and targets[1])",
        id="name-twice",
    ),
    pytest.param(
        (f"client.targets={_target()}", 'client.targetDefaults={"interval": 5, "timeout": 5}'),
        "target a's timeout (5 s) must be shorter than its interval (5 s)",
        id="timeout-not-below-interval",
    ),
    pytest.param(
        (f"client.targets={_target(interval=60)}",),
        "target a's interval (60 s) is longer than client.summaryInterval (30 s)",
        id="interval-beyond-summary",
    ),
    pytest.param(("client.shards=2",), "client.shards (2) needs client.targets", id="shards-without-targets"),
    pytest.param(
        (f"client.targets={_target(headers={'Authorization': 'Bearer ${API_TOKEN}'})}",),
        "target a's header Authorization names ${API_TOKEN}, which neither the chart nor client.extraEnv sets",
        id="header-variable-unset",
    ),
    pytest.param(
        (
            'client.targetDefaults={"headers": {"X-Key": "${KEY}"}}',
            f"client.targets={_target()}",
            'client.extraEnv=[{"name": "KEY_", "value": "k"}]',
        ),
        "target a's header X-Key names ${KEY}",
        id="default-header-variable-unset",
    ),
    pytest.param(
        ('client.targets=[{"name": "a", "url": "https:///healthz"}]',),
        "target a's url https:///healthz has no host",
        id="url-without-host",
    ),
    pytest.param(
        ('client.targets=[{"name": "a", "url": "https://a..example/"}]',),
        'target a\'s url https://a..example/ has a bad host name "a..example"',
        id="url-with-empty-label",
    ),
    pytest.param(
        ('client.targets=[{"name": "a", "url": "http://user@a.example:65536/"}]',),
        'target a\'s url http://user@a.example:65536/ has a bad port "65536"',
        id="url-with-bad-port",
    ),
    pytest.param(
        ('client.targets=[{"name": "a", "url": "http://a.example:0/"}]',),
        'has a bad port "0"',
        id="url-with-port-0",
    ),
    pytest.param(
        (f"client.targets={_target(method='HEAD', expect={'body': {'matches': ['ok']}})}",),
        "target a's expect.body: the answer to a HEAD request has no body to check",
        id="head-with-body",
    ),
    pytest.param(
        (
            'client.targetDefaults={"method": "HEAD"}',
            f"client.targets={_target(expect={'json': [{'query': 'a', 'equals': 1}]})}",
        ),
        "target a's expect.json: the answer to a HEAD request has no body to check",
        id="default-head-with-json",
    ),
    pytest.param(
        ('client.targets=[{"name": "a", "url": "http://a.example/", "expect": {"tls": {"min_days_left": 7}}}]',),
        "target a's expect.tls: an http URL has no certificate to judge",
        id="tls-on-http",
    ),
]


@pytest.mark.parametrize(("sets", "words"), TEMPLATES_REFUSE)
def test_templates_refuse_what_the_client_refuses(sets: tuple[str, ...], words: str, tmp_path: Path) -> None:
    error = refusal(sets=sets)
    assert "values don't meet the specifications of the schema" not in error
    assert words in error, error
    _client_refuses(sets, tmp_path)


def _client_refuses(sets: tuple[str, ...], tmp_path: Path) -> None:
    """Where the many-targets client is in the tree, it refuses the same
    file (with the chart's other settings as they render)."""
    if importlib.util.find_spec("client.targets") is None:
        return
    from client.targets import load_targets  # type: ignore[import-not-found,unused-ignore]

    values = {k.removeprefix("client."): json.loads(v) for k, v in (s.split("=", 1) for s in sets)}
    if "targets" not in values:
        return
    path = tmp_path / "targets.yml"
    path.write_text(yaml.safe_dump({"defaults": values.get("targetDefaults", {}), "targets": values["targets"]}))
    config = parse_config([], deployment_env(client_deployments(render())[0]))
    with pytest.raises(ConfigError):
        load_targets(str(path), config, {})


def test_notes_say_how_the_fleet_is_shared() -> None:
    args = [helm(), "install", "sw", str(CHART), "--dry-run", "--namespace", "statuswatch"]
    out = run([*args, "--values", str(SHARDED)])
    assert out.returncode == 0, out.stderr
    notes = out.stdout.split("NOTES:", 1)[1]
    assert "- 3 monitors, each probing its shard of the 4 targets of client.targets" in notes
    assert "(shard 0 toggling flaky mode every 20 s)" in notes


def _dashboard_targets(manifest: Manifest) -> list[str]:
    (data,) = find(manifest, "ConfigMap", "-dashboard-status-server")["data"].values()
    (variable,) = [v for v in json.loads(data)["templating"]["list"] if v["name"] == "target"]
    names: list[str] = variable["query"].split(",")
    return names


@pytest.mark.parametrize("values", [None, SHARDED], ids=["default", "sharded"])
def test_dashboard_offers_the_release_targets(values: Path | None) -> None:
    """The dashboard's $target lists the names the release's monitors put
    on their records, not the compose stack's: client.targets' names, or
    the status server's alone without them."""
    manifest = render(values)
    expected = [t["name"] for t in SHARDED_VALUES["client"]["targets"]] if values else ["status-server"]
    assert _dashboard_targets(manifest) == expected
