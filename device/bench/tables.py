"""What the bench reports share: percentiles, table cells and writing a report (one home, so every report rounds
and is written alike)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) by linear interpolation between closest ranks, to 0.1; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (rank - low), 1)


def table_cell(value: Any) -> str:
    """A Markdown table cell: "-" for nothing, yes/no for a flag, the value as written otherwise."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def write_report(markdown: Path, text: str, document: Any) -> None:
    """Write a bench's Markdown report, and its numbers as JSON beside it (same name, .json)."""
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(text, encoding="utf-8")
    markdown.with_suffix(".json").write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
