"""When something fails: a job of the turn (say sorry, briefly, and rest), or the sound card (end the turn,
reopen it with a growing back-off, and go back to where it was: resting, or muted)."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from device.core import commands as cmd
from device.core import events as ev
from device.core.moves import APOLOGIES, abandon, preceded_by, say, stale, to_idle
from device.core.states import Announcing, Context, Degraded, Muted, Paused, State, Transcribing, current_turn
from device.core.table import Outcome


def on_failed(state: State, ctx: Context, event: ev.EngineFailed, now: int) -> Outcome:
    """A job of the current turn failed: cancel the turn and apologise (an announcement just stops)."""
    if event.turn != current_turn(state):
        return state, ctx, (cmd.NoteIgnored(stale(state, event.turn, f"{event.job} failure")),)
    ctx, out = abandon(state, ctx)
    if isinstance(state, Announcing) or (isinstance(state, Paused) and isinstance(state.inner, Announcing)):
        # The announcement itself failed (most likely its voice): an apology would fail the same way, and so
        # would a ring's next saying.
        ctx = replace(ctx, ring=None)
        return preceded_by(to_idle(ctx, now), *out, cmd.NoteIgnored(f"announcement failed: {event.reason}"))
    said, ctx, spoken = say(ctx, APOLOGIES[event.job], now)
    return said, ctx, (*out, *spoken)


def on_asr_overdue(state: Transcribing, ctx: Context, event: ev.TimerFired, now: int) -> Outcome:
    """No transcript by the deadline: speech to text hung. The turn ends as if it had failed (its job is
    cancelled, and reported leaked if it does not stop); the user hears the short apology, not silence forever."""
    if event.ref != state.turn:
        return state, ctx, (cmd.NoteIgnored(stale(state, event.ref, "asr timer")),)
    seconds = ctx.config.asr_timeout_samples / ctx.config.rate_hz
    failed = ev.EngineFailed(state.turn, "asr", f"no transcript within {seconds:g} s (speech to text hung)")
    return on_failed(state, ctx, failed, now)


def on_tts_overdue(state: State, ctx: Context, event: ev.TimerFired, now: int) -> Outcome:
    """A sentence asked of synthesis did not come back by the deadline: speech synthesis hung. The answer ends as
    if it had failed (`on_failed`: the apology, whose own synthesis, if it hangs too, just ends it)."""
    if event.ref != current_turn(state):
        return state, ctx, (cmd.NoteIgnored(stale(state, event.ref, "tts timer")),)
    seconds = ctx.config.tts_timeout_samples / ctx.config.rate_hz
    failed = ev.EngineFailed(event.ref, "tts", f"no speech audio within {seconds:g} s (speech synthesis hung)")
    return on_failed(state, ctx, failed, now)


def on_device_lost(state: State, ctx: Context, event: ev.AudioDeviceLost, now: int) -> Outcome:
    """The sound card is gone: end the turn (nobody can hear it) and try to reopen with a growing back-off."""
    ctx, out = abandon(state, ctx)
    attempt = state.attempt + 1 if isinstance(state, Degraded) else 1
    then: Literal["idle", "muted"] = (
        state.then if isinstance(state, Degraded) else "muted" if isinstance(state, Muted) else "idle"
    )
    backoff = min(ctx.config.reopen_first_samples << (attempt - 1), ctx.config.reopen_max_samples)
    degraded = Degraded(event.reason, attempt, then)
    return degraded, ctx, (*out, cmd.StartTimer("reopen", attempt, now + backoff))


def on_reopen_due(state: Degraded, ctx: Context, event: ev.TimerFired, now: int) -> Outcome:
    """The back-off is over: try to open the sound card again."""
    if event.ref == state.attempt:
        return state, ctx, (cmd.ReopenAudio(state.attempt),)
    # The note calls the attempt a turn: it is the text the logs have always had, and they are compared.
    return state, ctx, (cmd.NoteIgnored(stale(state, event.ref, "reopen timer")),)


def on_device_restored(state: Degraded, ctx: Context, event: ev.AudioDeviceRestored, now: int) -> Outcome:
    if state.then == "muted":
        return Muted(), ctx, ()
    return to_idle(ctx, now)
