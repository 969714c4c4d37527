"""Timers the user asked for, and how they ring (rule 11 in `machine.py`): a reply arms one; when it is due
it is announced at once if the machine rests, else when it next does; then it rings - its line, a gap
(`Ringing`), its line again - until the user stops it or `alarm_ring_max_samples` pass."""

from __future__ import annotations

from dataclasses import replace

from device.core import commands as cmd
from device.core import events as ev
from device.core.moves import abandon, announce, hear_from, new_turn, preceded_by, ring_line, say, stale, to_idle
from device.core.states import Alarm, Context, Idle, Ringing, Speaking, State, Thinking
from device.core.table import Outcome
from device.core.voice import suspended, voice_suspended


def on_alarm_requested(state: Thinking | Speaking, ctx: Context, event: ev.AlarmRequested, now: int) -> Outcome:
    """The reply asked for a timer: arm it."""
    if event.turn != state.turn:
        return state, ctx, (cmd.NoteIgnored(stale(state, event.turn, "timer request")),)
    alarm = Alarm(ctx.next_alarm, event.label)
    ctx = replace(ctx, next_alarm=ctx.next_alarm + 1, alarms_armed=(*ctx.alarms_armed, alarm))
    due = now + event.seconds * ctx.config.rate_hz
    return state, ctx, (cmd.StartTimer("alarm", alarm.alarm, due),)


def on_alarm_due_at_rest(state: Idle, ctx: Context, event: ev.TimerFired, now: int) -> Outcome:
    """A timer is done while nothing goes on: announce it now."""
    alarm = next((a for a in ctx.alarms_armed if a.alarm == event.ref), None)
    if alarm is None:
        return state, ctx, (cmd.NoteIgnored(f"alarm {event.ref} is not armed"),)
    return announce(_disarmed(ctx, alarm), alarm, now)


def on_alarm_due_while_busy(state: State, ctx: Context, event: ev.TimerFired, now: int) -> Outcome:
    """A timer is done while the machine is busy (or ringing, muted, without a sound card): announce it when
    it is next idle (`moves.to_idle`), rather than talk over the user or over itself."""
    alarm = next((a for a in ctx.alarms_armed if a.alarm == event.ref), None)
    if alarm is None:
        return state, ctx, (cmd.NoteIgnored(f"alarm {event.ref} is not armed"),)
    ctx = _disarmed(ctx, alarm)
    return state, replace(ctx, alarms_due=(*ctx.alarms_due, alarm)), ()


def _disarmed(ctx: Context, alarm: Alarm) -> Context:
    return replace(ctx, alarms_armed=tuple(a for a in ctx.alarms_armed if a.alarm != alarm.alarm))


def on_ring_due(state: Ringing, ctx: Context, event: ev.TimerFired, now: int) -> Outcome:
    """The gap between two sayings of a ringing timer's line is over: say it again, or stop at the bound."""
    ring = ctx.ring
    if ring is None or event.ref != ring.alarm.alarm:
        return state, ctx, (cmd.NoteIgnored(f"ring timer {event.ref} is stale: that timer no longer rings"),)
    if now - ring.started_at_sample >= ctx.config.alarm_ring_max_samples:
        return to_idle(replace(ctx, ring=None), now)
    return say(ctx, ring_line(ring.alarm), now)


def on_ring_timer_elsewhere(state: State, ctx: Context, event: ev.TimerFired, now: int) -> Outcome:
    """The gap timer of a ring outside `Ringing`: the ring was silenced, or is saying its line right now."""
    return state, ctx, (cmd.NoteIgnored(f"ring timer {event.ref} has no meaning in {type(state).__name__}"),)


def on_ring_speech(state: Ringing, ctx: Context, event: ev.SpeechStarted, now: int) -> Outcome:
    """Speech between two sayings of a ringing timer: hear it (no wake word needed to say "stop"). The ring
    waits: a request or a stop silences it, an empty transcript or the assistant's own echo does not."""
    if suspended(ctx):
        return state, ctx, (voice_suspended("a ringing timer"),)
    ctx, out = abandon(state, ctx)
    turn, ctx = new_turn(ctx)
    return preceded_by(hear_from(ctx, turn, event.onset_sample, now), *out)
