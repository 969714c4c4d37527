"""Field metadata the TOML loader and writer read: a number's range, and the example shown for an unset field.

`within(low, high)` is enforced by the loader (device/tomlfile.py) at the key's line and written by the writer
(device/tomlfile_writer.py) as a `# Range: low..high.` comment; `example(value)` is what the writer shows,
commented out, for a field that is None by default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

RANGE = "range"
"""Field metadata key: inclusive (low, high) bounds of a number; see `within`."""
CHECK = "check"
"""Field metadata key: a function naming what is wrong with a value, or None; see `checked_by`."""
EXAMPLE = "example"
"""Field metadata key: the value shown, commented out, for a field that is None by default; see `example`."""


def within(low: float, high: float) -> dict[str, Any]:
    """Field metadata: the loader refuses a value outside low..high (inclusive; None, an unset value, passes)."""
    return {RANGE: (low, high)}


def checked_by(problem: Callable[[Any], str | None]) -> dict[str, Any]:
    """Field metadata: the loader refuses a value for which `problem(value)` returns a message (beyond its type),
    at the key's line; for what a range cannot say, such as a date's format."""
    return {CHECK: problem}


def example(value: object, **more: Any) -> dict[str, Any]:
    """Field metadata for a field that is None by default: `commented_toml` shows `# key = value`. For a nested
    dataclass field, `value` is an instance whose values stand in for the default's None fields."""
    return {EXAMPLE: value, **more}


def number_text(value: float) -> str:
    """A bound as messages and comments show it: a float in its shortest form (`:g`: 0.5, 3600), an int as is."""
    return f"{value:g}" if isinstance(value, float) else str(value)
