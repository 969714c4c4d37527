"""What a row of the transition table is, and how rows are built so that the type checker checks them.

A row says: in these states, on this trigger, this handler decides, leading to these states. A trigger is an
event type, or for `TimerFired` one timer kind (`Timer("confirm")`): each kind of timer means something
different, so each is a row of its own and the table shows which timer fires in which state.

`row()` is generic in the state type `S` and the event type `E`: mypy checks that the handler takes every
state the row lists and exactly the event the trigger delivers. Several states or events are passed as a
named group annotated with the union it holds (`States[Thinking | Speaking]`); an unannotated tuple is
refused by the checker (its element types join to `object`), so every group has a name and a type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, get_args, overload

from device.core import commands as cmd
from device.core import events as ev
from device.core.states import STATE_TYPES, Context, State

Commands = tuple[cmd.Command, ...]
Outcome = tuple[State, Context, Commands]
"""What a handler returns: the next state, the next context, the commands to carry out."""

S = TypeVar("S", bound=State)
E = TypeVar("E", bound=ev.Event)

Handler = Callable[[S, Context, E, int], Outcome]
"""`handler(state, context, event, now) -> (state, context, commands)`, for a state of type `S` and an event
of type `E`."""

States = tuple[type[S], ...]
"""A named group of state types; annotate it with the union it holds: `RESTING: States[Idle | Ringing]`."""
Events = tuple[type[E], ...]
"""A named group of event types, annotated the same way."""


@dataclass(frozen=True)
class Timer:
    """The trigger `TimerFired` of one timer kind: the table's key names the timer that fires."""

    kind: ev.TimerKind


Trigger = type[ev.Event] | Timer
Key = tuple[type[State], Trigger]

EVENT_TRIGGERS: tuple[Trigger, ...] = tuple(t for t in ev.EVENT_TYPES if t is not ev.TimerFired)
TIMER_TRIGGERS: tuple[Timer, ...] = tuple(Timer(kind) for kind in get_args(ev.TimerKind))
TRIGGERS: tuple[Trigger, ...] = (*EVENT_TRIGGERS, *TIMER_TRIGGERS)
"""Every trigger the table must classify in every state: each event type, and each timer kind on its own."""


def trigger_of(event: ev.Event) -> Trigger:
    """The table's trigger for `event`: its type, or for a fired timer its kind."""
    return Timer(event.kind) if isinstance(event, ev.TimerFired) else type(event)


def trigger_name(trigger: Trigger) -> str:
    """How the chart and the checks name a trigger: `SpeechStarted`, `TimerFired(confirm)`."""
    return f"TimerFired({trigger.kind})" if isinstance(trigger, Timer) else trigger.__name__


@dataclass(frozen=True)
class Row:
    handler: Handler[State, ev.Event]
    """Called only with the state and event types its key names (the builder checked it for those)."""
    targets: tuple[type[State], ...]


Rows = dict[Key, Row]

# The implementation of `row()` takes its arguments as the overloads checked them; these give them their types
# back (and refuse anything that is no state or trigger).
_STATES: dict[object, type[State]] = {s: s for s in STATE_TYPES}
_TRIGGERS: dict[object, Trigger] = {t: t for t in TRIGGERS}


@overload
def row(
    states: type[S] | States[S],
    trigger: Timer,
    handler: Handler[S, ev.TimerFired],
    *targets: type[State],
    may_stay: bool = False,
) -> Rows: ...


@overload
def row(
    states: type[S] | States[S],
    trigger: type[E] | Events[E],
    handler: Handler[S, E],
    *targets: type[State],
    may_stay: bool = False,
) -> Rows: ...


def row(
    states: object,
    trigger: object,
    handler: Callable[..., Outcome],
    *targets: type[State],
    may_stay: bool = False,
) -> Rows:
    """Table rows for every (state, trigger) pair of the product.

    `targets` are the states the handler may lead to; a row without targets keeps its state (stale data,
    acknowledgements), and `may_stay` adds the source state to the targets of a row that sometimes moves.
    """
    if trigger is ev.TimerFired or (isinstance(trigger, tuple) and ev.TimerFired in trigger):
        raise TypeError("a timer's row names its kind: Timer(kind), not TimerFired")
    state_list = tuple(_STATES[s] for s in (states if isinstance(states, tuple) else (states,)))
    triggers = tuple(_TRIGGERS[t] for t in (trigger if isinstance(trigger, tuple) else (trigger,)))
    # The overloads above checked the handler against these states and this trigger; `step()` calls it only
    # with a key's own state and event types, so the row may store it as taking any state and event.
    return {
        (s, t): Row(handler, (*targets, s) if may_stay or not targets else targets)
        for s in state_list
        for t in triggers
    }


def table(*parts: Rows) -> Rows:
    """The rows of all parts; a pair that two parts both claim is a mistake in the table, refused here."""
    out: Rows = {}
    for part in parts:
        for key, value in part.items():
            if key in out:
                raise ValueError(f"({key[0].__name__}, {trigger_name(key[1])}) has two rows")
            out[key] = value
    return out


def every_state_but(*excluded: type[State]) -> States[State]:
    """Every state except these (for a timer that means something only in the states left out)."""
    return tuple(s for s in STATE_TYPES if s not in excluded)
