"""The spine: the one place that decides. `step(spine, event, now) -> (spine, commands)`.

Theory of operation
-------------------
Organs (hearing, workers, playback, timers) only post events. One thread takes each event from the inbox,
writes it to the log, and calls `step()`. `step()` looks the pair (type of state, type of event) up in one of
three tables, in this order:

* `TRANSITIONS` - the pair is handled: a handler computes the next state and the commands. Each row also
  declares the states it may lead to; the diagram and the reachability check are generated from that.
* `IGNORED` - the pair means nothing in that state; `step()` keeps the state and emits `NoteIgnored(reason)`
  so the log says why.
* otherwise the pair is illegal and `step()` raises `IllegalEvent`. Every event can arrive late from another
  thread, so in practice no pair is impossible and `spine fsm --check` requires the first two tables to cover
  every pair.

Rules the handlers keep:

1. Work belongs to a turn. A result whose turn is not the current one is dropped as data (`NoteIgnored` with
   the turn numbers) - never acted on (invariant 2).
2. Cancelling a turn always does the same three things: `CutPlayback` for its epoch if it speaks, `CancelTurn`,
   and disarming its timers. The heard text of a cut reply is committed when the epoch reports
   `PlaybackStopped` with the exact played-sample count (invariant 5).
3. Only audio of the current epoch is queued; a cut epoch is never reopened (invariant 4).
4. Time is an argument. Deadlines leave as `StartTimer(due_sample=now + ...)` and come back as `TimerFired`.
5. Interruption follows one matrix (`CoreConfig.barge_in`): a signal a state's row does not allow never
   interrupts it. While audio plays, the first hint of voice pauses it (`Paused`); confirmed speech cancels
   the turn, and a hint that is not confirmed in time resumes playback exactly where it paused. A wake word
   found in the assistant's own speech is never an interruption.
6. Transcription may start early, at the user's pause (`SpeechPaused`). A transcript names the sample it runs
   to, and only the transcript up to the endpoint is ever answered: one of a pause the user spoke on past is
   dropped as data.
7. A chime (`PlayEarcon`: wake, timeout, mute, unmute, startup) is an epoch of its own, outside every turn:
   never a reply's epoch, never in memory, never cut (only a stop cuts the start-up sound, which plays on
   `Started` so the echo canceller converges before the first answer).
8. The assistant never answers itself. The context knows what its voice last said and when it last sounded
   (`OwnVoice`: the words played, from the chunks and the played-sample counts; the epochs still sounding).
   A transcript whose utterance began while that voice sounded, or within `echo_tail_samples` after, and whose
   words are the last ones played (`own_words_match`) is not a user turn: no reply, a `NoteIgnored` that says
   "self-interruption", back to listening. Stop phrases are checked first: they are never answered either.
9. Hearing itself trips a breaker: `breaker_self_heard` times within `breaker_window_samples` suspend voice
   barge-in (`VoiceBargeIn(enabled=False)`; only the wake word interrupts, no follow-up window opens) until
   the echo canceller next reports convergence, or `breaker_hold_samples` pass (the `breaker` timer).
10. A stop phrase ends the exchange unanswered: the wake phrase is stripped from the transcript's start, and
   the rest must be stop phrases and fillers only ("Hey Jarvis, stop.", "Stop. Stop.", "Cancel that").
11. A timer that is done rings (`Context.ring`): its line, a gap (`Ringing`), its line again, for at most
   `alarm_ring_max_samples`. The wake word, a stop phrase or any request silences it; speech that turns out to
   be nothing (an empty transcript, the assistant's own echo) does not, and the ring goes on. Every way back
   to idle passes through `_to_idle`, which resumes a ring, then announces an alarm that came due while busy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal

from device.core import commands as cmd
from device.core import events as ev
from device.core.memory import (
    Message,
    SpokenChunk,
    first_clause,
    heard_text,
    is_stop_phrase,
    normalise_space,
    own_words_match,
    sounded_words,
    split_sentences,
    spoken_text,
    words_after_wake,
)
from device.core.states import (
    Alarm,
    Announcing,
    BargeInRule,
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
    Spine,
    State,
    Stopping,
    Thinking,
    Transcribing,
    current_turn,
)

Commands = tuple[cmd.Command, ...]
Outcome = tuple[State, Context, Commands]
# Handlers are typed loosely here because the table maps each (state type, event type) to the handler written
# for exactly those types; the row builder below is where that pairing is stated.
Handler = Callable[[Any, Context, Any, int], Outcome]


class IllegalEvent(Exception):
    """An event arrived in a state where the tables say it cannot happen."""


@dataclass(frozen=True)
class Row:
    handler: Handler
    targets: tuple[type[State], ...]


# --------------------------------------------------------------------------------------------------- helpers


def _new_turn(ctx: Context) -> tuple[int, Context]:
    return ctx.next_turn, replace(ctx, next_turn=ctx.next_turn + 1)


def _new_epoch(ctx: Context) -> tuple[int, Context]:
    return ctx.next_epoch, replace(ctx, next_epoch=ctx.next_epoch + 1)


def _remember(ctx: Context, message: Message) -> Context:
    return replace(ctx, memory=(*ctx.memory, message))


def _stale(state: State, turn: int, what: str) -> str:
    return f"{what} of turn {turn} dropped: current turn is {current_turn(state)} in {type(state).__name__}"


def _open_listening(ctx: Context, turn: int, now: int, *, follow_up: bool = False) -> Outcome:
    window = ctx.config.follow_up_samples if follow_up else ctx.config.listen_timeout_samples
    return Listening(turn, now, follow_up), ctx, (cmd.StartTimer("listen", turn, now + window),)


def _chime(ctx: Context, kind: str) -> tuple[Context, Commands]:
    """An earcon in a fresh epoch of its own (so no reply's epoch is ever reopened for it)."""
    if not ctx.config.earcons:
        return ctx, ()
    epoch, ctx = _new_epoch(ctx)
    return replace(ctx, earcon_epoch=epoch), (cmd.PlayEarcon(epoch, kind),)


def _listen_after_wake(ctx: Context, turn: int, now: int, *before: cmd.Command) -> Outcome:
    """The wake word was accepted: chime, and open the listening window. The user called: a ring stops."""
    ctx, chime = _chime(replace(ctx, ring=None), "wake")
    return _with(_open_listening(ctx, turn, now), *before, *chime)


def _to_idle(ctx: Context, now: int) -> Outcome:
    """Every way back to idle passes here, so a ring that nobody stopped goes on, and an alarm that rang while
    busy is announced now."""
    ring = ctx.ring
    if ring is not None:
        gap = ctx.config.alarm_ring_gap_samples
        if now + gap - ring.started_at_sample < ctx.config.alarm_ring_max_samples:
            return Ringing(), ctx, (cmd.StartTimer("ring", ring.alarm.alarm, now + gap),)
        ctx = replace(ctx, ring=None)  # it rang long enough: a kitchen timer stops too
    if not ctx.alarms_due:
        return Idle(), ctx, ()
    alarm, rest = ctx.alarms_due[0], ctx.alarms_due[1:]
    return _announce(replace(ctx, alarms_due=rest), alarm, now)


def _announce(ctx: Context, alarm: Alarm, now: int) -> Outcome:
    """A timer is done: it starts ringing (its line now, then again after each gap until it is stopped)."""
    return _say(replace(ctx, ring=Ring(alarm, now)), _ring_line(alarm))


def _ring_line(alarm: Alarm) -> str:
    return f"Your {alarm.label} timer is done."


def on_ring_due(state: Ringing, ctx: Context, event: ev.TimerFired, now: int) -> Outcome:
    """The gap between two sayings of a ringing timer's line is over: say it again, or stop at the bound."""
    if event.kind != "ring":
        return on_timer(state, ctx, event, now)
    ring = ctx.ring
    if ring is None or event.ref != ring.alarm.alarm:
        return state, ctx, (cmd.NoteIgnored(f"ring timer {event.ref} is stale: that timer no longer rings"),)
    if now - ring.started_at_sample >= ctx.config.alarm_ring_max_samples:
        return _to_idle(replace(ctx, ring=None), now)
    return _say(ctx, _ring_line(ring.alarm))


# What the assistant says when a job of the turn failed: short, honest, and then it listens again.
APOLOGIES = {
    "asr": "Sorry, I did not catch that.",
    "reply": "Sorry, I could not get an answer just now.",
    "tts": "Sorry, something went wrong with my voice.",
}


def _say(ctx: Context, text: str) -> Outcome:
    """Speak a fixed line outside the conversation (an alarm, an apology): it is not kept in memory."""
    turn, ctx = _new_turn(ctx)
    epoch, ctx = _new_epoch(ctx)
    return (
        Announcing(turn, epoch, text),
        _voice_opened(ctx, epoch),
        (cmd.OpenPlayback(epoch, turn), cmd.StartTts(turn, 0, text)),
    )


def _abandon(state: State, ctx: Context) -> tuple[Context, Commands]:
    """Cancel the current turn's work and playback; remember a cut reply until its heard text is known."""
    if isinstance(state, Ringing) and ctx.ring is not None:  # between two sayings: the next one is not due
        return ctx, (cmd.CancelTimer("ring", ctx.ring.alarm.alarm),)
    turn = current_turn(state)
    if turn is None:
        return ctx, ()
    out: list[cmd.Command] = []
    if isinstance(state, Paused):
        out.append(cmd.CancelTimer("confirm", turn))
        state = state.inner
    if isinstance(state, Speaking):
        out.append(cmd.CutPlayback(state.epoch))
        if state.reply.waiting:  # sentences held back for the lookahead: its wake-up may be armed
            out.append(cmd.CancelTimer("lookahead", state.turn))
        cut = CutReply(state.turn, state.epoch, state.reply.chunks, _full_text(state.reply))
        ctx = replace(ctx, cut_replies=(*ctx.cut_replies, cut))
    elif isinstance(state, Announcing):
        out.append(cmd.CutPlayback(state.epoch))
        # Its words are not kept (an announcement is not memory), but the guard must know they may echo: the
        # whole line counts as played (it is short, and more words only make the guard more careful).
        ctx = _voice_said(ctx, tuple(state.text.split()))
    elif isinstance(state, Thinking):
        # The user's words are in memory; nothing of the reply was heard. Keep the roles alternating.
        ctx = _remember(ctx, Message("assistant", "", interrupted=True))
        out.append(cmd.CommitHeard(state.turn, _full_text(state.reply), "", interrupted=True))
    out.append(cmd.CancelTurn(turn))
    if isinstance(state, Listening):
        out.append(cmd.CancelTimer("listen", turn))
    elif isinstance(state, Hearing):
        out.append(cmd.CancelTimer("utterance", turn))
    return ctx, tuple(out)


def _full_text(reply: Reply) -> str:
    return normalise_space(reply.text)


# ------------------------------------------------------------------------------- the assistant's own voice


SELF_HEARD = "self-interruption"
"""How a `NoteIgnored` for a transcript of the assistant's own voice begins (summaries count it)."""


def _voice_opened(ctx: Context, epoch: int) -> Context:
    voice = ctx.own_voice
    return replace(ctx, own_voice=replace(voice, sounding=(*voice.sounding, epoch)))


def _voice_said(ctx: Context, words: tuple[str, ...]) -> Context:
    """Add words the speaker played to the guard's window (it keeps the last `own_words_window_words`)."""
    if not words:
        return ctx
    voice, keep = ctx.own_voice, ctx.config.own_words_window_words
    return replace(ctx, own_voice=replace(voice, words=(*voice.words, *words)[-keep:]))


def _voice_ended(ctx: Context, epoch: int, now: int, words: tuple[str, ...] = ()) -> Context:
    """An epoch of speech drained or stopped: its words were played, and the voice fell silent now."""
    voice = ctx.own_voice
    if epoch in voice.sounding:
        voice = replace(voice, sounding=tuple(e for e in voice.sounding if e != epoch), ended_at_sample=now)
    return _voice_said(replace(ctx, own_voice=voice), words)


def is_own_voice(ctx: Context, prompt: str, onset_sample: int) -> bool:
    """Whether an utterance that began at `onset_sample` and says `prompt` is the assistant's own voice: it
    began while that voice sounded or within the echo tail after, and it says the last words played, or words
    of a cut reply whose stop report is still to come (how much of it played is not known yet)."""
    voice, config = ctx.own_voice, ctx.config
    if not _talked_over(ctx, onset_sample):
        return False
    pending = tuple(w for cut in ctx.cut_replies if cut.epoch in voice.sounding for w in cut.full_text.split())
    windows = (voice.words, (*voice.words, *pending)) if pending else (voice.words,)
    return any(
        own_words_match(
            prompt, words, min_fraction=config.own_words_min_fraction, one_word_tail=config.own_one_word_tail_words
        )
        for words in windows
    )


def _talked_over(ctx: Context, onset_sample: int) -> bool:
    """Whether an utterance that began at `onset_sample` began while the assistant's voice sounded or within
    its echo tail."""
    voice = ctx.own_voice
    ended = voice.ended_at_sample
    return bool(voice.sounding) or (ended is not None and onset_sample <= ended + ctx.config.echo_tail_samples)


def _is_short_interruption(ctx: Context, prompt: str, onset_sample: int) -> bool:
    """A talk-over of a word or two that is no stop phrase: taken as a stop (`short_interruption_max_words`)."""
    limit = ctx.config.short_interruption_max_words
    words = words_after_wake(prompt, ctx.config.wake_phrase)
    return limit > 0 and len(words) <= limit and _talked_over(ctx, onset_sample)


def _heard_itself(ctx: Context, turn: int, prompt: str, now: int) -> Outcome:
    """The transcript is the assistant's own voice: answer nothing, count it, and listen on (a ring goes on)."""
    config = ctx.config
    voice = ctx.own_voice
    recent = (*(t for t in voice.self_heard_at if now - t < config.breaker_window_samples), now)
    ctx = replace(ctx, own_voice=replace(voice, self_heard_at=recent))
    window_s = config.breaker_window_samples / config.rate_hz
    note = cmd.NoteIgnored(
        f"{SELF_HEARD}: {prompt!r} is the assistant's own voice (it began while that voice sounded or in its echo "
        f"tail, and repeats what it just said): not a user turn ({len(recent)} within {window_s:g} s)"
    )
    ctx, breaker = _maybe_trip(ctx, now)
    if ctx.ring is not None or ctx.alarms_due or _suspended(ctx) or config.follow_up_samples <= 0:
        return _with(_to_idle(ctx, now), note, *breaker)
    return _with(_open_listening(ctx, turn, now, follow_up=True), note, *breaker)


def _suspended(ctx: Context) -> bool:
    return ctx.own_voice.suspended_since_sample is not None


def _maybe_trip(ctx: Context, now: int) -> tuple[Context, Commands]:
    """Trip the breaker when the assistant heard itself `breaker_self_heard` times within the window."""
    voice, config = ctx.own_voice, ctx.config
    if _suspended(ctx) or config.breaker_self_heard <= 0 or len(voice.self_heard_at) < config.breaker_self_heard:
        return ctx, ()
    trips = voice.trips + 1
    ctx = replace(ctx, own_voice=replace(voice, suspended_since_sample=now, trips=trips))
    window_s, hold_s = config.breaker_window_samples / config.rate_hz, config.breaker_hold_samples / config.rate_hz
    why = (
        f"heard itself {len(voice.self_heard_at)} times within {window_s:g} s: only the wake word interrupts "
        f"until the echo canceller converges again, or for {hold_s:g} s"
    )
    return ctx, (cmd.VoiceBargeIn(False, why), cmd.StartTimer("breaker", trips, now + config.breaker_hold_samples))


def _restore(ctx: Context, why: str, *also: cmd.Command) -> tuple[Context, Commands]:
    voice = replace(ctx.own_voice, suspended_since_sample=None, self_heard_at=())
    return replace(ctx, own_voice=voice), (*also, cmd.VoiceBargeIn(True, why))


def on_echo_canceller(state: State, ctx: Context, event: ev.EchoCancellerChanged, now: int) -> Outcome:
    """The canceller converged after the breaker tripped: hearing is trusted again, so voice barge-in is too."""
    if not (event.converged and _suspended(ctx)):
        return state, ctx, (cmd.NoteIgnored(_CANCELLER_FACT),)
    why = f"the echo canceller converged again (ERLE {event.erle_db:g} dB)"
    ctx, out = _restore(ctx, why, cmd.CancelTimer("breaker", ctx.own_voice.trips))
    return state, ctx, out


_CANCELLER_FACT = (
    "a fact for the log: hearing tells the user from the echo by the played reference, converged or not "
    "(the canceller only cleans what the voice detector hears)"
)


def _voice_suspended(name: str) -> cmd.NoteIgnored:
    return cmd.NoteIgnored(
        f"voice barge-in is suspended (the assistant kept hearing itself): only the wake word interrupts {name}"
    )


# ------------------------------------------------------------------------------------ hearing and listening


_OWN_SPEECH = "the wake word was in the assistant's own speech (found in the played audio first)"


def on_wake_idle(state: Idle | Ringing, ctx: Context, event: ev.WakeDetected, now: int) -> Outcome:
    if event.in_own_speech:  # the tail of a reply that said the wake word, still echoing after it drained
        return state, ctx, (cmd.NoteIgnored(_OWN_SPEECH),)
    ctx, out = _abandon(state, ctx)  # a ring's next saying is not due any more
    turn, ctx = _new_turn(ctx)
    return _listen_after_wake(ctx, turn, now, *out)


def on_ring_speech(state: Ringing, ctx: Context, event: ev.SpeechStarted, now: int) -> Outcome:
    """Speech between two sayings of a ringing timer: hear it (no wake word needed to say "stop"). The ring
    waits: a request or a stop silences it, an empty transcript or the assistant's own echo does not."""
    if _suspended(ctx):
        return state, ctx, (_voice_suspended("a ringing timer"),)
    ctx, out = _abandon(state, ctx)
    turn, ctx = _new_turn(ctx)
    start = event.onset_sample - ctx.config.preroll_samples
    due = now + ctx.config.max_utterance_samples
    return Hearing(turn, event.onset_sample, start), ctx, (*out, cmd.StartTimer("utterance", turn, due))


def on_started(state: Idle, ctx: Context, event: ev.Started, now: int) -> Outcome:
    """The loop began: play the start-up sound, through the real output, so the echo canceller converges (and
    the echo model is calibrated) before the first answer."""
    if not ctx.config.startup_sound:
        return state, ctx, (cmd.NoteIgnored("the start-up sound is off"),)
    epoch, ctx = _new_epoch(ctx)
    return state, replace(ctx, earcon_epoch=epoch, startup_epoch=epoch), (cmd.PlayEarcon(epoch, "startup"),)


def on_wake_again(state: Listening | Hearing, ctx: Context, event: ev.WakeDetected, now: int) -> Outcome:
    """The wake word again while listening: start the listening window afresh, same turn."""
    if event.in_own_speech:
        return state, ctx, (cmd.NoteIgnored(_OWN_SPEECH),)
    cancel = (cmd.CancelTimer("utterance", state.turn),) if isinstance(state, Hearing) else ()
    return _listen_after_wake(ctx, state.turn, now, *cancel)


def on_speech_started(state: Listening, ctx: Context, event: ev.SpeechStarted, now: int) -> Outcome:
    # No floor at the wake detection: it lags the wake word, and the user may already be speaking. Hearing
    # places the onset after the pause that follows the wake word.
    start = event.onset_sample - ctx.config.preroll_samples
    due = now + ctx.config.max_utterance_samples
    hearing = Hearing(state.turn, event.onset_sample, start, state.follow_up)
    return hearing, ctx, (cmd.CancelTimer("listen", state.turn), cmd.StartTimer("utterance", state.turn, due))


def on_speech_paused(state: Hearing, ctx: Context, event: ev.SpeechPaused, now: int) -> Outcome:
    """The user paused: transcribe what they said so far now, so the endpoint finds the text (nearly) ready."""
    if not ctx.config.early_asr:
        return state, ctx, (cmd.NoteIgnored("early transcription is off: the endpoint starts it"),)
    if event.end_sample - state.onset_sample < ctx.config.min_utterance_samples:
        return state, ctx, (cmd.NoteIgnored("too short to be a request yet: no early transcription"),)
    early = replace(state, early_to_sample=event.end_sample, early_text=None)
    return early, ctx, (cmd.StartAsr(state.turn, state.from_sample, event.end_sample),)


def on_early_transcript(state: Hearing, ctx: Context, event: ev.TranscriptReady, now: int) -> Outcome:
    if event.turn != state.turn:
        return state, ctx, (cmd.NoteIgnored(_stale(state, event.turn, "transcript")),)
    if event.to_sample != state.early_to_sample:
        return state, ctx, (cmd.NoteIgnored(_outdated(event, state.early_to_sample)),)
    return replace(state, early_text=event.text), ctx, ()


def on_early_failure(state: Hearing, ctx: Context, event: ev.EngineFailed, now: int) -> Outcome:
    """An early transcription failed: forget it, so the endpoint starts one of its own (or apologises then)."""
    if event.turn != state.turn:
        return state, ctx, (cmd.NoteIgnored(_stale(state, event.turn, f"{event.job} failure")),)
    forgot = replace(state, early_to_sample=None, early_text=None)
    return forgot, ctx, (cmd.NoteIgnored(f"early transcription failed ({event.reason}): the endpoint retries"),)


def _outdated(event: ev.TranscriptReady, wanted: int | None) -> str:
    return f"transcript up to sample {event.to_sample} is outdated: the user spoke on (waiting for {wanted})"


def on_speech_ended(state: Hearing, ctx: Context, event: ev.SpeechEnded, now: int) -> Outcome:
    if event.end_sample - state.onset_sample < ctx.config.min_utterance_samples:
        # Too short to be a request: keep listening in the same window (its timer restarts).
        cancel = cmd.CancelTimer("utterance", state.turn)
        return _with(_open_listening(ctx, state.turn, now, follow_up=state.follow_up), cancel)
    if event.end_sample == state.early_to_sample:  # the pause was the end: its transcription is the one
        cancel = cmd.CancelTimer("utterance", state.turn)
        if state.early_text is None:
            return Transcribing(state.turn, event.end_sample, state.onset_sample), ctx, (cancel,)
        return _with(_answer(state.turn, state.early_text, ctx, now, state.onset_sample), cancel)
    return _transcribe(state, ctx, event.end_sample)


def _transcribe(state: Hearing, ctx: Context, end_sample: int) -> Outcome:
    out = (cmd.CancelTimer("utterance", state.turn), cmd.StartAsr(state.turn, state.from_sample, end_sample))
    return Transcribing(state.turn, end_sample, state.onset_sample), ctx, out


# --------------------------------------------------------------------------------------------------- timers


def on_timer(state: State, ctx: Context, event: ev.TimerFired, now: int) -> Outcome:
    if event.kind == "alarm":
        return _alarm_rang(state, ctx, event.ref, now)
    if event.kind == "breaker":
        if not _suspended(ctx) or event.ref != ctx.own_voice.trips:
            return state, ctx, (cmd.NoteIgnored(f"breaker timer {event.ref} is stale: voice barge-in is not held"),)
        ctx, out = _restore(ctx, "the breaker's hold time is over")
        return state, ctx, out
    if event.kind == "ring":  # in a state other than Ringing: the ring was silenced or is saying its line
        return state, ctx, (cmd.NoteIgnored(f"ring timer {event.ref} has no meaning in {type(state).__name__}"),)
    if event.ref != current_turn(state):
        return state, ctx, (cmd.NoteIgnored(_stale(state, event.ref, f"{event.kind} timer")),)
    if event.kind == "listen" and isinstance(state, Listening):
        if state.follow_up or ctx.alarms_due:  # a follow-up window lapses quietly; an alarm speaks for itself
            return _to_idle(ctx, now)
        ctx, chime = _chime(ctx, "timeout")  # the wake word was heard but nothing followed: say we stopped
        return _with(_to_idle(ctx, now), *chime)
    if event.kind == "utterance" and isinstance(state, Hearing):
        return _transcribe(state, ctx, now)
    if event.kind == "confirm" and isinstance(state, Paused):
        # No confirmed speech within the window: the hint was not the user. Carry on from where it paused.
        inner = state.inner
        if isinstance(inner, Announcing):
            return inner, ctx, (cmd.ResumePlayback(state.epoch),)
        held = now - state.paused_at_sample
        speaking, ctx, more = _synthesise_ahead(
            replace(inner, playing_since_sample=inner.playing_since_sample + held), ctx, now
        )
        return speaking, ctx, (cmd.ResumePlayback(state.epoch), *more)
    if event.kind == "lookahead" and isinstance(state, Paused):
        return state, ctx, (cmd.NoteIgnored("paused: synthesis waits until playback goes on"),)
    return state, ctx, (cmd.NoteIgnored(f"{event.kind} timer has no meaning in {type(state).__name__}"),)


def _alarm_rang(state: State, ctx: Context, alarm_id: int, now: int) -> Outcome:
    alarm = next((a for a in ctx.alarms_armed if a.alarm == alarm_id), None)
    if alarm is None:
        return state, ctx, (cmd.NoteIgnored(f"alarm {alarm_id} is not armed"),)
    ctx = replace(ctx, alarms_armed=tuple(a for a in ctx.alarms_armed if a.alarm != alarm_id))
    if isinstance(state, Idle):
        return _announce(ctx, alarm, now)
    # Busy: announce when the machine is next idle, rather than talk over the user or over itself.
    return state, replace(ctx, alarms_due=(*ctx.alarms_due, alarm)), ()


# -------------------------------------------------------------------------------------- transcript and reply


def on_transcript(state: Transcribing, ctx: Context, event: ev.TranscriptReady, now: int) -> Outcome:
    if event.turn != state.turn:
        return state, ctx, (cmd.NoteIgnored(_stale(state, event.turn, "transcript")),)
    if event.to_sample != state.to_sample:
        return state, ctx, (cmd.NoteIgnored(_outdated(event, state.to_sample)),)
    return _answer(state.turn, event.text, ctx, now, state.onset_sample)


def _answer(turn: int, text: str, ctx: Context, now: int, onset_sample: int) -> Outcome:
    """The words of an utterance that began at `onset_sample` are known: ask for a reply, unless there is
    nothing to answer, it is a stop, or it is the assistant's own voice (then rest or listen on)."""
    prompt = normalise_space(text)
    if not prompt:
        return _with(_to_idle(ctx, now), cmd.NoteIgnored("empty transcript: nothing to answer"))
    if is_stop_phrase(prompt, ctx.config.stop_phrases, ctx.config.wake_phrase):
        # Whatever was going on was cancelled when this utterance interrupted it; a stop starts nothing new, and
        # silences a ringing timer.
        ctx = replace(ctx, ring=None)
        return _with(_to_idle(ctx, now), cmd.NoteIgnored(f"stop phrase {prompt!r}: stopped, nothing to answer"))
    if is_own_voice(ctx, prompt, onset_sample):
        return _heard_itself(ctx, turn, prompt, now)
    if _is_short_interruption(ctx, prompt, onset_sample):
        ctx = replace(ctx, ring=None)
        why = f"short interruption {prompt!r}: taken as a stop (a talk-over of a word or two), nothing to answer"
        return _with(_to_idle(ctx, now), cmd.NoteIgnored(why))
    ctx = replace(ctx, ring=None)  # the user asked for something: they heard the ring
    history = ctx.memory
    ctx = _remember(ctx, Message("user", prompt))
    return Thinking(turn, Reply(prompt)), ctx, (cmd.StartReply(turn, prompt, history),)


def _with(outcome: Outcome, *extra: cmd.Command) -> Outcome:
    state, ctx, out = outcome
    return state, ctx, (*extra, *out)


def on_reply_delta(state: Thinking | Speaking, ctx: Context, event: ev.ReplyDelta, now: int) -> Outcome:
    if event.turn != state.turn:
        return state, ctx, (cmd.NoteIgnored(_stale(state, event.turn, "reply text")),)
    reply = replace(state.reply, text=state.reply.text + event.text)
    sentences, cut_at = split_sentences(reply.text, reply.sentences_cut_at)
    if not sentences and reply.requested == 0 and not reply.waiting:
        clause = first_clause(reply.text, reply.sentences_cut_at, ctx.config.first_clause_min_words)
        if clause is not None:
            sentences, cut_at = (clause[0],), clause[1]
    reply = replace(reply, sentences_cut_at=cut_at, waiting=(*reply.waiting, *sentences))
    if not sentences:  # text still growing: nothing new for synthesis (chunks and the timer pace the rest)
        return replace(state, reply=reply), ctx, ()
    return _synthesise_ahead(replace(state, reply=reply), ctx, now)


def on_reply_finished(state: Thinking | Speaking, ctx: Context, event: ev.ReplyFinished, now: int) -> Outcome:
    if event.turn != state.turn:
        return state, ctx, (cmd.NoteIgnored(_stale(state, event.turn, "end of reply")),)
    reply = state.reply
    rest = normalise_space(reply.text[reply.sentences_cut_at :])
    if rest:
        reply = replace(reply, sentences_cut_at=len(reply.text), waiting=(*reply.waiting, rest))
    reply = replace(reply, stream="closed")
    if reply.requested == 0 and not reply.waiting:
        ctx = _remember(ctx, Message("assistant", ""))
        return _with(_to_idle(ctx, now), cmd.CommitHeard(state.turn, "", "", interrupted=False))
    nxt, ctx, out = _synthesise_ahead(replace(state, reply=reply), ctx, now)
    assert isinstance(nxt, Thinking | Speaking)
    return nxt, ctx, out + _finish_if_complete(nxt)


def _ahead_samples(state: Thinking | Speaking, now: int) -> int:
    """Synthesised audio not yet played, estimated from the sample clock (0 while nothing plays yet)."""
    if isinstance(state, Thinking):
        return 0
    queued = sum(chunk.samples for chunk in state.reply.chunks)
    return max(0, queued - (now - state.playing_since_sample))


def _synthesise_ahead(state: Thinking | Speaking, ctx: Context, now: int) -> Outcome:
    """Send waiting sentences to synthesis while the lookahead has room; otherwise wake up when it will."""
    reply, config = state.reply, ctx.config
    ahead = _ahead_samples(state, now)
    out: list[cmd.Command] = []
    while reply.waiting and reply.requested - len(reply.chunks) < config.tts_in_flight:
        if reply.requested > 0 and ahead >= config.tts_lookahead_samples:
            break
        out.append(cmd.StartTts(state.turn, reply.requested, reply.waiting[0]))
        reply = replace(reply, waiting=reply.waiting[1:], requested=reply.requested + 1)
    if reply.waiting and reply.requested == len(reply.chunks) and isinstance(state, Speaking):
        # Nothing in flight: no chunk will arrive to wake us, so a timer does when the lookahead has room.
        out.append(cmd.StartTimer("lookahead", state.turn, now + ahead - config.tts_lookahead_samples + 1))
    return replace(state, reply=reply), ctx, tuple(out)


def on_lookahead_due(state: Speaking, ctx: Context, event: ev.TimerFired, now: int) -> Outcome:
    if event.kind != "lookahead":
        return on_timer(state, ctx, event, now)
    if event.ref != state.turn:
        return state, ctx, (cmd.NoteIgnored(_stale(state, event.ref, "lookahead timer")),)
    return _synthesise_ahead(state, ctx, now)


def on_alarm_requested(state: Thinking | Speaking, ctx: Context, event: ev.AlarmRequested, now: int) -> Outcome:
    if event.turn != state.turn:
        return state, ctx, (cmd.NoteIgnored(_stale(state, event.turn, "timer request")),)
    alarm = Alarm(ctx.next_alarm, event.label)
    ctx = replace(ctx, next_alarm=ctx.next_alarm + 1, alarms_armed=(*ctx.alarms_armed, alarm))
    due = now + event.seconds * ctx.config.rate_hz
    return state, ctx, (cmd.StartTimer("alarm", alarm.alarm, due),)


def on_tts_chunk(state: Thinking | Speaking, ctx: Context, event: ev.TtsChunkReady, now: int) -> Outcome:
    if event.turn != state.turn:
        return state, ctx, (cmd.NoteIgnored(_stale(state, event.turn, "speech audio")),)
    chunk = SpokenChunk(event.seq, event.text, event.samples, event.word_end_samples)
    reply = replace(state.reply, chunks=(*state.reply.chunks, chunk))
    out: list[cmd.Command] = []
    if isinstance(state, Thinking):
        epoch, ctx = _new_epoch(ctx)
        ctx = _voice_opened(ctx, epoch)
        out.append(cmd.OpenPlayback(epoch, state.turn))
        speaking = Speaking(state.turn, epoch, reply, playing_since_sample=now)
    else:
        speaking = replace(state, reply=reply)
        if _ahead_samples(state, now) == 0:  # the speaker ran dry waiting for this chunk: it starts now
            speaking = replace(speaking, playing_since_sample=now - sum(c.samples for c in state.reply.chunks))
    out.append(cmd.QueuePlayback(speaking.epoch, state.turn, event.seq))
    nxt, ctx, more = _synthesise_ahead(speaking, ctx, now)
    assert isinstance(nxt, Speaking)
    return nxt, ctx, (*out, *more, *_finish_if_complete(nxt))


def _finish_if_complete(state: Thinking | Speaking) -> Commands:
    reply = state.reply
    done = reply.stream == "closed" and not reply.waiting and len(reply.chunks) == reply.requested
    if isinstance(state, Speaking) and done:
        return (cmd.FinishPlayback(state.epoch),)
    return ()


def on_announcement_chunk(state: Announcing, ctx: Context, event: ev.TtsChunkReady, now: int) -> Outcome:
    if event.turn != state.turn:
        return state, ctx, (cmd.NoteIgnored(_stale(state, event.turn, "speech audio")),)
    return (
        state,
        ctx,
        (cmd.QueuePlayback(state.epoch, state.turn, event.seq), cmd.FinishPlayback(state.epoch)),
    )


# ------------------------------------------------------------------------------------------------ playback


def on_drained(state: Speaking | Announcing, ctx: Context, event: ev.PlaybackDrained, now: int) -> Outcome:
    if event.epoch != state.epoch:
        return on_stale_drain(state, ctx, event, now)
    if isinstance(state, Announcing):
        return _to_idle(_voice_ended(ctx, state.epoch, now, tuple(state.text.split())), now)
    text = spoken_text(state.reply.chunks)
    ctx = _voice_ended(ctx, state.epoch, now, tuple(text.split()))
    ctx = _remember(ctx, Message("assistant", text))
    return _with(_follow_up(ctx, now), cmd.CommitHeard(state.turn, text, text, interrupted=False))


def _follow_up(ctx: Context, now: int) -> Outcome:
    """A reply was heard to its end: listen a little for a follow-up question without the wake word (not while
    the breaker holds: then only the wake word is trusted to address the assistant)."""
    if ctx.alarms_due or ctx.config.follow_up_samples <= 0 or _suspended(ctx):
        return _to_idle(ctx, now)
    turn, ctx = _new_turn(ctx)
    return _open_listening(ctx, turn, now, follow_up=True)


def on_stopped(state: State, ctx: Context, event: ev.PlaybackStopped, now: int) -> Outcome:
    """A cut epoch faded out: commit exactly the words played before the cut (invariant 5)."""
    cut = next((c for c in ctx.cut_replies if c.epoch == event.epoch), None)
    if event.epoch == ctx.startup_epoch:
        ctx = replace(ctx, startup_epoch=0)
    if cut is None:
        ctx = _voice_ended(ctx, event.epoch, now)  # an announcement's words were noted when it was cut
        return (
            state,
            ctx,
            (cmd.NoteIgnored(f"epoch {event.epoch} stopped; no reply of it awaits its heard text"),),
        )
    ctx = _voice_ended(ctx, event.epoch, now, sounded_words(cut.chunks, event.played_samples))
    ctx = replace(ctx, cut_replies=tuple(c for c in ctx.cut_replies if c.epoch != event.epoch))
    heard = heard_text(cut.chunks, event.played_samples)
    ctx = _remember(ctx, Message("assistant", heard, interrupted=True))
    return state, ctx, (cmd.CommitHeard(cut.turn, cut.full_text, heard, interrupted=True),)


def on_stale_drain(state: State, ctx: Context, event: ev.PlaybackDrained, now: int) -> Outcome:
    if event.epoch == ctx.startup_epoch:
        return state, replace(ctx, startup_epoch=0), (cmd.NoteIgnored("the start-up sound played to its end"),)
    if event.epoch == ctx.earcon_epoch:
        return state, ctx, (cmd.NoteIgnored(f"earcon epoch {event.epoch} played to its end"),)
    ctx = _voice_ended(ctx, event.epoch, now)  # it sounded until now, whatever it was
    return state, ctx, (cmd.NoteIgnored(f"epoch {event.epoch} drained after it stopped being current"),)


# ---------------------------------------------------------------------------------------------- interruption


Interruptible = Transcribing | Thinking | Speaking | Paused | Announcing


def _rule(state: Interruptible, ctx: Context) -> tuple[str, BargeInRule]:
    """The state's row of the barge-in matrix (a paused reply is still speaking)."""
    matrix = ctx.config.barge_in
    if isinstance(state, Paused):
        state = state.inner
    match state:
        case Transcribing():
            return "transcribing", matrix.transcribing
        case Thinking():
            return "thinking", matrix.thinking
        case Speaking():
            return "speaking", matrix.speaking
        case Announcing():
            return "announcing", matrix.announcing


def on_barge_in_wake(state: Interruptible, ctx: Context, event: ev.WakeDetected, now: int) -> Outcome:
    name, rule = _rule(state, ctx)
    if event.in_own_speech:
        return state, ctx, (cmd.NoteIgnored(_OWN_SPEECH),)
    if not rule.wake:
        return state, ctx, (cmd.NoteIgnored(f"the barge-in matrix does not let the wake word interrupt {name}"),)
    if event.score < rule.wake_threshold:
        why = f"wake score {event.score} is below the {rule.wake_threshold} needed to interrupt {name}"
        return state, ctx, (cmd.NoteIgnored(why),)
    ctx, out = _abandon(state, ctx)
    turn, ctx = _new_turn(ctx)
    return _listen_after_wake(ctx, turn, now, *out)


def on_voice_hint(state: Speaking | Announcing, ctx: Context, event: ev.VoiceHint, now: int) -> Outcome:
    """A hint of the user's voice over playback: pause at once (the echo stops, so the user becomes clear)."""
    name, rule = _rule(state, ctx)
    if not rule.speech:
        return state, ctx, (cmd.NoteIgnored(f"the barge-in matrix does not let speech interrupt {name}"),)
    if _suspended(ctx):
        return state, ctx, (_voice_suspended(name),)
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
    name, rule = _rule(state, ctx)
    if not rule.speech:
        return state, ctx, (cmd.NoteIgnored(f"the barge-in matrix does not let speech interrupt {name}"),)
    if _suspended(ctx):  # while paused, the confirm timer resumes playback
        return state, ctx, (_voice_suspended(name),)
    onset = min(event.onset_sample, state.hint_onset_sample) if isinstance(state, Paused) else event.onset_sample
    ctx, out = _abandon(state, ctx)
    turn, ctx = _new_turn(ctx)
    start = onset - ctx.config.preroll_samples
    due = now + ctx.config.max_utterance_samples
    return Hearing(turn, onset, start), ctx, (*out, cmd.StartTimer("utterance", turn, due))


def in_paused(handler: Handler) -> Handler:
    """Run a handler written for the paused state's inner state; the pause (and its timer) go on unless the
    handler leaves that state (a drained or failed reply), in which case the confirm timer is disarmed."""

    def paused_handler(state: Paused, ctx: Context, event: Any, now: int) -> Outcome:
        inner, ctx, out = handler(state.inner, ctx, event, now)
        if type(inner) is type(state.inner):
            return replace(state, inner=inner), ctx, out
        return inner, ctx, (cmd.CancelTimer("confirm", state.turn), *out)

    paused_handler.__name__ = f"paused_{handler.__name__}"
    return paused_handler


def on_paused_inner(state: Paused, ctx: Context, event: Any, now: int) -> Outcome:
    """Results and reports that do not concern the pause: handled by the row of the paused state's inner
    state, so a paused reply keeps streaming, synthesising and queueing exactly as while speaking."""
    row = TRANSITIONS[(type(state.inner), type(event))]
    return in_paused(row.handler)(state, ctx, event, now)


def on_failed(state: State, ctx: Context, event: ev.EngineFailed, now: int) -> Outcome:
    if event.turn != current_turn(state):
        return state, ctx, (cmd.NoteIgnored(_stale(state, event.turn, f"{event.job} failure")),)
    ctx, out = _abandon(state, ctx)
    if isinstance(state, Announcing) or (isinstance(state, Paused) and isinstance(state.inner, Announcing)):
        # The announcement itself failed (most likely its voice): an apology would fail the same way, and so
        # would a ring's next saying.
        ctx = replace(ctx, ring=None)
        return _with(_to_idle(ctx, now), *out, cmd.NoteIgnored(f"announcement failed: {event.reason}"))
    said, ctx, spoken = _say(ctx, APOLOGIES[event.job])
    return said, ctx, (*out, *spoken)


def on_stop(state: State, ctx: Context, event: ev.StopRequested, now: int) -> Outcome:
    ctx, out = _abandon(state, ctx)
    disarm = tuple(cmd.CancelTimer("alarm", a.alarm) for a in ctx.alarms_armed)
    # The start-up sound is the one earcon long enough to still play: a stop is the one thing that cuts it.
    startup = (cmd.CutPlayback(ctx.startup_epoch),) if ctx.startup_epoch else ()
    ctx = replace(ctx, alarms_armed=(), ring=None, startup_epoch=0)
    return Stopping(), ctx, (*startup, *out, *disarm)


def on_result_without_work(state: State, ctx: Context, event: Any, now: int) -> Outcome:
    """A turn's result reached a state that runs no such work: always a leftover of an older turn."""
    return state, ctx, (cmd.NoteIgnored(_stale(state, event.turn, type(event).__name__)),)


# --------------------------------------------------------------------------------------------- audio device


def on_device_lost(state: State, ctx: Context, event: ev.AudioDeviceLost, now: int) -> Outcome:
    """The sound card is gone: end the turn (nobody can hear it) and try to reopen with a growing back-off."""
    ctx, out = _abandon(state, ctx)
    attempt = state.attempt + 1 if isinstance(state, Degraded) else 1
    then: Literal["idle", "muted"] = (
        state.then if isinstance(state, Degraded) else "muted" if isinstance(state, Muted) else "idle"
    )
    backoff = min(ctx.config.reopen_first_samples << (attempt - 1), ctx.config.reopen_max_samples)
    degraded = Degraded(event.reason, attempt, then)
    return degraded, ctx, (*out, cmd.StartTimer("reopen", attempt, now + backoff))


def on_reopen_due(state: Degraded, ctx: Context, event: ev.TimerFired, now: int) -> Outcome:
    if event.kind == "reopen" and event.ref == state.attempt:
        return state, ctx, (cmd.ReopenAudio(state.attempt),)
    return on_timer(state, ctx, event, now)


def on_device_restored(state: Degraded, ctx: Context, event: ev.AudioDeviceRestored, now: int) -> Outcome:
    if state.then == "muted":
        return Muted(), ctx, ()
    return _to_idle(ctx, now)


# ---------------------------------------------------------------------------------------------------- mute


def on_mute(state: State, ctx: Context, event: ev.MuteChanged, now: int) -> Outcome:
    """Privacy first: muting ends whatever was going on and turns the microphone off at once."""
    if not event.muted:
        return state, ctx, (cmd.NoteIgnored("unmute while not muted: nothing to do"),)
    if isinstance(state, Degraded):
        listening = not event.muted
        return replace(state, then="muted" if event.muted else "idle"), ctx, (cmd.SetMicrophone(listening),)
    ctx, out = _abandon(state, ctx)
    ctx, chime = _chime(replace(ctx, ring=None), "mute")  # the user acted: a ringing timer is silenced too
    return Muted(), ctx, (*out, cmd.SetMicrophone(False), *chime)


def on_unmute(state: Muted, ctx: Context, event: ev.MuteChanged, now: int) -> Outcome:
    if event.muted:
        return state, ctx, (cmd.NoteIgnored("already muted"),)
    ctx, chime = _chime(ctx, "unmute") if not ctx.alarms_due else (ctx, ())  # an alarm announces itself
    return _with(_to_idle(ctx, now), cmd.SetMicrophone(True), *chime)


def on_job_cancelled(state: State, ctx: Context, event: ev.JobCancelled, now: int) -> Outcome:
    return state, ctx, (cmd.NoteIgnored(f"{event.job} of turn {event.turn} acknowledged its cancel"),)


# ---------------------------------------------------------------------------------------------------- table


def rows(
    states: type[State] | Iterable[type[State]],
    events: type[ev.Event] | Iterable[type[ev.Event]],
    handler: Handler,
    *targets: type[State],
    may_stay: bool = False,
) -> dict[tuple[type[State], type[ev.Event]], Row]:
    """Table rows for every (state, event) pair of the product.

    `targets` are the states the handler may lead to; a row without targets keeps its state (stale data,
    acknowledgements), and `may_stay` adds the source state to the targets of a row that sometimes moves.
    """
    state_list = [states] if isinstance(states, type) else list(states)
    event_list = [events] if isinstance(events, type) else list(events)
    return {
        (s, e): Row(handler, (*targets, s) if may_stay or not targets else targets)
        for s in state_list
        for e in event_list
    }


ALL_STATES = (
    Idle, Listening, Hearing, Transcribing, Thinking, Speaking, Paused, Announcing, Ringing, Muted, Degraded, Stopping
)  # fmt: skip
RUNNING = (Idle, Listening, Hearing, Transcribing, Thinking, Speaking, Paused, Announcing, Ringing)
LIVE = (*RUNNING, Muted, Degraded)
NO_WORK = (Idle, Listening, Ringing, Muted, Degraded, Stopping)
TURN_RESULTS = (ev.TranscriptReady, ev.ReplyDelta, ev.ReplyFinished, ev.AlarmRequested, ev.TtsChunkReady)
REPLY_RESULTS = TURN_RESULTS[1:]
REPLYING = (Thinking, Speaking)
TO_IDLE = (Idle, Announcing, Ringing)  # `_to_idle` resumes a ring, or announces an alarm that rang while busy
AFTER_REPLY = (Listening, *TO_IDLE)  # `_follow_up`: listen for a follow-up, or rest, or announce
INTERRUPTIBLE = (Transcribing, Thinking, Speaking, Paused, Announcing)

# Read a row as: in STATE, on EVENT, HANDLER decides, leading to TARGETS. Rows without targets keep the state;
# `may_stay` marks rows whose handler drops a stale event (wrong turn or epoch) and so may keep the state.
TRANSITIONS: dict[tuple[type[State], type[ev.Event]], Row] = {
    # --- the way in: wake word, then speech, then its end
    **rows(Idle, ev.Started, on_started),
    **rows((Idle, Ringing), ev.WakeDetected, on_wake_idle, Listening, may_stay=True),
    **rows(Ringing, ev.SpeechStarted, on_ring_speech, Hearing, may_stay=True),
    **rows((Listening, Hearing), ev.WakeDetected, on_wake_again, Listening, may_stay=True),
    **rows(Listening, ev.SpeechStarted, on_speech_started, Hearing),
    **rows(Hearing, ev.SpeechPaused, on_speech_paused),
    **rows(Hearing, ev.TranscriptReady, on_early_transcript),
    **rows(Hearing, ev.EngineFailed, on_early_failure),
    **rows(Hearing, ev.SpeechEnded, on_speech_ended, Transcribing, Thinking, Listening, *TO_IDLE),
    # --- work results of the current turn
    **rows(Transcribing, ev.TranscriptReady, on_transcript, Thinking, Listening, *TO_IDLE, may_stay=True),
    **rows(REPLYING, ev.ReplyDelta, on_reply_delta),
    **rows(Thinking, ev.ReplyFinished, on_reply_finished, *TO_IDLE, may_stay=True),
    **rows(Speaking, ev.ReplyFinished, on_reply_finished),
    **rows(Paused, REPLY_RESULTS, on_paused_inner),
    **rows(REPLYING, ev.AlarmRequested, on_alarm_requested),
    **rows(Thinking, ev.TtsChunkReady, on_tts_chunk, Speaking, may_stay=True),
    **rows(Speaking, ev.TtsChunkReady, on_tts_chunk),
    **rows(Announcing, ev.TtsChunkReady, on_announcement_chunk),
    **rows(INTERRUPTIBLE, ev.EngineFailed, on_failed, *TO_IDLE, may_stay=True),
    # --- results that no work of this state produces: leftovers of older turns, dropped as data
    **rows(NO_WORK, (*TURN_RESULTS, ev.EngineFailed), on_result_without_work),
    **rows(Hearing, REPLY_RESULTS, on_result_without_work),
    **rows(Transcribing, REPLY_RESULTS, on_result_without_work),
    **rows((*REPLYING, Paused), ev.TranscriptReady, on_result_without_work),
    **rows(Announcing, TURN_RESULTS[:4], on_result_without_work),
    # --- playback reports
    **rows(Speaking, ev.PlaybackDrained, on_drained, *AFTER_REPLY, may_stay=True),
    **rows(Paused, ev.PlaybackDrained, on_paused_inner, *AFTER_REPLY, may_stay=True),
    **rows(Announcing, ev.PlaybackDrained, on_drained, *TO_IDLE, may_stay=True),
    **rows((*NO_WORK, Hearing, Transcribing, Thinking), ev.PlaybackDrained, on_stale_drain),
    **rows(ALL_STATES, ev.PlaybackStopped, on_stopped),
    # --- timers: listen window, utterance limit, user alarms (an alarm rings in Idle, waits otherwise)
    **rows(Idle, ev.TimerFired, on_timer, Announcing, may_stay=True),
    **rows(Listening, ev.TimerFired, on_timer, *TO_IDLE, may_stay=True),
    **rows(Hearing, ev.TimerFired, on_timer, Transcribing, may_stay=True),
    **rows((Transcribing, Thinking, Announcing, Muted, Stopping), ev.TimerFired, on_timer),
    **rows(Paused, ev.TimerFired, on_timer, Speaking, Announcing, may_stay=True),
    **rows(Speaking, ev.TimerFired, on_lookahead_due),
    **rows(Ringing, ev.TimerFired, on_ring_due, *TO_IDLE, may_stay=True),
    # --- interruption, as the barge-in matrix allows: wake word; voice hint pauses, confirmed speech cancels
    **rows(INTERRUPTIBLE, ev.WakeDetected, on_barge_in_wake, Listening, may_stay=True),
    **rows((Speaking, Announcing), ev.VoiceHint, on_voice_hint, Paused, may_stay=True),
    **rows(INTERRUPTIBLE, ev.SpeechStarted, on_barge_in_speech, Hearing, may_stay=True),
    # --- the sound card: lost, reopened with back-off, restored
    **rows(LIVE, ev.AudioDeviceLost, on_device_lost, Degraded),
    **rows(Degraded, ev.TimerFired, on_reopen_due),
    **rows(Degraded, ev.AudioDeviceRestored, on_device_restored, *TO_IDLE, Muted),
    # --- privacy: mute ends everything and turns the mic off; unmute rests (or announces a rung alarm)
    **rows(RUNNING, ev.MuteChanged, on_mute, Muted, may_stay=True),
    **rows(Degraded, ev.MuteChanged, on_mute),
    **rows(Muted, ev.MuteChanged, on_unmute, *TO_IDLE, may_stay=True),
    # --- hearing trusted again: the echo canceller converged after the breaker tripped
    **rows(ALL_STATES, ev.EchoCancellerChanged, on_echo_canceller),
    # --- acknowledgements and shutdown
    **rows(ALL_STATES, ev.JobCancelled, on_job_cancelled),
    **rows(LIVE, ev.StopRequested, on_stop, Stopping),
}

_NOT_ADDRESSED = "speech without the wake word is not addressed to the assistant"
_ONLY_START = "end of speech in {}: only its start is an interruption signal"
_NOTHING_PLAYS = "a hint of voice only pauses playback, and nothing plays in {}"

IGNORED: dict[tuple[type[State], type[ev.Event]], str] = {
    (Idle, ev.SpeechStarted): _NOT_ADDRESSED,
    (Idle, ev.SpeechEnded): _NOT_ADDRESSED,
    (Listening, ev.SpeechEnded): "end of speech that began before listening opened (the wake word itself)",
    (Hearing, ev.SpeechStarted): "already hearing an utterance",
    **{(s, ev.SpeechEnded): _ONLY_START.format(s.__name__) for s in (Transcribing, Thinking, Speaking, Announcing)},
    (Paused, ev.SpeechEnded): "speech ended before it was confirmed: the confirm timer resumes playback",
    **{(s, ev.VoiceHint): _NOTHING_PLAYS.format(s.__name__) for s in (Idle, Transcribing, Thinking, Degraded)},
    (Listening, ev.VoiceHint): "while listening, confirmed speech (SpeechStarted) starts the utterance",
    (Hearing, ev.VoiceHint): "already hearing an utterance",
    **{
        (s, ev.SpeechPaused): "a pause only matters within an utterance being heard"
        for s in ALL_STATES
        if s is not Hearing
    },
    (Paused, ev.VoiceHint): "already paused: waiting for the hint to be confirmed",
    (Ringing, ev.VoiceHint): "nothing plays between two sayings of a ringing timer: confirmed speech is heard",
    (Ringing, ev.SpeechEnded): "end of speech that began before the ring's gap: only a start is heard",
    **{(s, ev.Started): "the loop starts once, in Idle, before any other event" for s in ALL_STATES if s is not Idle},
    **{
        (s, ev.VoiceGateChanged): "a fact for the log and the timeline: how hearing tells the user from the echo"
        for s in ALL_STATES
    },
    **{
        (s, ev.JobLeaked): "a cancelled job did not stop in time: its worker was replaced, its results are "
        "never posted (a fact for the log and the leak count)"
        for s in ALL_STATES
    },
    **{
        (Muted, e): "muted: the microphone is not listened to"
        for e in (ev.WakeDetected, ev.VoiceHint, ev.SpeechStarted, ev.SpeechEnded)
    },
    (Stopping, ev.MuteChanged): "stopping: the microphone is closing anyway",
    (Stopping, ev.WakeDetected): "stopping: nothing new starts",
    (Stopping, ev.SpeechStarted): "stopping: nothing new starts",
    (Stopping, ev.VoiceHint): "stopping: nothing new starts",
    (Stopping, ev.SpeechEnded): "stopping: nothing new starts",
    (Stopping, ev.StopRequested): "already stopping: nothing more to cancel",
    (Degraded, ev.WakeDetected): "no sound card: the wake word cannot have been heard through it",
    (Degraded, ev.SpeechStarted): "no sound card: speech cannot have been heard through it",
    (Degraded, ev.SpeechEnded): "no sound card: speech cannot have been heard through it",
    (Stopping, ev.AudioDeviceLost): "stopping: the sound card is no longer needed",
    (Stopping, ev.AudioDeviceRestored): "stopping: the sound card is no longer needed",
    **{(s, ev.AudioDeviceRestored): "the sound card was not lost in this state" for s in (*RUNNING, Muted)},
}

ILLEGAL: frozenset[tuple[type[State], type[ev.Event]]] = frozenset()


def step(spine: Spine, event: ev.Event, now: int) -> tuple[Spine, Commands]:
    """Decide: the next value of the machine and the commands to carry out, for `event` at sample `now`."""
    key = (type(spine.state), type(event))
    row = TRANSITIONS.get(key)
    if row is not None:
        state, ctx, out = row.handler(spine.state, spine.context, event, now)
        return Spine(state, ctx), out
    reason = IGNORED.get(key)
    if reason is not None:
        return spine, (cmd.NoteIgnored(reason),)
    raise IllegalEvent(f"{type(event).__name__} cannot happen in {type(spine.state).__name__}")
