"""The values production users reach for first: each one reaches the object
it is for, a variable or label is never written twice, and the schema still
refuses every key it does not know."""

from __future__ import annotations

import json
from typing import Any

import yaml

from tests.helm.chart import (
    CHART,
    Manifest,
    container_env,
    find,
    kinds,
    pod_spec,
    refusal,
    render,
)

FULL = CHART / "ci/full-values.yaml"
APP_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]


def _env_names(manifest: Manifest, component: str) -> list[str]:
    (container,) = pod_spec(manifest, component)["containers"]
    return [e["name"] for e in container["env"]]


def test_extra_env_replaces_a_variable_the_chart_sets() -> None:
    """A real install refused two entries of one name (server-side apply):
    the user's entry replaces the chart's, in its place."""
    manifest = render(FULL)
    server = container_env(manifest, "server")  # fails on a name twice
    assert server["SERVER_LOG_LEVEL"] == "info"  # the chart's would be debug
    assert server["SERVER_DELAY"] == "10ms"
    names = _env_names(manifest, "server")
    assert names.index("SERVER_LOG_LEVEL") < names.index("SERVER_SEED") < names.index("SERVER_DELAY")
    assert container_env(manifest, "client")["LOG_FORMAT"] == "json"  # the chart's would be text


def test_extra_env_naming_a_variable_twice_is_refused() -> None:
    twice = 'client.extraEnv=[{"name":"TARGET_URL","value":"a"},{"name":"TARGET_URL","value":"b"}]'
    assert "client.extraEnv names TARGET_URL twice" in refusal(sets=(twice,))


def test_pods_take_the_default_account_when_none_is_made() -> None:
    """serviceAccount.create=false without a name named the account the
    chart would have made, which nobody made: no pod could be created."""
    manifest = render(sets=("serviceAccount.create=false",))
    assert "ServiceAccount" not in kinds(manifest)
    pods = [pod_spec(manifest, c) for c in ("server", "client")] + [find(manifest, "Pod", "-test-server")["spec"]]
    assert {pod["serviceAccountName"] for pod in pods} == {"default"}
    named = render(sets=("serviceAccount.create=false", 'serviceAccount.name="ci-bot"'))
    assert pod_spec(named, "server")["serviceAccountName"] == "ci-bot"


def test_every_knob_reaches_the_pods() -> None:
    manifest = render(FULL, crds=True)
    values = yaml.safe_load(FULL.read_text())
    for component in ("server", "client"):
        deployment = find(manifest, "Deployment", f"-{component}")
        template = deployment["spec"]["template"]
        spec, (container,) = template["spec"], template["spec"]["containers"]
        mine = values[component]
        assert deployment["spec"]["revisionHistoryLimit"] == values["revisionHistoryLimit"]
        assert spec["imagePullSecrets"] == values["imagePullSecrets"]
        assert spec["priorityClassName"] == mine["priorityClassName"]
        assert spec["tolerations"] == mine["tolerations"]
        labels = template["metadata"]["labels"]
        assert labels["team"] == values["commonLabels"]["team"], "commonLabels reach the pods"
        assert mine["podLabels"].items() <= labels.items()
        assert container["envFrom"] == mine["extraEnvFrom"]
        assert all(v in spec["volumes"] for v in mine["extraVolumes"])
        assert all(m in container["volumeMounts"] for m in mine["extraVolumeMounts"])
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            if probe in mine:  # merged over the chart's: its other fields stay
                assert mine[probe].items() <= container[probe].items(), probe
    server = pod_spec(manifest, "server")
    for key in ("topologySpreadConstraints", "nodeSelector", "affinity"):
        assert server[key] == values["server"][key], key
    assert server["securityContext"] == values["server"]["podSecurityContext"]
    annotations = find(manifest, "Deployment", "-server")["spec"]["template"]["metadata"]["annotations"]
    assert annotations == values["server"]["podAnnotations"]
    account = find(manifest, "ServiceAccount")
    assert account["metadata"]["annotations"] == values["serviceAccount"]["annotations"]
    assert kinds(manifest).count("NetworkPolicy") == 2


def test_loki_tenant_reaches_both_programs_and_the_rules() -> None:
    """A Loki with auth_enabled: true (its chart's default) refuses a push
    without X-Scope-OrgID: both programs get the tenant, and the rules over
    the monitor's records (loki/rules/fake/) go to that tenant's folder."""
    tenant = yaml.safe_load(FULL.read_text())["loki"]["tenant"]
    for values, want in ((FULL, tenant), (None, None)):
        manifest = render(values)
        assert container_env(manifest, "client").get("LOKI_TENANT") == want
        assert container_env(manifest, "server").get("SERVER_LOKI_TENANT") == want
        (rules,) = [d for d in manifest if d["kind"] == "ConfigMap" and "loki_rule" in d["metadata"]["labels"]]
        assert rules["metadata"]["annotations"] == {"k8s-sidecar-target-directory": want or "fake"}
        assert rules["metadata"]["name"].endswith(f"-loki-rules-{want or 'fake'}")


def test_image_tag_defaults_to_the_app_version() -> None:
    manifest = render()
    assert pod_spec(manifest, "server")["containers"][0]["image"] == f"statuswatch/server:{APP_VERSION}"
    assert pod_spec(manifest, "client")["containers"][0]["image"] == f"statuswatch/client:{APP_VERSION}"
    pinned = render(sets=('server.image.tag="1.2.3"',))
    assert pod_spec(pinned, "server")["containers"][0]["image"] == "statuswatch/server:1.2.3"


def test_security_contexts_can_leave_the_ids_to_the_platform() -> None:
    """OpenShift assigns UIDs: a null in the values removes the key."""
    manifest = render(sets=("server.podSecurityContext.runAsUser=null", "server.podSecurityContext.runAsGroup=null"))
    context = pod_spec(manifest, "server")["securityContext"]
    assert context == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def test_probes_by_default() -> None:
    """The server's probes are kubelet HTTP GETs of /healthz; the monitor's
    exec check starts a Python each time, so it runs seldom: its heartbeat
    goes stale after 2 x (interval + timeout) + 5 s, 15 s by default."""
    manifest = render()
    (server,) = pod_spec(manifest, "server")["containers"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert server[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    (client,) = pod_spec(manifest, "client")["containers"]
    for probe in ("startupProbe", "livenessProbe"):
        assert client[probe]["exec"]["command"] == ["python", "-m", "client.healthcheck"], probe
    assert client["livenessProbe"]["periodSeconds"] >= 30
    assert "readinessProbe" not in client  # it takes no traffic


def _labels_of(manifest: Manifest) -> list[tuple[str, dict[str, Any]]]:
    out = [(f"{d['kind']}/{d['metadata']['name']}", d["metadata"]["labels"]) for d in manifest]
    out += [(f"pod of {d['metadata']['name']}", d["spec"]["template"]["metadata"]["labels"]) for d in manifest
            if d["kind"] == "Deployment"]  # fmt: skip
    return out


def test_labels_are_merged_maps() -> None:
    """commonLabels naming a key an object sets too (release) wrote it twice
    (render parses strictly and fails on it): the object's own value wins,
    once; the chart's own labels win over both."""
    common = 'commonLabels={"release":"common","team":"a"}'
    manifest = render(crds=True, sets=(common, 'server.podLabels={"team":"b"}'))
    monitor = find(manifest, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    for name, labels in _labels_of(manifest):
        assert labels["app.kubernetes.io/name"] == "statuswatch", name
        assert "team" in labels, name
    pod = find(manifest, "Deployment", "-server")["spec"]["template"]["metadata"]["labels"]
    assert pod["team"] == "b"


def test_schema_refuses_unknown_keys_everywhere() -> None:
    """Every object of the schema with properties refuses others, but the
    few that pass Kubernetes objects through (probes are checked key by key)."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    open_ended = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if "properties" in node and node.get("additionalProperties") is not False:
                open_ended.append(path)
            for key, sub in node.items():
                walk(sub, f"{path}/{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{path}/{i}")

    walk(schema, "")
    assert open_ended == [], open_ended


def _peers_select(peers: list[dict[str, Any]], labels: dict[str, str]) -> bool:
    """Whether a pod of the release's namespace with these labels is one of
    the peers (a peer without a namespaceSelector is the policy's namespace)."""
    return any(
        "namespaceSelector" not in p and p["podSelector"]["matchLabels"].items() <= labels.items() for p in peers
    )


def test_network_policies_let_through_what_each_pod_needs() -> None:
    manifest = render(FULL)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["networkPolicy"]
    labels = {
        c: find(manifest, "Deployment", f"-{c}")["spec"]["template"]["metadata"]["labels"] for c in ("server", "client")
    }
    labels["test"] = find(manifest, "Pod", "-test-server")["metadata"]["labels"]
    server, client = (
        find(manifest, "NetworkPolicy", "-server")["spec"],
        find(manifest, "NetworkPolicy", "-client")["spec"],
    )
    assert server["podSelector"]["matchLabels"].items() <= labels["server"].items()
    assert client["podSelector"]["matchLabels"].items() <= labels["client"].items()
    assert sorted(server["policyTypes"]) == sorted(client["policyTypes"]) == ["Egress", "Ingress"]
    (api, metrics) = server["ingress"]
    assert api["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert _peers_select(api["from"], labels["client"])
    assert _peers_select(api["from"], labels["test"])
    assert metrics == {"from": defaults["prometheus"], "ports": [{"port": "metrics", "protocol": "TCP"}]}
    assert "ingress" not in client, "nothing connects to the monitor"
    to_server, *rest = client["egress"]
    assert _peers_select(to_server["to"], labels["server"])
    assert to_server["ports"] == [{"port": 8080, "protocol": "TCP"}]
    # Loki and Tempo are set in full-values: both pods reach them and DNS.
    assert rest == server["egress"] == [defaults["dns"], defaults["loki"], defaults["tempo"]]
    without = render(sets=("networkPolicy.enabled=true",))
    assert find(without, "NetworkPolicy", "-server")["spec"]["egress"] == [defaults["dns"]]
