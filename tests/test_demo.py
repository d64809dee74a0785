"""make demo in a fresh clone: the monitor's records appear, Ctrl-C or SIGTERM
to make stops the monitor and then the server with nothing left running, and
what cannot start (a busy port, no Go or Python) says why in one line, exit 2."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from demo.__main__ import PORTS
from tests.conftest import LokiReceiver, free_port, wait_until
from tests.stack import ROOT

#: What make passes on to the recipe's environment is the caller's; a parent
#: make's jobserver is not ours to inherit.
ENV = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
STARTS_WITHIN = 180.0  # the first run builds the server in the clone, on a busy machine
STOPS_WITHIN = 60.0


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A clone of this checkout's HEAD, with this run's virtualenv as its
    .venv (make test's, already built), so make demo installs nothing."""
    venv = Path(sys.prefix)
    if not (venv / ".installed").is_file():
        pytest.skip(f"not run from make test's virtualenv ({venv} has no .installed)")
    repo = tmp_path_factory.mktemp("demo") / "statuswatch"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(repo)], check=True)
    (repo / ".venv").symlink_to(venv)
    # Fresh files would look newer than the virtualenv and make make rebuild it.
    for requirements in ("requirements.txt", "requirements-dev.txt"):
        os.utime(repo / requirements, (0, 0))
    yield repo
    for pid in processes_in(repo):  # a failed test's leftovers
        os.kill(pid, signal.SIGKILL)


def processes_in(repo: Path) -> list[int]:
    """Processes running a program from repo or in it (make, the script, the
    monitor, the server), found in /proc, not from what the script says."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            places = [Path(os.readlink(entry / "exe")), Path(os.readlink(entry / "cwd"))]
        except OSError:  # gone, a zombie, or not ours
            continue
        if any(place.is_relative_to(repo) for place in places):
            found.append(int(entry.name))
    return found


class Demo:
    """make demo running in repo, in a session of its own as in a terminal:
    the process group is make's."""

    def __init__(self, repo: Path, *variables: str) -> None:
        self.repo = repo
        self.proc = subprocess.Popen(
            ["make", "--no-print-directory", "demo", *variables],
            cwd=repo,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def matching(self, pattern: str) -> list[re.Match[str]]:
        return [m for line in self.lines if (m := re.search(pattern, line))]

    def pid(self, program: str) -> int:
        (match,) = self.matching(rf"^make demo: {program} \(pid (\d+)\) (on|probing)")
        return int(match[1])

    def finish(self) -> tuple[int, str]:
        """make's exit status and everything it and its recipe printed."""
        code = self.proc.wait(STOPS_WITHIN)
        self._reader.join(5)
        return code, "\n".join(self.lines)


def ports() -> tuple[int, int]:
    api, metrics = free_port(), free_port()
    while metrics == api:
        metrics = free_port()
    return api, metrics


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def run_until_records(repo: Path, *variables: str) -> tuple[Demo, int]:
    api, metrics = ports()
    demo = Demo(
        repo, f"DEMO_PORT={api}", f"DEMO_METRICS_PORT={metrics}", "PROBE_INTERVAL=1", "PROBE_TIMEOUT=0.5", *variables
    )
    probe = rf"^\S+Z INFO +probe +GET http://127\.0\.0\.1:{api}/status -> 200 in "
    wait_until(lambda: len(demo.matching(probe)) >= 2 or demo.proc.poll() is not None, STARTS_WITHIN, 0.1)
    assert len(demo.matching(probe)) >= 2, "\n".join(demo.lines)
    assert demo.matching(r" started +monitoring .* every 1 s$"), "PROBE_INTERVAL did not pass through"
    return demo, api


def assert_stopped_cleanly(repo: Path, demo: Demo, pids: list[int], code: int, output: str, sig: int) -> None:
    # GNU make dies of the signal it got once its recipe has exited; had the
    # recipe failed, make would have said "make: *** [...] Error N" first.
    assert code == -sig, output
    assert "make: ***" not in output, output
    monitor, server = pids
    stops = demo.matching(r"^make demo: (monitor|server) \(pid (\d+)\) stopped, status (-?\d+)$")
    assert [(m[1], int(m[2]), int(m[3])) for m in stops] == [("monitor", monitor, 0), ("server", server, 0)], output
    assert not [pid for pid in pids if alive(pid)], "a process outlived make demo"
    assert processes_in(repo) == [], "a process outlived make demo"
    # The server stopped last: it began shutting down after the monitor's last record.
    (stopped,) = demo.matching(r"^(\S+)Z INFO +stopped +stopped after \d+ probes")
    server_log = [json.loads(line) for line in (repo / "bin" / "server.log").read_text().splitlines()]
    (shutdown,) = [line["timestamp"] for line in server_log if line["message"] == "shutting down"]
    assert shutdown[:23] >= stopped[1], (shutdown, stopped[1])
    assert server_log[-1]["message"] == "server stopped"


def test_records_appear_and_sigterm_to_make_stops_both(clone: Path, loki: Callable[[str], LokiReceiver]) -> None:
    receiver = loki("ok")
    demo, _ = run_until_records(clone, f"LOKI_URL={receiver.url}")
    pids = [demo.pid("monitor"), demo.pid("server")]
    demo.proc.send_signal(signal.SIGTERM)  # to make alone, as kill <pid> does
    code, output = demo.finish()
    assert_stopped_cleanly(clone, demo, pids, code, output, signal.SIGTERM)
    # LOKI_URL reached the monitor: it shipped its records there too.
    shipped = [json.loads(v[1]) for p in receiver.pushes for s in p["payload"]["streams"] for v in s["values"]]
    assert "probe" in {record["event"] for record in shipped}


def test_ctrl_c_stops_both(clone: Path) -> None:
    demo, _ = run_until_records(clone)
    pids = [demo.pid("monitor"), demo.pid("server")]
    os.killpg(demo.proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    code, output = demo.finish()
    assert_stopped_cleanly(clone, demo, pids, code, output, signal.SIGINT)


class Refusal(NamedTuple):
    variables: list[str]  # beside DEMO_PORT and DEMO_METRICS_PORT
    held: list[int]  # ports something else listens on
    said: str


def busy(name: str, port: int) -> Refusal:
    return Refusal([], [port], (
        f"make demo: port {port} ({name}) on 127.0.0.1 is in use: stop what listens there "
        f"(the Docker stack? make down) or pick another, e.g. make demo {name}={port + 1}"
    ))  # fmt: skip


#: Ports the demo refuses before it starts anything, given its two free ones.
REFUSED: dict[str, Callable[[int, int], Refusal]] = {
    "busy API port": lambda api, _: busy("DEMO_PORT", api),
    "busy metrics port": lambda _, metrics: busy("DEMO_METRICS_PORT", metrics),
    "one port for both": lambda api, _: Refusal(
        [f"DEMO_METRICS_PORT={api}"], [],
        f"make demo: DEMO_PORT and DEMO_METRICS_PORT are both {api}: the server needs two ports",
    ),
    "not a number": lambda *_: Refusal(
        ["DEMO_PORT=http"], [], "make demo: DEMO_PORT='http' is not a port number from 1 to 65535"
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", REFUSED)
def test_a_port_it_cannot_use_fails_fast(clone: Path, case: str) -> None:
    api, metrics = ports()
    refusal = REFUSED[case](api, metrics)
    held = [socket.create_server(("127.0.0.1", port)) for port in refusal.held]
    try:
        demo = Demo(clone, f"DEMO_PORT={api}", f"DEMO_METRICS_PORT={metrics}", *refusal.variables)
        code, output = demo.finish()
    finally:
        for sock in held:
            sock.close()
    assert code == 2, output
    assert [line for line in demo.lines if line.startswith("make demo:")] == [refusal.said], output
    assert processes_in(clone) == []


def test_a_monitor_that_fails_stops_the_server(clone: Path) -> None:
    api, metrics = ports()
    demo = Demo(clone, f"DEMO_PORT={api}", f"DEMO_METRICS_PORT={metrics}", "PROBE_INTERVAL=soon")
    code, output = demo.finish()
    assert "python -m client: error: invalid PROBE_INTERVAL: 'soon'" in output
    assert "make demo: the monitor exited with status 2; stopping the server" in output
    assert demo.matching(r"^make demo: server \(pid \d+\) stopped, status 0$"), output
    assert "make: *** [Makefile" in output  # the status is the monitor's
    assert code == 2, output
    assert processes_in(clone) == []


@pytest.mark.parametrize(
    ("variable", "said"),
    [
        ("GO=/nonexistent/go", "make demo: /nonexistent/go not found: install Go 1.26.8 (server/go.mod asks for it)"),
        ("PYTHON=/nonexistent/python3", "make demo: /nonexistent/python3 not found: install Python 3.11 or later"),
    ],
)
def test_no_go_or_python_says_so(clone: Path, variable: str, said: str) -> None:
    demo = Demo(clone, variable)
    code, output = demo.finish()
    assert code == 2, output
    assert demo.lines[0] == said, output
    assert processes_in(clone) == []


def test_the_readme_gives_the_default_ports() -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"starts the server on 127.0.0.1:{PORTS['DEMO_PORT']}" in readme
    assert f"(`/metrics` on :{PORTS['DEMO_METRICS_PORT']}" in readme
