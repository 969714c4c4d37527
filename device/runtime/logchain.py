"""The event log's running checksum (a hash chain): what lets `spine replay` find an edited event.

Replay recomputes every decision from the recorded events, so an event edited into another that leads to
the same decisions (a wake score of 0.93 made 0.95) cannot be found by recomputation alone. So each outcome
record ends with `"chain":"<16 hex digits>"`: the first 64 bits of SHA-256 over the previous link, the event
line(s) since the previous outcome and the outcome line itself without its chain field (the chain starts
from the header line). The reader checks each link against the recorded previous one, so an edit breaks
exactly one link and is named at its line: an event or outcome changed, a step removed, duplicated or moved.

It finds accidents and careless edits, not forgery: anyone can recompute the chain (there is no key). Not
covered: steps cut off the end of the log (a log that stops mid-run is normal), and an event a crash left
without its outcome after the last link.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

CHAIN_HEX_DIGITS = 16
# The chain field is the outcome record's last key, exactly as the writer spells it.
_CHAIN_SUFFIX = re.compile(r',"chain":"([0-9a-f]{16})"\}$')


def chain_start(header_line: str) -> str:
    return _digest([header_line])


def link(previous: str, event_lines: Iterable[str], outcome_body: str) -> str:
    """The chain value of one outcome: over the previous link, the event lines, and the outcome's text without
    its chain field."""
    return _digest([previous, *event_lines, outcome_body])


def with_chain(outcome_body: str, chain: str) -> str:
    """The outcome line as written: the body (a JSON object's text) with the chain as its last key."""
    assert outcome_body.endswith("}")
    return f'{outcome_body[:-1]},"chain":"{chain}"}}'


def split_chain(outcome_line: str) -> tuple[str, str] | None:
    """(body without the chain field, recorded chain), or None when the line does not end in a chain field."""
    match = _CHAIN_SUFFIX.search(outcome_line)
    if match is None:
        return None
    return outcome_line[: match.start()] + "}", match.group(1)


def _digest(parts: list[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:CHAIN_HEX_DIGITS]
