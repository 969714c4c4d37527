"""The two ways the user or the system ends everything from outside the conversation: muting the microphone
(privacy first: at once, whatever was going on) and stopping the daemon."""

from __future__ import annotations

from dataclasses import replace

from device.core import commands as cmd
from device.core import events as ev
from device.core.moves import abandon, chime, preceded_by, to_idle
from device.core.states import Context, Degraded, Muted, State, Stopping
from device.core.table import Outcome


def on_mute(state: State, ctx: Context, event: ev.MuteChanged, now: int) -> Outcome:
    """Privacy first: muting ends whatever was going on and turns the microphone off at once."""
    if not event.muted:
        return state, ctx, (cmd.NoteIgnored("unmute while not muted: nothing to do"),)
    if isinstance(state, Degraded):
        listening = not event.muted
        return replace(state, then="muted" if event.muted else "idle"), ctx, (cmd.SetMicrophone(listening),)
    ctx, out = abandon(state, ctx)
    ctx, sound = chime(replace(ctx, ring=None), "mute")  # the user acted: a ringing timer is silenced too
    return Muted(), ctx, (*out, cmd.SetMicrophone(False), *sound)


def on_unmute(state: Muted, ctx: Context, event: ev.MuteChanged, now: int) -> Outcome:
    if event.muted:
        return state, ctx, (cmd.NoteIgnored("already muted"),)
    ctx, sound = chime(ctx, "unmute") if not ctx.alarms_due else (ctx, ())  # an alarm announces itself
    return preceded_by(to_idle(ctx, now), cmd.SetMicrophone(True), *sound)


def on_stop(state: State, ctx: Context, event: ev.StopRequested, now: int) -> Outcome:
    ctx, out = abandon(state, ctx)
    disarm = tuple(cmd.CancelTimer("alarm", a.alarm) for a in ctx.alarms_armed)
    # The start-up sound is the one earcon long enough to still play: a stop is the one thing that cuts it.
    startup = (cmd.CutPlayback(ctx.startup_epoch),) if ctx.startup_epoch else ()
    ctx = replace(ctx, alarms_armed=(), ring=None, startup_epoch=0)
    return Stopping(), ctx, (*startup, *out, *disarm)
