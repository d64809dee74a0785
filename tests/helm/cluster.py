"""A real Kubernetes API server on loopback: etcd plus kube-apiserver (no
kubelet, no controllers: objects are stored and validated, pods never run).
kubectl and helm reach it through a kubeconfig with a static token."""

from __future__ import annotations

import secrets
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.conftest import free_port

# Start-up takes seconds on an idle machine; a busy one gets a wide margin.
READY_TIMEOUT = 180.0


@dataclass(frozen=True)
class Cluster:
    url: str
    kubeconfig: Path
    kubectl: str

    def kubectl_args(self, *args: str) -> list[str]:
        return [self.kubectl, "--kubeconfig", str(self.kubeconfig), *args]

    def run(self, *args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.kubectl_args(*args), input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )

    def must(self, *args: str, stdin: str | None = None) -> str:
        out = self.run(*args, stdin=stdin)
        assert out.returncode == 0, f"kubectl {' '.join(args)}: {out.stderr}"
        return out.stdout


@contextmanager
def process(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_ready(url: str, token: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Polls GET /readyz until it answers 200 (every post-start hook done)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the server's self-signed certificate
    readyz = url + "/readyz"  # https, built by api_server
    request = urllib.request.Request(readyz, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"kube-apiserver exited {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(request, timeout=5, context=context) as answer:  # noqa: S310
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"kube-apiserver not ready within {READY_TIMEOUT:.0f} s:\n{log.read_text()[-4000:]}")


def write_kubeconfig(path: Path, url: str, token: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": url, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
        "current-context": "test",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)


@contextmanager
def api_server(etcd: str, apiserver: str, kubectl: str, workdir: Path) -> Iterator[Cluster]:
    """etcd and kube-apiserver on free loopback ports, for the with-block."""
    token = secrets.token_hex(16)
    (workdir / "tokens.csv").write_text(f'{token},admin,admin,"system:masters"\n')
    key = workdir / "service-account.key"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    url = f"https://127.0.0.1:{api_port}"
    with ExitStack() as stack:
        etcd_args = [
            etcd,
            f"--data-dir={workdir / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
        ]
        stack.enter_context(process(etcd_args, workdir / "etcd.log"))
        apiserver_args = [
            apiserver,
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # No kubelet, no endpoints: the default reconciler refuses loopback.
            "--endpoint-reconciler-type=none",
            f"--secure-port={api_port}",
            f"--cert-dir={workdir / 'certs'}",
            f"--token-auth-file={workdir / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={key}",
            f"--service-account-signing-key-file={key}",
        ]
        log = workdir / "kube-apiserver.log"
        proc = stack.enter_context(process(apiserver_args, log))
        wait_ready(url, token, proc, log)
        write_kubeconfig(workdir / "kubeconfig", url, token)
        yield Cluster(url, workdir / "kubeconfig", kubectl)
