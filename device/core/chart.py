"""The machine drawn and checked from its tables: a Mermaid diagram, totality and reachability.

Edges are labelled with their triggers: an event type, or for a fired timer its kind (`TimerFired(confirm)`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from device.core.machine import IGNORED, TRANSITIONS
from device.core.states import STATE_TYPES, Idle
from device.core.table import TRIGGERS, trigger_name


def edges() -> dict[tuple[str, str], list[str]]:
    """(from, to) -> the triggers that may cause that move; self-loops are left out (they change no state)."""
    out: dict[tuple[str, str], list[str]] = defaultdict(list)
    for (state, trigger), row in TRANSITIONS.items():
        for target in row.targets:
            if target is not state:
                out[(state.__name__, target.__name__)].append(trigger_name(trigger))
    return dict(out)


def mermaid() -> str:
    lines = ["stateDiagram-v2", "    [*] --> Idle"]
    for (source, target), names in sorted(edges().items()):
        lines.append(f"    {source} --> {target}: {', '.join(sorted(set(names)))}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class CheckReport:
    unclassified: tuple[str, ...]
    classified_twice: tuple[str, ...]
    unreachable: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not (self.unclassified or self.classified_twice or self.unreachable)


def check() -> CheckReport:
    """Every (state, trigger) pair handled or ignored with a reason - exactly one; every state reachable."""
    unclassified: list[str] = []
    twice: list[str] = []
    for state in STATE_TYPES:
        for trigger in TRIGGERS:
            key = (state, trigger)
            hits = (key in TRANSITIONS) + (key in IGNORED)
            name = f"({state.__name__}, {trigger_name(trigger)})"
            if hits == 0:
                unclassified.append(name)
            elif hits > 1:
                twice.append(name)
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in edges():
        graph[source].add(target)
    seen, todo = {Idle.__name__}, [Idle.__name__]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    unreachable = tuple(s.__name__ for s in STATE_TYPES if s.__name__ not in seen)
    return CheckReport(tuple(unclassified), tuple(twice), unreachable)
