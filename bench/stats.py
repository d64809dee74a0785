"""The statistics every table uses, computed as the client computes them."""

from __future__ import annotations

import statistics

from client.summary import percentile


def nearest_rank(values: list[float], p: float) -> float:
    """The percentile as the client's summaries compute it."""
    value = percentile(sorted(values), p)
    assert value is not None
    return value


def median(values: list[float]) -> float:
    return statistics.median(values)


def ms(value: float) -> str:
    return f"{value:.2f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def met(goal: bool) -> str:
    return "met" if goal else "not met"
