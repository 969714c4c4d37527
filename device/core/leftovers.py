"""Late arrivals: results and timers of work that is not running in the current state (an older turn's, or
one already disarmed), and acknowledgements. All are dropped as data, with a note that says why (rule 1)."""

from __future__ import annotations

from device.core import commands as cmd
from device.core import events as ev
from device.core.moves import stale
from device.core.states import Context, State, current_turn
from device.core.table import Outcome


def on_result_without_work(state: State, ctx: Context, event: ev.TurnResult, now: int) -> Outcome:
    """A turn's result reached a state that runs no such work: always a leftover of an older turn."""
    return state, ctx, (cmd.NoteIgnored(stale(state, event.turn, type(event).__name__)),)


def on_timer_not_armed_here(state: State, ctx: Context, event: ev.TimerFired, now: int) -> Outcome:
    """A turn's timer (listen, utterance, confirm, lookahead, asr) or the reopen timer fired in a state that never
    arms it: it was disarmed, or belongs to an older turn, and its fire crossed the cancel."""
    if event.ref != current_turn(state):
        return state, ctx, (cmd.NoteIgnored(stale(state, event.ref, f"{event.kind} timer")),)
    return state, ctx, (cmd.NoteIgnored(f"{event.kind} timer has no meaning in {type(state).__name__}"),)


def on_job_cancelled(state: State, ctx: Context, event: ev.JobCancelled, now: int) -> Outcome:
    return state, ctx, (cmd.NoteIgnored(f"{event.job} of turn {event.turn} acknowledged its cancel"),)
