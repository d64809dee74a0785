"""python -m demo, as make demo runs it: start the server, wait until it
answers, start the monitor against it, and on Ctrl-C, SIGTERM or SIGHUP
stop the monitor, then the server. Exit 0 after a requested stop; 2 when the
demo cannot start (a bad or busy port, no server binary), with one line
saying why and nothing left running; when a program fails on its own, its
status, once the other is stopped."""

from __future__ import annotations

import errno
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "bin" / "server"
SERVER_LOG = ROOT / "bin" / "server.log"
HOST = "127.0.0.1"
PORTS = {"DEMO_PORT": "8080", "DEMO_METRICS_PORT": "9090"}
READY_WITHIN = 30.0  # seconds for the server to answer GET /healthz
# The monitor finishes its probe and drains its Loki queue within its own
# bounds; the server gives requests 5 s and its telemetry 3 s to finish.
STOP_WITHIN = {"monitor": 15.0, "server": 15.0}
POLL = 0.2  # seconds between looks at the two processes


class SetupError(Exception):
    """Why the demo cannot run, in one line."""


class StopRequest:
    """The first SIGINT, SIGTERM or SIGHUP, kept as a flag the loops look at.
    A SIGTERM or SIGHUP is passed on to the monitor at once, so that it
    stops first. A SIGINT is not: Ctrl-C reaches the terminal's whole
    process group, the monitor included, and a second signal could land
    while its interpreter exits without its handler, and kill it."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._monitor: subprocess.Popen[bytes] | None = None
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._catch)

    def forward_to(self, monitor: subprocess.Popen[bytes]) -> None:
        """Pass a stop on to monitor, also one that came before it started."""
        self._monitor = monitor
        if self.signal is not None:
            self._tell_monitor()

    def _catch(self, signum: int, _frame: FrameType | None) -> None:
        if self.signal is None:
            self.signal = signum
            if signum != signal.SIGINT:
                self._tell_monitor()

    def _tell_monitor(self) -> None:
        if self._monitor is not None and self._monitor.returncode is None:  # until reaped, its pid is its own
            os.kill(self._monitor.pid, signal.SIGTERM)


def say(line: str) -> None:
    sys.stderr.write(f"make demo: {line}\n")


def ports(environ: Mapping[str, str]) -> tuple[int, int]:
    """DEMO_PORT and DEMO_METRICS_PORT, each a free port on HOST."""
    numbers = {}
    for name, default in PORTS.items():
        value = environ.get(name) or default
        if not (value.isascii() and value.isdigit() and 1 <= int(value) <= 65535):
            raise SetupError(f"{name}={value!r} is not a port number from 1 to 65535")
        numbers[name] = int(value)
    api, metrics = numbers.values()
    if api == metrics:
        raise SetupError(f"DEMO_PORT and DEMO_METRICS_PORT are both {api}: the server needs two ports")
    for name, port in numbers.items():
        check_free(name, port)
    return api, metrics


def check_free(name: str, port: int) -> None:
    """Bind the port as the server's listener would, or say who cannot."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go's net.Listen
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise SetupError(
                    f"port {port} ({name}) on {HOST} is in use: stop what listens there "
                    f"(the Docker stack? make down) or pick another, e.g. make demo {name}={port + 1}"
                ) from None
            raise SetupError(f"cannot listen on {HOST}:{port} ({name}): {exc.strerror}") from None


def start_server(api: int, metrics: int) -> subprocess.Popen[bytes]:
    """The server in a process group of its own: the terminal's Ctrl-C
    reaches the monitor and this script, and the server stops last, when
    told. Its JSON log goes to SERVER_LOG, its errors to the terminal."""
    args = [str(SERVER), "-addr", f"{HOST}:{api}", "-metrics-addr", f"{HOST}:{metrics}"]
    if not SERVER.is_file():
        raise SetupError(f"no server binary at {SERVER.relative_to(ROOT)}: make demo builds it")
    try:
        with SERVER_LOG.open("wb") as log:
            return subprocess.Popen(args, stdout=log, cwd=ROOT, process_group=0)  # noqa: S603
    except OSError as exc:
        raise SetupError(f"cannot start the server: {exc}") from None


def answers(port: int) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=1)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def wait_ready(server: subprocess.Popen[bytes], port: int, stop: StopRequest) -> None:
    deadline = time.monotonic() + READY_WITHIN
    while stop.signal is None and not answers(port):
        if server.poll() is not None:
            raise SetupError(f"the server exited with status {server.returncode} before it answered (see above)")
        if time.monotonic() > deadline:
            raise SetupError(f"the server did not answer http://{HOST}:{port}/healthz within {READY_WITHIN:g} s")
        time.sleep(POLL / 2)


def start_monitor(port: int) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "client", "--target", f"http://{HOST}:{port}", "--log-format", "text"]
    return subprocess.Popen(args, cwd=ROOT)  # noqa: S603


def supervise(server: subprocess.Popen[bytes], monitor: subprocess.Popen[bytes], stop: StopRequest) -> int:
    """Wait for a stop request or for either program to exit on its own;
    the status to exit with."""
    while stop.signal is None:
        time.sleep(POLL)
        for name, other, proc in (("monitor", "server", monitor), ("server", "monitor", server)):
            if proc.poll() is not None and stop.signal is None:
                say(f"the {name} exited with status {proc.returncode}; stopping the {other}")
                return proc.returncode if proc.returncode > 0 else 1
    return 0


def exit_within(proc: subprocess.Popen[bytes], seconds: float) -> int | None:
    try:
        return proc.wait(seconds)
    except subprocess.TimeoutExpired:
        return None


def stop_process(name: str, proc: subprocess.Popen[bytes] | None, requested: bool, told: bool = False) -> int:
    """Wait for it if it was told to stop already, else (or if it does not)
    SIGTERM it; SIGKILL after STOP_WITHIN. 0 if it stopped cleanly, else 1.
    Without a stop request, one that exited on its own (that was said) is
    left alone."""
    if proc is None or (proc.returncode is not None and not requested):
        return 0
    code = exit_within(proc, STOP_WITHIN[name]) if told else None
    if code is None:
        proc.send_signal(signal.SIGTERM)  # nothing once it has been reaped
        code = exit_within(proc, STOP_WITHIN[name])
    if code is None:
        say(f"the {name} did not stop within {STOP_WITHIN[name]:g} s: killed")
        proc.kill()
        proc.wait()
        return 1
    say(f"{name} (pid {proc.pid}) stopped, status {code}")
    # Ctrl-C may reach the monitor before its handler is in, on its first second.
    return 0 if code in (0, -signal.SIGINT, -signal.SIGTERM) else 1


def main() -> int:
    stop = StopRequest()
    server = monitor = None
    status = 0
    try:
        api, metrics = ports(os.environ)
        server = start_server(api, metrics)
        wait_ready(server, api, stop)
        if stop.signal is None:
            say(
                f"server (pid {server.pid}) on http://{HOST}:{api}, metrics on http://{HOST}:{metrics}/metrics, "
                f"log in {SERVER_LOG.relative_to(ROOT)}"
            )
            monitor = start_monitor(api)
            stop.forward_to(monitor)
            say(f"monitor (pid {monitor.pid}) probing it; Ctrl-C stops both")
            status = supervise(server, monitor, stop)
    except SetupError as exc:
        say(str(exc))
        status = 2
    finally:
        requested = stop.signal is not None  # the monitor had it, from the terminal or from us
        stopped = [
            stop_process("monitor", monitor, requested, told=requested),
            stop_process("server", server, requested),
        ]
    return status or max(stopped)


if __name__ == "__main__":
    sys.exit(main())
