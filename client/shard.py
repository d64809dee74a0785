"""Which targets one monitor of several probes: its shard of the fleet.

A target belongs to shard INDEX of COUNT when Prometheus' `hashmod` relabel
action, given the target's name and COUNT as the modulus, answers INDEX: the
MD5 digest of the name, its last 8 bytes read as a big-endian unsigned
integer, modulo COUNT (prometheus/model/relabel). Every target lands in
exactly one shard, the same one in every process and on every machine (the
digest, unlike Python's hash(), is not salted per process), and a Prometheus
that shards its scrapes by target name splits them alike.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Protocol, TypeVar

#: Digits without a sign or a leading zero (01/3 is refused, as --interval's
#: values are: a value means one thing).
_SHARD = re.compile(r"(0|[1-9][0-9]*)/(0|[1-9][0-9]*)")


class Named(Protocol):
    @property
    def name(self) -> str: ...


NamedT = TypeVar("NamedT", bound=Named)


def hashmod(value: str, modulus: int) -> int:
    """Prometheus' hashmod of value (UTF-8) for a modulus of at least 1."""
    digest = hashlib.md5(value.encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[8:], "big") % modulus


def belongs(name: str, index: int, count: int) -> bool:
    """Whether the target of this name is shard index's (of count)."""
    return hashmod(name, count) == index


def select(targets: Iterable[NamedT], index: int, count: int) -> list[NamedT]:
    """The targets of shard index of count, in their order."""
    return [target for target in targets if belongs(target.name, index, count)]


def parse_shard(value: str) -> tuple[int, int]:
    """INDEX/COUNT, e.g. 2/5 (shards are numbered from 0): (index, count)."""
    match = _SHARD.fullmatch(value)
    if not match:
        raise ValueError(f"{value!r} is not INDEX/COUNT such as 0/3")
    index, count = int(match[1]), int(match[2])
    if count < 1:
        raise ValueError(f"{value!r}: COUNT must be at least 1")
    if index >= count:
        raise ValueError(f"{value!r}: INDEX must be below COUNT (shards are numbered from 0)")
    return index, count
