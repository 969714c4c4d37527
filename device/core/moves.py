"""The moves every phase makes: open a turn or an epoch, cancel a turn, chime, speak a fixed line, go back to
idle. Handlers in every phase module build their outcomes from these, so each move is written once."""

from __future__ import annotations

from dataclasses import replace
from typing import assert_never

from device.core import commands as cmd
from device.core.memory import Message, normalise_space
from device.core.states import (
    Alarm,
    Announcing,
    Context,
    CutReply,
    Degraded,
    Hearing,
    Idle,
    Listening,
    Muted,
    Paused,
    Reply,
    Ring,
    Ringing,
    Speaking,
    State,
    Stopping,
    Thinking,
    Transcribing,
    current_turn,
)
from device.core.table import Commands, Outcome
from device.core.voice import voice_opened, voice_said


def new_turn(ctx: Context) -> tuple[int, Context]:
    return ctx.next_turn, replace(ctx, next_turn=ctx.next_turn + 1)


def new_epoch(ctx: Context) -> tuple[int, Context]:
    return ctx.next_epoch, replace(ctx, next_epoch=ctx.next_epoch + 1)


def remember(ctx: Context, message: Message) -> Context:
    """`message` joins conversation memory; the oldest exchanges beyond `memory_messages` are forgotten, whole
    (memory alternates user and assistant from a user message, so an even number goes)."""
    memory = (*ctx.memory, message)
    excess = len(memory) - ctx.config.memory_messages
    if excess > 0:
        memory = memory[excess + excess % 2 :]
    return replace(ctx, memory=memory)


def ask(state: Thinking, ctx: Context) -> Outcome:
    """Remember the request and ask for its reply, with the memory before it as the history."""
    history = ctx.memory
    ctx = remember(ctx, Message("user", state.reply.prompt))
    return replace(state, held=False), ctx, (cmd.StartReply(state.turn, state.reply.prompt, history),)


def stale(state: State, turn: int, what: str) -> str:
    """Why a result of `turn` is dropped as data (rule 1)."""
    return f"{what} of turn {turn} dropped: current turn is {current_turn(state)} in {type(state).__name__}"


def preceded_by(outcome: Outcome, *commands: cmd.Command) -> Outcome:
    """The same outcome with `commands` carried out before its own."""
    state, ctx, out = outcome
    return state, ctx, (*commands, *out)


def full_text(reply: Reply) -> str:
    return normalise_space(reply.text)


def open_listening(ctx: Context, turn: int, now: int, *, follow_up: bool = False, addressed: bool = False) -> Outcome:
    window = ctx.config.follow_up_samples if follow_up else ctx.config.listen_timeout_samples
    return Listening(turn, now, follow_up, addressed), ctx, (cmd.StartTimer("listen", turn, now + window),)


def chime(ctx: Context, kind: str) -> tuple[Context, Commands]:
    """An earcon in a fresh epoch of its own (so no reply's epoch is ever reopened for it; rule 7)."""
    if not ctx.config.earcons:
        return ctx, ()
    epoch, ctx = new_epoch(ctx)
    return replace(ctx, earcon_epoch=epoch), (cmd.PlayEarcon(epoch, kind),)


def listen_after_wake(ctx: Context, turn: int, now: int, *before: cmd.Command) -> Outcome:
    """The wake word was accepted: chime, and open the listening window. The user called: a ring stops."""
    ctx, sound = chime(replace(ctx, ring=None), "wake")
    return preceded_by(open_listening(ctx, turn, now, addressed=True), *before, *sound)


def hear_from(
    ctx: Context, turn: int, onset_sample: int, now: int, follow_up: bool = False, *, addressed: bool = False
) -> Outcome:
    """Speech began at `onset_sample`: hear the utterance (with the pre-roll), for at most its time limit."""
    start = onset_sample - ctx.config.preroll_samples
    due = now + ctx.config.max_utterance_samples
    hearing = Hearing(turn, onset_sample, start, follow_up, addressed=addressed)
    return hearing, ctx, (cmd.StartTimer("utterance", turn, due),)


def to_idle(ctx: Context, now: int) -> Outcome:
    """Every way back to idle passes here, so a ring that nobody stopped goes on, and an alarm that rang while
    busy is announced now (rule 11)."""
    ring = ctx.ring
    if ring is not None:
        gap = ctx.config.alarm_ring_gap_samples
        if now + gap - ring.started_at_sample < ctx.config.alarm_ring_max_samples:
            return Ringing(), ctx, (cmd.StartTimer("ring", ring.alarm.alarm, now + gap),)
        ctx = replace(ctx, ring=None)  # it rang long enough: a kitchen timer stops too
    if not ctx.alarms_due:
        return Idle(), ctx, ()
    alarm, rest = ctx.alarms_due[0], ctx.alarms_due[1:]
    return announce(replace(ctx, alarms_due=rest), alarm, now)


def announce(ctx: Context, alarm: Alarm, now: int) -> Outcome:
    """A timer is done: it starts ringing (its line now, then again after each gap until it is stopped)."""
    return say(replace(ctx, ring=Ring(alarm, now)), ring_line(alarm), now)


def ring_line(alarm: Alarm) -> str:
    return f"Your {alarm.label} timer is done."


# What the assistant says when a job of the turn failed: short, honest, and then it listens again.
APOLOGIES = {
    "asr": "Sorry, I did not catch that.",
    "reply": "Sorry, I could not get an answer just now.",
    "tts": "Sorry, something went wrong with my voice.",
}


def say(ctx: Context, text: str, now: int) -> Outcome:
    """Speak a fixed line outside the conversation (an alarm, an apology): it is not kept in memory."""
    turn, ctx = new_turn(ctx)
    epoch, ctx = new_epoch(ctx)
    return (
        Announcing(turn, epoch, text),
        voice_opened(ctx, epoch),
        (cmd.OpenPlayback(epoch, turn), cmd.StartTts(turn, 0, text), tts_deadline(turn, ctx, now)),
    )


def tts_deadline(turn: int, ctx: Context, now: int) -> cmd.StartTimer:
    """Synthesis must deliver a sentence it was asked for within `tts_timeout_samples` of being asked, or of its
    last delivery (`faults.on_tts_overdue`)."""
    return cmd.StartTimer("tts", turn, now + ctx.config.tts_timeout_samples)


def _tts_deadline_off(state: Thinking | Speaking) -> Commands:
    """The synthesis deadline is armed while a sentence asked of synthesis has not come back."""
    in_flight = state.reply.requested - len(state.reply.chunks)
    return (cmd.CancelTimer("tts", state.turn),) if in_flight > 0 else ()


def abandon(state: State, ctx: Context) -> tuple[Context, Commands]:
    """Cancel the current turn's work, playback and timers (rule 2); remember a cut reply until its heard text
    is known."""
    match state:
        case Idle() | Muted() | Degraded() | Stopping():
            return ctx, ()
        case Ringing():  # between two sayings: the next one is not due any more
            return ctx, (cmd.CancelTimer("ring", ctx.ring.alarm.alarm),) if ctx.ring is not None else ()
        case Listening():
            return ctx, (cmd.CancelTurn(state.turn), cmd.CancelTimer("listen", state.turn))
        case Hearing():
            return ctx, (cmd.CancelTurn(state.turn), cmd.CancelTimer("utterance", state.turn))
        case Transcribing():
            return ctx, (cmd.CancelTurn(state.turn), cmd.CancelTimer("asr", state.turn))
        case Thinking(held=True):  # not asked yet: the request is not in memory, no job runs
            return ctx, (cmd.CancelTurn(state.turn),)
        case Thinking():
            # The user's words are in memory; nothing of the reply was heard. Keep the roles alternating.
            ctx = remember(ctx, Message("assistant", "", interrupted=True))
            commit = cmd.CommitHeard(state.turn, full_text(state.reply), "", interrupted=True)
            return ctx, (commit, cmd.CancelTurn(state.turn), *_tts_deadline_off(state))
        case Speaking():
            out: list[cmd.Command] = [cmd.CutPlayback(state.epoch)]
            if state.reply.waiting:  # sentences held back for the lookahead: its wake-up may be armed
                out.append(cmd.CancelTimer("lookahead", state.turn))
            cut = CutReply(state.turn, state.epoch, state.reply.chunks, full_text(state.reply))
            ctx = replace(ctx, cut_replies=(*ctx.cut_replies, cut))
            return ctx, (*out, cmd.CancelTurn(state.turn), *_tts_deadline_off(state))
        case Announcing():
            # Its words are not kept (an announcement is not memory), but the guard must know they may echo: the
            # whole line counts as played (it is short, and more words only make the guard more careful).
            ctx = voice_said(ctx, tuple(state.text.split()))
            off = () if state.voiced else (cmd.CancelTimer("tts", state.turn),)
            return ctx, (cmd.CutPlayback(state.epoch), cmd.CancelTurn(state.turn), *off)
        case Paused():
            ctx, out_inner = abandon(state.inner, ctx)
            return ctx, (cmd.CancelTimer("confirm", state.turn), *out_inner)
        case _:
            assert_never(state)
