"""Name resolution for the transport: an IP address as it is, a name by
getaddrinfo on a few long-lived threads. getaddrinfo cannot be
interrupted: the transport waits for a lookup until its deadline and
abandons it there; the lookup finishes in its own time.
"""

from __future__ import annotations

import ipaddress
import queue
import socket
import threading
from typing import Any

#: A lookup abandoned at a deadline finishes in its own time (getaddrinfo
#: has its own retries); at most this many may be pending at once, so a
#: stalled resolver costs a few threads, not threads without end. This is
#: also the most resolver threads there ever are.
MAX_PENDING_LOOKUPS = 8

#: An address as getaddrinfo gives it: family, type, proto, canonname, sockaddr.
Address = tuple[socket.AddressFamily, socket.SocketKind, int, str, Any]

#: The resolver; tests replace it to stall resolution.
getaddrinfo = socket.getaddrinfo


def ip_address(host: str, port: int) -> Address | None:
    """The address of an IP literal, as getaddrinfo would give it; None
    for a name (or a zone that names no interface)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv4Address):
        return socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host, port)
    zone = 0
    if ip.scope_id:  # fe80::1%eth0
        try:
            zone = int(ip.scope_id) if ip.scope_id.isdigit() else socket.if_nametoindex(ip.scope_id)
        except OSError:
            return None
    return socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host.partition("%")[0], port, 0, zone)


class Lookup:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.done = threading.Event()
        self.addresses: list[Address] = []
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            self.addresses = list(getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM))
        except OSError as exc:
            self.error = exc
        except UnicodeError as exc:  # an empty label, or one IDNA cannot encode
            self.error = socket.gaierror(socket.EAI_NONAME, f"cannot encode the host name {self.host!r}: {exc}")
        except Exception as exc:  # noqa: BLE001 - a bug: the probe's outcome, and the thread lives on
            self.error = exc
        finally:
            self.done.set()


class Resolver:
    """getaddrinfo on long-lived daemon threads fed by a queue: one more is
    started only when every one is busy, and at most `limit` lookups may be
    pending (queued or running) at once."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lookups: queue.SimpleQueue[Lookup] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pending = self._idle = 0

    def submit(self, host: str, port: int) -> Lookup | None:
        """The lookup under way, or None when `limit` are pending."""
        lookup = Lookup(host, port)
        with self._lock:
            if self._pending == self._limit:
                return None
            self._pending += 1
            if self._idle:
                self._idle -= 1
            else:
                threading.Thread(target=self._work, name="resolver", daemon=True).start()
        self._lookups.put(lookup)
        return lookup

    def pending(self) -> int:
        """Lookups queued or running, abandoned ones included."""
        with self._lock:
            return self._pending

    def _work(self) -> None:
        while True:
            self._lookups.get().run()
            with self._lock:
                self._pending -= 1
                self._idle += 1


resolver = Resolver(MAX_PENDING_LOOKUPS)
