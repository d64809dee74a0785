"""requests' transport for one probe: one deadline over every phase, the
phases timed, and the final answer read past any interim 1xx.

An exchange runs inside an Attempt. The connection classes below find the
attempt of their thread and report to it: when resolving ends, when the
connection is up, when the TLS handshake is done, when the final headers
are in. At the deadline the socket is shut down, which wakes any blocked
read, whatever phase it is in; name resolution, which cannot be
interrupted, runs on a resolver thread (client/resolve.py) and is
abandoned at the deadline; an IP address needs none. No thread is started per exchange: one
long-lived thread keeps every attempt's deadline, and a few resolve names.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import http.client
import itertools
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from client.certs import earliest_expiry
from client.resolve import MAX_PENDING_LOOKUPS, Address, ip_address, resolver

Clock = Callable[[], float]

#: The phases of an exchange, in order, as blackbox_exporter names them
#: resolve, connect, tls, processing and transfer. "wait" runs from the
#: connection being ready to the final answer's headers (sending included),
#: "transfer" from there to the end of the body.
PHASES = ("dns", "connect", "tls", "wait", "transfer")

#: The timeout each phase's interruption is reported as.
TIMEOUT_OF_PHASE = {
    "dns": "dns_timeout",
    "connect": "connect_timeout",
    "tls": "connect_timeout",
    "wait": "read_timeout",
    "transfer": "read_timeout",
}

#: Interim 1xx answers read before giving up, as Go's net/http does.
MAX_INTERIM = 5


@dataclass(frozen=True)
class Phase:
    """A phase reached: its start and end in seconds since the exchange began."""

    name: str
    start: float
    end: float

    @property
    def ms(self) -> float:
        return round((self.end - self.start) * 1000, 3)


class DNSTimeoutError(Exception):
    """Resolving the host took the whole budget."""


class Attempt:
    """One exchange in progress: its deadline, its phases, its interim
    answers. finish() and the deadline decide under one lock which came first,
    so an answer that completed in time is never relabelled a timeout."""

    def __init__(self, budget: float, clock: Clock) -> None:
        self.budget = budget
        self.clock = clock
        self.interim_codes: list[int] = []
        self.tls_not_after: float | None = None  # set by an https connection
        self.expired = False
        self.start = self.end = 0.0
        self.started_at = 0.0  # the wall-clock time at start, for spans
        self._marks: list[tuple[str, float]] = []
        self._done = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []

    def __enter__(self) -> Attempt:
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()
        _current.reset(self._token)

    def begin(self) -> None:
        """The exchange reaches for the network: the clock and the deadline
        start. What requests and urllib3 do before (choosing a connection
        pool) is the client's own set-up, like building the request."""
        if self._marks:
            return
        self.started_at, self.start = time.time(), self.clock()
        self._marks.append(("dns", self.start))
        _deadlines.keep(self)

    @property
    def phase(self) -> str:
        """The phase in progress (or the last one reached)."""
        return self._marks[-1][0] if self._marks else PHASES[0]

    def enter(self, phase: str) -> None:
        self.begin()
        with self._lock:
            if not self._done and phase != self.phase:
                self._marks.append((phase, self.clock()))

    def remaining(self) -> float:
        return self.start + self.budget - self.clock()

    def finish(self) -> None:
        """The exchange is over: take the end time, unless the deadline came first."""
        with self._lock:
            if self._done:
                return
            self._done = True
            self.end = self.clock()
            if not self._marks:  # over before it began: nothing was sent
                self.started_at, self.start = time.time(), self.end
            self._sockets.clear()  # the deadline keeps the attempt until then, not its sockets

    def phases(self) -> tuple[Phase, ...]:
        ends = [t for _, t in self._marks[1:]] + [self.end]
        marks = zip(self._marks, ends[: len(self._marks)], strict=True)
        return tuple(Phase(name, t - self.start, end - self.start) for (name, t), end in marks)

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = self.expired = True
            self.end = self.clock()  # on a busy machine, a deadline is kept late
            socks = list(self._sockets)
        for sock in socks:
            _shutdown(sock)

    def resolve(self, host: str, port: int) -> list[Address]:
        """An IP address as it is; a name by getaddrinfo on a resolver
        thread, waited for until the deadline."""
        address = ip_address(host, port)
        if address is not None:
            return [address]
        lookup = resolver.submit(host, port)
        if lookup is None:  # not a timeout: this lookup was never tried
            raise socket.gaierror(
                socket.EAI_AGAIN, f"{MAX_PENDING_LOOKUPS} lookups still pending: the resolver is stalled"
            )
        if not lookup.done.wait(max(self.remaining(), 0)):
            raise DNSTimeoutError(f"{host} did not resolve within {self.budget:g} s")
        if lookup.error is not None:
            raise lookup.error
        return lookup.addresses

    def connect(self, host: str, port: int, options: Any) -> socket.socket:
        """Resolve, then try each address with what is left of the budget."""
        self.begin()
        addresses = self.resolve(host, port)
        self.enter("connect")
        error: OSError = OSError(f"{host} resolved to no address")
        for family, kind, proto, _, address in addresses:
            sock = socket.socket(family, kind, proto)
            try:
                for level, name, value in options or ():
                    sock.setsockopt(level, name, value)
                sock.settimeout(max(self.remaining(), 0.001))
                sock.connect(address)
                self.watch(sock)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
                if self.remaining() <= 0:
                    break
        raise error


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed, or detached by TLS
        # socket's own shutdown, on a TLS socket too: SSLSocket.shutdown
        # would drop its TLS state under the thread reading from it.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_current: contextvars.ContextVar[Attempt] = contextvars.ContextVar("attempt")


class _Deadlines:
    """One daemon thread, started with the first attempt, that expires
    each attempt at its deadline (a timer thread per exchange cost more
    than the exchange). A finished attempt stays until its deadline, when
    expiring it does nothing."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Attempt]] = []
        self._order = itertools.count()
        self._changed = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None

    def keep(self, attempt: Attempt) -> None:
        with self._changed:
            heapq.heappush(self._due, (time.monotonic() + attempt.budget, next(self._order), attempt))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="probe deadlines", daemon=True)
                self._thread.start()
            elif self._due[0][2] is attempt:  # due before any other: wake up earlier
                self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._changed.wait(self._due[0][0] - time.monotonic() if self._due else None)
                attempt = heapq.heappop(self._due)[2]
            attempt._expire()


_deadlines = _Deadlines()


class _FinalResponse(http.client.HTTPResponse):
    """http.client's response, reading past every interim 1xx (but 101, which
    is final) as Go's net/http and curl do; http.client skips only 100. Like
    Go, it gives up after MAX_INTERIM of them."""

    def _read_status(self) -> tuple[str, int, str]:
        interim = _current.get().interim_codes
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not 100 <= status < 200 or status == 101:
                return version, status, reason
            http.client.parse_headers(self.fp)  # the interim answer's headers
            if len(interim) == MAX_INTERIM:
                raise http.client.HTTPException(f"more than {MAX_INTERIM} interim 1xx answers")
            interim.append(status)

    def begin(self) -> None:
        super().begin()
        _current.get().enter("transfer")


class _ProbeConnection(HTTPConnection):
    response_class = _FinalResponse

    def _new_conn(self) -> socket.socket:
        attempt = _current.get()
        try:
            sock = attempt.connect(self._dns_host, self.port, self.socket_options)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, f"connection to {self.host} timed out") from exc
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc
        if isinstance(self, HTTPSConnection):
            attempt.enter("tls")
            # The handshake runs on a socket the deadline no longer reaches
            # (TLS detaches it): the socket's timeout bounds the whole
            # handshake call, so it ends at the deadline.
            sock.settimeout(max(attempt.remaining(), 0.001))
        return sock

    def connect(self) -> None:
        attempt = _current.get()
        try:
            super().connect()
        except TimeoutError as exc:  # in the TLS handshake: urllib3 would call it a read timeout
            raise ConnectTimeoutError(self, f"TLS handshake with {self.host} timed out") from exc
        if isinstance(self, HTTPSConnection) and self.sock is not None:
            # Wrapping in TLS detached the socket watched so far: from now
            # on the exchange reads from the TLS one.
            attempt.watch(self.sock)
            attempt.tls_not_after = earliest_expiry(self.sock)
        attempt.enter("wait")


class _ProbeHTTPSConnection(_ProbeConnection, HTTPSConnection):
    pass


class _ProbePool(HTTPConnectionPool):
    ConnectionCls = _ProbeConnection


class _ProbeHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _ProbeHTTPSConnection


class _ProbeAdapter(HTTPAdapter):
    """requests' adapter with the probe's connections; max_retries stays 0,
    so nothing, the POST least of all, is ever retried."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _ProbePool, "https": _ProbeHTTPSPool}


def session(ca_bundle: str = "") -> requests.Session:
    """A session for one exchange, to be run inside an Attempt. An https
    server's certificate is verified against certifi's bundle, or against
    the CA certificates in the file ca_bundle names."""
    s = requests.Session()
    if ca_bundle:
        s.verify = ca_bundle
    # No proxies or .netrc from the environment: the monitor measures the
    # server, not a proxy in front of it (and skips scanning both per request).
    s.trust_env = False
    adapter = _ProbeAdapter()
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s
