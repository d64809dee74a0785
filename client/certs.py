"""When a TLS peer's certificates expire.

blackbox_exporter's probe_ssl_earliest_cert_expiry is the earliest notAfter
of the certificates the server sent (the leaf and any intermediates it
chained). Python 3.11's public ssl API gives only the leaf
(getpeercert()); the chain the server sent is available from CPython's
_ssl object as get_unverified_chain() (public from Python 3.13 on
SSLSocket). The client uses it when it is there and falls back to the leaf
otherwise: then an intermediate expiring before the leaf goes unseen.
"""

from __future__ import annotations

import contextlib
import ssl
from typing import Any


def earliest_expiry(sock: Any) -> float | None:
    """The earliest notAfter (Unix seconds) among the certificates the peer
    sent on sock; None when it is not a TLS socket or says nothing."""
    expiries = [_not_after(info) for info in _chain(sock)]
    known = [e for e in expiries if e is not None]
    return min(known) if known else None


def _chain(sock: Any) -> list[dict[str, Any]]:
    """The decoded certificates the peer sent, else the verified leaf alone."""
    get_chain = getattr(getattr(sock, "_sslobj", None), "get_unverified_chain", None)
    if get_chain is not None:
        with contextlib.suppress(ssl.SSLError, ValueError, AttributeError):
            infos = [cert.get_info() for cert in get_chain() or []]
            if infos:
                return infos
    try:
        leaf = sock.getpeercert()  # empty without verification
    except (ssl.SSLError, ValueError, AttributeError):
        return []
    return [leaf] if leaf else []


def _not_after(info: dict[str, Any]) -> float | None:
    value = info.get("notAfter")
    if not value:
        return None
    try:
        return float(ssl.cert_time_to_seconds(value))
    except ValueError:
        return None
