"""blackbox_exporter is the oracle: the client's probe() and Prometheus'
own prober, pointed at the same misbehaving loopback server, must agree on
the final status code and on success. Where they must differ, DIFFERENCES
says why, and the test holds blackbox_exporter to what the table claims."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from client.probe import MAX_BODY_BYTES, TWO_XX, probe
from tests.conftest import free_port
from tests.stack import tool
from tests.test_client_faults import BUDGET, FAULTS, Fault

#: The same rules as the client's: a GET, 2xx is success, no redirects, the
#: same budget, the same body limit, IPv4 only (the fault servers are).
MODULE = f"""\
modules:
  http_2xx:
    prober: http
    timeout: {BUDGET:g}s
    http:
      method: GET
      no_follow_redirects: true
      body_size_limit: {MAX_BODY_BYTES // 1024}KiB
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
"""

#: Faults where the two must not agree, and why: (blackbox's status code,
#: its success). None so far: the client's closed error vocabulary is finer
#: (read_timeout, body, informational...), but the verdicts are the same.
DIFFERENCES: dict[str, tuple[int, bool, str]] = {}


@pytest.fixture(scope="module")
def blackbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running blackbox_exporter; yields its /probe URL."""
    binary = tool("BLACKBOX_EXPORTER", "prometheus-blackbox-exporter")
    config = Path(tmp_path_factory.mktemp("blackbox")) / "blackbox.yml"
    config.write_text(MODULE)
    port = free_port()
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _ready(url):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "blackbox_exporter was not ready within 30 s"
            time.sleep(0.05)
        yield url + "/probe"
    finally:
        proc.terminate()
        proc.wait(10)


def _ready(url: str) -> bool:
    try:
        return requests.get(url + "/-/ready", timeout=1).ok
    except requests.ConnectionError:
        return False


def blackbox_verdict(probe_url: str, target: str) -> tuple[int, bool]:
    """(probe_http_status_code, probe_success) of one probe."""
    text = requests.get(probe_url, params={"module": "http_2xx", "target": target}, timeout=BUDGET + 10).text
    values = dict(re.findall(r"^(probe_success|probe_http_status_code) (\S+)$", text, re.M))
    assert set(values) == {"probe_success", "probe_http_status_code"}, text
    return int(float(values["probe_http_status_code"])), values["probe_success"] == "1"


@pytest.mark.parametrize("name", [name for name, fault in FAULTS.items() if "http" in fault.schemes])
def test_client_agrees_with_blackbox_exporter(blackbox: str, fault_url: Callable[[Fault], str], name: str) -> None:
    url = fault_url(FAULTS[name]) + "/status"
    with ThreadPoolExecutor(1) as pool:  # both at once: a hang costs the budget once
        theirs = pool.submit(blackbox_verdict, blackbox, url)
        ours = probe(url, BUDGET, TWO_XX)
        code, success = theirs.result()
    if name in DIFFERENCES:
        want_code, want_success, _why = DIFFERENCES[name]
        assert (code, success) == (want_code, want_success), "blackbox_exporter no longer differs: update the table"
        return
    assert (ours.status_code or 0, ours.success) == (code, success), f"blackbox_exporter: {code}, {success}; {ours}"
