"""What the bench reports share: percentiles and table cells (one home, so every report rounds alike)."""

from __future__ import annotations

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
