"""Interruption, as the barge-in matrix allows (rule 5 in `machine.py`): the wake word cancels the turn; over
playback a hint of voice pauses it and confirmed speech cancels it, or the pause lapses and playback resumes
where it stopped. While paused, the reply's work goes on. The breaker's end (rule 9) is here too: the echo
canceller converged, or the hold time is over, and voice may interrupt again."""

from __future__ import annotations

from dataclasses import replace
from typing import assert_never

from device.core import commands as cmd
from device.core import events as ev
from device.core.moves import abandon, hear_from, listen_after_wake, new_turn, preceded_by, stale
from device.core.reply import synthesise_ahead
from device.core.states import (
    Announcing,
    BargeInRule,
    Context,
    Paused,
    Speaking,
    State,
    Thinking,
    Transcribing,
)
from device.core.table import E, Handler, Outcome
from device.core.turn import OWN_SPEECH, answer_typed
from device.core.voice import restore, suspended, voice_suspended

Interruptible = Transcribing | Thinking | Speaking | Paused | Announcing


def rule_of(state: Interruptible, ctx: Context) -> tuple[str, BargeInRule]:
    """The state's row of the barge-in matrix (a paused reply is still speaking)."""
    matrix = ctx.config.barge_in
    match state:
        case Transcribing():
            return "transcribing", matrix.transcribing
        case Thinking():
            return "thinking", matrix.thinking
        case Speaking():
            return "speaking", matrix.speaking
        case Announcing():
            return "announcing", matrix.announcing
        case Paused():
            return rule_of(state.inner, ctx)
        case _:
            assert_never(state)


def on_barge_in_wake(state: Interruptible, ctx: Context, event: ev.WakeDetected, now: int) -> Outcome:
    name, rule = rule_of(state, ctx)
    if event.in_own_speech:
        return state, ctx, (cmd.NoteIgnored(OWN_SPEECH),)
    if not rule.wake:
        return state, ctx, (cmd.NoteIgnored(f"the barge-in matrix does not let the wake word interrupt {name}"),)
    if event.score < rule.wake_threshold:
        why = f"wake score {event.score} is below the {rule.wake_threshold} needed to interrupt {name}"
        return state, ctx, (cmd.NoteIgnored(why),)
    ctx, out = abandon(state, ctx)
    turn, ctx = new_turn(ctx)
    return listen_after_wake(ctx, turn, now, *out)


def on_barge_in_request(state: Interruptible, ctx: Context, event: ev.BargeInRequested, now: int) -> Outcome:
    """A request from outside the mic to interrupt (the monitor): cancel the turn and listen, like the wake word."""
    ctx, out = abandon(state, ctx)
    turn, ctx = new_turn(ctx)
    return listen_after_wake(ctx, turn, now, *out)


def on_barge_in_text(state: Interruptible, ctx: Context, event: ev.TextTyped, now: int) -> Outcome:
    """Typed text while a turn's answer runs: it interrupts as the wake word would (if the matrix lets the wake
    word interrupt this state), then is answered as a transcript."""
    name, rule = rule_of(state, ctx)
    if not rule.wake:
        why = f"the barge-in matrix does not let the wake word interrupt {name}, so typed text does not either"
        return state, ctx, (cmd.NoteIgnored(why),)
    return answer_typed(state, ctx, event, now)


def on_voice_hint(state: Speaking | Announcing, ctx: Context, event: ev.VoiceHint, now: int) -> Outcome:
    """A hint of the user's voice over playback: pause at once (the echo stops, so the user becomes clear)."""
    name, rule = rule_of(state, ctx)
    if not rule.speech:
        return state, ctx, (cmd.NoteIgnored(f"the barge-in matrix does not let speech interrupt {name}"),)
    if suspended(ctx):
        return state, ctx, (voice_suspended(name),)
    if event.probability < rule.speech_probability:
        why = f"voice hint {event.probability} is below the {rule.speech_probability} needed to pause {name}"
        return state, ctx, (cmd.NoteIgnored(why),)
    due = now + ctx.config.confirm_samples
    return (
        Paused(state, event.onset_sample, paused_at_sample=now),
        ctx,
        (cmd.PausePlayback(state.epoch), cmd.StartTimer("confirm", state.turn, due)),
    )


def on_barge_in_speech(state: Interruptible, ctx: Context, event: ev.SpeechStarted, now: int) -> Outcome:
    """Confirmed speech: cancel the turn and hear the user from where their speech began."""
    name, rule = rule_of(state, ctx)
    if not rule.speech:
        return state, ctx, (cmd.NoteIgnored(f"the barge-in matrix does not let speech interrupt {name}"),)
    if suspended(ctx):  # while paused, the confirm timer resumes playback
        return state, ctx, (voice_suspended(name),)
    onset = min(event.onset_sample, state.hint_onset_sample) if isinstance(state, Paused) else event.onset_sample
    ctx, out = abandon(state, ctx)
    turn, ctx = new_turn(ctx)
    return preceded_by(hear_from(ctx, turn, onset, now), *out)


def on_confirm_lapsed(state: Paused, ctx: Context, event: ev.TimerFired, now: int) -> Outcome:
    """No confirmed speech within the window: the hint was not the user. Carry on from where it paused."""
    if event.ref != state.turn:
        return state, ctx, (cmd.NoteIgnored(stale(state, event.ref, "confirm timer")),)
    inner = state.inner
    match inner:
        case Announcing():
            return inner, ctx, (cmd.ResumePlayback(state.epoch),)
        case Speaking():
            held = now - state.paused_at_sample
            resumed = replace(inner, playing_since_sample=inner.playing_since_sample + held)
            return preceded_by(synthesise_ahead(resumed, ctx, now), cmd.ResumePlayback(state.epoch))
        case _:
            assert_never(inner)


def on_lookahead_paused(state: Paused, ctx: Context, event: ev.TimerFired, now: int) -> Outcome:
    if event.ref != state.turn:
        return state, ctx, (cmd.NoteIgnored(stale(state, event.ref, "lookahead timer")),)
    return state, ctx, (cmd.NoteIgnored("paused: synthesis waits until playback goes on"),)


def in_paused(speaking: Handler[Speaking, E], announcing: Handler[Announcing, E]) -> Handler[Paused, E]:
    """A paused reply's work goes on: the handler of the paused state's inner state decides. The pause (and its
    timer) go on unless that handler leaves the inner state (a drained reply): then the confirm timer is
    disarmed."""

    def paused(state: Paused, ctx: Context, event: E, now: int) -> Outcome:
        inner = state.inner
        match inner:
            case Speaking():
                nxt, ctx, out = speaking(inner, ctx, event, now)
            case Announcing():
                nxt, ctx, out = announcing(inner, ctx, event, now)
            case _:
                assert_never(inner)
        if isinstance(nxt, Speaking | Announcing) and type(nxt) is type(inner):
            return replace(state, inner=nxt), ctx, out
        return nxt, ctx, (cmd.CancelTimer("confirm", state.turn), *out)

    return paused


# --------------------------------------------------------------------------------------- the breaker's end


def on_echo_canceller(state: State, ctx: Context, event: ev.EchoCancellerChanged, now: int) -> Outcome:
    """The canceller converged after the breaker tripped: hearing is trusted again, so voice barge-in is too."""
    if not (event.converged and suspended(ctx)):
        return state, ctx, (cmd.NoteIgnored(CANCELLER_FACT),)
    why = f"the echo canceller converged again (ERLE {event.erle_db:g} dB)"
    ctx, out = restore(ctx, why, cmd.CancelTimer("breaker", ctx.own_voice.trips))
    return state, ctx, out


CANCELLER_FACT = (
    "a fact for the log: hearing tells the user from the echo by the played reference, converged or not "
    "(the canceller only cleans what the voice detector hears)"
)


def on_breaker_hold_over(state: State, ctx: Context, event: ev.TimerFired, now: int) -> Outcome:
    """The breaker held voice barge-in for `breaker_hold_samples`: voice may interrupt again."""
    if not suspended(ctx) or event.ref != ctx.own_voice.trips:
        return state, ctx, (cmd.NoteIgnored(f"breaker timer {event.ref} is stale: voice barge-in is not held"),)
    ctx, out = restore(ctx, "the breaker's hold time is over")
    return state, ctx, out
