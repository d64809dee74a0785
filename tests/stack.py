"""Helpers for the stack's tests: the repository's configuration files."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def load_yaml(path: str) -> Any:
    return yaml.safe_load((ROOT / path).read_text())


@cache
def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml("docker-compose.yml")
    return data
