"""Fixtures shared by the suites: the real Go server binary, and raw
loopback servers that misbehave on purpose."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trustme
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parents[1]

#: The record contract: every record the client emits must validate.
RECORDS = Draft202012Validator(json.loads((ROOT / "client" / "records.schema.json").read_text()))


def schema_errors(record: dict[str, Any]) -> list[str]:
    """Why record breaks the contract; empty when it keeps it."""
    return [f"{e.json_path}: {e.message}" for e in RECORDS.iter_errors(record)]


@pytest.fixture(scope="session")
def server_binary() -> Path:
    """The Go server, built from server/ (a no-op when the build cache is
    warm, as after make test's own build)."""
    out = ROOT / "bin" / "server"
    subprocess.run(["go", "build", "-o", str(out), "."], cwd=ROOT / "server", check=True)
    return out


class GoServer:
    """A running server binary on free loopback ports."""

    def __init__(self, binary: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [str(binary), "-addr", "127.0.0.1:0", "-metrics-addr", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[dict[str, Any]] = []
        self._started = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._started.wait(10):
            self.stop()
            raise RuntimeError("the server wrote no start-up line within 10 s")
        start = next(line for line in self.lines if line.get("message") == "server started")
        self.url = "http://" + start["addr"]
        self.metrics_url = "http://" + start["metrics_addr"]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = json.loads(raw)
            self.lines.append(line)
            if line.get("message") == "server started":
                self._started.set()

    def requests(self) -> list[dict[str, Any]]:
        """The server's per-request log lines so far."""
        return [line for line in self.lines if "route" in line]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self._reader.join(5)


@pytest.fixture
def go_server(server_binary: Path) -> Iterator[Callable[..., GoServer]]:
    """Start servers with the given flags; all are stopped at the end."""
    started: list[GoServer] = []

    def start(*args: str, env: dict[str, str] | None = None) -> GoServer:
        server = GoServer(server_binary, *args, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


ClientProcess = Callable[..., tuple["subprocess.Popen[str]", list[dict[str, Any]], threading.Thread]]


@pytest.fixture
def client() -> Iterator[ClientProcess]:
    """Start python -m client with the given options; returns the process,
    its JSON records (filled as they come) and the thread reading them.
    Every record is held to records.schema.json."""
    procs: list[subprocess.Popen[str]] = []
    broken: list[tuple[dict[str, Any], list[str]]] = []

    def start(*args: str) -> tuple[subprocess.Popen[str], list[dict[str, Any]], threading.Thread]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "client", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        lines: list[dict[str, Any]] = []

        def read() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                lines.append(json.loads(raw))
                if errors := schema_errors(lines[-1]):
                    broken.append((lines[-1], errors))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        return proc, lines, reader

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
    assert not broken, f"records that break records.schema.json: {broken}"


class PushStandIn:
    """A loopback stand-in for a push API (Loki's, an OTLP collector's): each
    POST is answered by answer() or, by mode, after 2 s ("slow"), with 500
    and nothing kept ("fail"), or never ("blackhole")."""

    path = ""  # what the client is given is the base URL plus this

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.release = threading.Event()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if stand_in.mode == "blackhole":
                    stand_in.release.wait(30)
                    return
                if stand_in.mode == "slow":
                    time.sleep(2)
                status, content_type, reply = (
                    (500, "text/plain", b"") if stand_in.mode == "fail" else stand_in.answer(self, body)
                )
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                if reply:  # a second write to a client that gave up would raise
                    self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}{self.path}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(self, request: BaseHTTPRequestHandler, body: bytes) -> tuple[int, str, bytes]:
        """Keeps what was pushed; returns the status, content type and body."""
        raise NotImplementedError

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


StandInT = TypeVar("StandInT", bound=PushStandIn)


def stand_ins(kind: type[StandInT]) -> Iterator[Callable[[str], StandInT]]:
    """A fixture's body: start stand-ins of one kind by mode, close them after."""
    started: list[StandInT] = []

    def start(mode: str = "ok") -> StandInT:
        started.append(kind(mode))
        return started[-1]

    yield start
    for s in started:
        s.close()


class LokiReceiver(PushStandIn):
    """Loki's push API: keeps each push, answers 204."""

    path = "/loki/api/v1/push"

    def __init__(self, mode: str = "ok") -> None:
        self.pushes: list[dict[str, Any]] = []
        super().__init__(mode)

    def answer(self, request: BaseHTTPRequestHandler, body: bytes) -> tuple[int, str, bytes]:
        tenant = request.headers.get("X-Scope-OrgID")
        self.pushes.append({"path": request.path, "tenant": tenant, "payload": json.loads(body)})
        return 204, "text/plain", b""


@pytest.fixture
def loki() -> Iterator[Callable[[str], LokiReceiver]]:
    """Start stand-ins for Loki's push API in the given mode."""
    yield from stand_ins(LokiReceiver)


Handler = Callable[[socket.socket], None]


@dataclass(frozen=True)
class BeforeTLS:
    """A handler that gets the connection before any TLS handshake, over
    https too (to misbehave in the handshake itself)."""

    handler: Handler


class LoopbackCA:
    """A certificate authority made for the test run: server certificates
    for 127.0.0.1 and localhost, and the CA bundle a client must trust."""

    def __init__(self, tmp: Path) -> None:
        self._ca = trustme.CA()
        self._servers: dict[int, ssl.SSLContext] = {}
        self.server = self._context(self._ca.issue_cert("127.0.0.1", "localhost"))
        self.bundle = str(tmp / "ca.pem")
        self._ca.cert_pem.write_to_path(self.bundle)

    def expiring(self, days: int) -> ssl.SSLContext:
        """A server context whose certificate expires in days."""
        if days not in self._servers:
            not_after = datetime.now(UTC) + timedelta(days=days)
            self._servers[days] = self._context(self._ca.issue_cert("127.0.0.1", "localhost", not_after=not_after))
        return self._servers[days]

    @staticmethod
    def _context(cert: trustme.LeafCert) -> ssl.SSLContext:
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(server)
        return server


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> LoopbackCA:
    return LoopbackCA(tmp_path_factory.mktemp("ca"))


class FaultServer:
    """A raw TCP server on loopback. Connection n is handled by handlers[n]
    (the last one repeats), each in its own thread. With tls, each
    connection is wrapped in it first (but for a BeforeTLS handler) and the
    URL is https."""

    def __init__(self, *handlers: Handler | BeforeTLS, tls: ssl.SSLContext | None = None) -> None:
        self.handlers = handlers
        self.tls = tls
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            handler = self.handlers[min(self.connections, len(self.handlers) - 1)]
            self.connections += 1
            threading.Thread(target=self._serve, args=(handler, conn), daemon=True).start()

    def _serve(self, handler: Handler | BeforeTLS, conn: socket.socket) -> None:
        with contextlib.ExitStack() as stack, contextlib.suppress(OSError):  # the client went away: its business
            stack.enter_context(conn)
            if isinstance(handler, BeforeTLS):
                handler.handler(conn)
                return
            if self.tls is not None:
                conn = stack.enter_context(self.tls.wrap_socket(conn, server_side=True))
            handler(conn)

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


@pytest.fixture
def fault_server() -> Iterator[Callable[..., FaultServer]]:
    servers: list[FaultServer] = []

    def start(*handlers: Handler | BeforeTLS, tls: ssl.SSLContext | None = None) -> FaultServer:
        server = FaultServer(*handlers, tls=tls)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


#: Targets that are not handlers: nothing listens, or the listener's accept
#: queue is full.
REFUSED = "refused"
FULL_QUEUE = "full accept queue"


@pytest.fixture
def fault_url(fault_server: Callable[..., FaultServer], test_ca: LoopbackCA) -> Iterator[Callable[..., str]]:
    """The base URL of a server that behaves as fault.server says: a
    handler for FaultServer, REFUSED or FULL_QUEUE; over https, its
    certificate signed by test_ca."""
    queues: list[socket.socket] = []

    def start(fault: Any, scheme: str = "http") -> str:
        if fault.server == REFUSED:
            return f"{scheme}://127.0.0.1:{free_port()}"
        if fault.server == FULL_QUEUE:
            queues.extend(full_accept_queue())
            return f"{scheme}://127.0.0.1:{queues[-4].getsockname()[1]}"
        return fault_server(fault.server, tls=test_ca.server if scheme == "https" else None).url

    yield start
    for sock in queues:
        sock.close()


def full_accept_queue() -> list[socket.socket]:
    """A listener that never accepts, its queue filled: Linux drops further
    SYNs, so a client sees a real connect timeout. Returns the listener and
    its three fillers."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        fillers.append(filler)
    return [listener, *fillers]


def read_request(conn: socket.socket) -> bytes:
    """Read one request's head (the client sends no body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def answer(status: str, body: bytes = b"", headers: str = "") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{headers}\r\n".encode() + body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01) -> None:
    """Poll condition until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
