"""The way in: the start-up sound, the wake word, the listening window, the utterance and its end, the
transcript, and the decision whether it is a request to answer (rules 6, 8 and 10 in `machine.py`)."""

from __future__ import annotations

from dataclasses import replace

from device.core import commands as cmd
from device.core import events as ev
from device.core.memory import is_stop_phrase, normalise_space
from device.core.moves import (
    abandon,
    ask,
    chime,
    hear_from,
    listen_after_wake,
    new_epoch,
    new_turn,
    open_listening,
    preceded_by,
    stale,
    to_idle,
)
from device.core.states import Context, Hearing, Idle, Listening, Reply, Ringing, State, Thinking, Transcribing
from device.core.table import Outcome
from device.core.voice import (
    SELF_HEARD,
    heard_itself_again,
    is_own_voice,
    maybe_trip,
    short_interruption,
    suspended,
)

OWN_SPEECH = "the wake word was in the assistant's own speech (found in the played audio first)"


def on_started(state: Idle, ctx: Context, event: ev.Started, now: int) -> Outcome:
    """The loop began: play the start-up sound, through the real output, so the echo canceller converges (and
    the echo model is calibrated) before the first answer."""
    if not ctx.config.startup_sound:
        return state, ctx, (cmd.NoteIgnored("the start-up sound is off"),)
    epoch, ctx = new_epoch(ctx)
    return state, replace(ctx, earcon_epoch=epoch, startup_epoch=epoch), (cmd.PlayEarcon(epoch, "startup"),)


def on_wake(state: Idle | Ringing, ctx: Context, event: ev.WakeDetected, now: int) -> Outcome:
    """The wake word while no turn runs: a new turn listens (a ringing timer stops: the user called)."""
    if event.in_own_speech:  # the tail of a reply that said the wake word, still echoing after it drained
        return state, ctx, (cmd.NoteIgnored(OWN_SPEECH),)
    ctx, out = abandon(state, ctx)  # a ring's next saying is not due any more
    turn, ctx = new_turn(ctx)
    return listen_after_wake(ctx, turn, now, *out)


def on_wake_again(state: Listening | Hearing, ctx: Context, event: ev.WakeDetected, now: int) -> Outcome:
    """The wake word again while listening: start the listening window afresh, same turn."""
    if event.in_own_speech:
        return state, ctx, (cmd.NoteIgnored(OWN_SPEECH),)
    cancel = (cmd.CancelTimer("utterance", state.turn),) if isinstance(state, Hearing) else ()
    return listen_after_wake(ctx, state.turn, now, *cancel)


def on_speech_started(state: Listening, ctx: Context, event: ev.SpeechStarted, now: int) -> Outcome:
    # No floor at the wake detection: it lags the wake word, and the user may already be speaking. Hearing
    # places the onset after the pause that follows the wake word.
    hearing = hear_from(ctx, state.turn, event.onset_sample, now, state.follow_up, addressed=state.addressed)
    return preceded_by(hearing, cmd.CancelTimer("listen", state.turn))


def on_listen_timeout(state: Listening, ctx: Context, event: ev.TimerFired, now: int) -> Outcome:
    """Nobody spoke in the listening window: rest (after a wake word, a chime says the window closed)."""
    if event.ref != state.turn:
        return state, ctx, (cmd.NoteIgnored(stale(state, event.ref, "listen timer")),)
    if state.follow_up or ctx.alarms_due:  # a follow-up window lapses quietly; an alarm speaks for itself
        return to_idle(ctx, now)
    ctx, sound = chime(ctx, "timeout")  # the wake word was heard but nothing followed: say we stopped
    return preceded_by(to_idle(ctx, now), *sound)


FAINT_WAKE_WINDOW_SAMPLES = 24000
"""A faint wake word is taken to open an utterance when the words after it begin at most this long (1.5 s) after
the utterance's onset: "Hey Jarvis" takes 0.5-1 s to say. Later in an utterance it is a name within a request,
which is transcribed whole."""


def on_faint_wake(state: Hearing, ctx: Context, event: ev.WakeHeardFaintly, now: int) -> Outcome:
    """The wake word, heard faintly near the start of the utterance (rule 10): transcribe only the words after it
    (from the pause that follows it), as after a detected wake word, so that whisper does not write it as other
    words that are then answered ("And our visit is top." for "Hey Jarvis, stop." over the echo, on a loaded real
    stream). The utterance is addressed: a short request after the wake word is no stop for its shortness alone.
    An early transcription that included the wake word is forgotten (the endpoint transcribes afresh)."""
    start = event.words_from_sample
    if not state.onset_sample < start <= state.onset_sample + FAINT_WAKE_WINDOW_SAMPLES:
        why = "a faint wake word with no pause after it near the utterance's start: the utterance is heard whole"
        return state, ctx, (cmd.NoteIgnored(why),)
    if start <= state.from_sample:
        return state, ctx, (cmd.NoteIgnored("a faint wake word: the audio transcribed starts after it already"),)
    after = replace(state, from_sample=start, addressed=True, early_to_sample=None, early_text=None)
    return after, ctx, ()


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
        return state, ctx, (cmd.NoteIgnored(stale(state, event.turn, "transcript")),)
    if event.to_sample != state.early_to_sample:
        return state, ctx, (cmd.NoteIgnored(outdated(event, state.early_to_sample)),)
    return replace(state, early_text=event.text), ctx, ()


def on_early_failure(state: Hearing, ctx: Context, event: ev.EngineFailed, now: int) -> Outcome:
    """An early transcription failed: forget it, so the endpoint starts one of its own (or apologises then)."""
    if event.turn != state.turn:
        return state, ctx, (cmd.NoteIgnored(stale(state, event.turn, f"{event.job} failure")),)
    forgot = replace(state, early_to_sample=None, early_text=None)
    return forgot, ctx, (cmd.NoteIgnored(f"early transcription failed ({event.reason}): the endpoint retries"),)


def outdated(event: ev.TranscriptReady, wanted: int | None) -> str:
    return f"transcript up to sample {event.to_sample} is outdated: the user spoke on (waiting for {wanted})"


def on_speech_ended(state: Hearing, ctx: Context, event: ev.SpeechEnded, now: int) -> Outcome:
    if event.end_sample - state.onset_sample < ctx.config.min_utterance_samples:
        # Too short to be a request: keep listening in the same window (its timer restarts).
        cancel = cmd.CancelTimer("utterance", state.turn)
        reopened = open_listening(ctx, state.turn, now, follow_up=state.follow_up, addressed=state.addressed)
        return preceded_by(reopened, cancel)
    if event.end_sample == state.early_to_sample:  # the pause was the end: its transcription is the one
        cancel = cmd.CancelTimer("utterance", state.turn)
        if state.early_text is None:
            waiting = Transcribing(state.turn, event.end_sample, state.onset_sample, state.addressed)
            return waiting, ctx, (cancel, asr_deadline(state.turn, ctx, now))
        speech = event.end_sample - state.onset_sample
        answered = answer(
            state.turn, state.early_text, ctx, now, state.onset_sample, speech_samples=speech, addressed=state.addressed
        )
        return preceded_by(answered, cancel)
    return transcribe(state, ctx, event.end_sample, now)


def on_utterance_limit(state: Hearing, ctx: Context, event: ev.TimerFired, now: int) -> Outcome:
    """The user spoke for `max_utterance_samples`: transcribe what there is."""
    if event.ref != state.turn:
        return state, ctx, (cmd.NoteIgnored(stale(state, event.ref, "utterance timer")),)
    return transcribe(state, ctx, now, now)


def transcribe(state: Hearing, ctx: Context, end_sample: int, now: int) -> Outcome:
    out = (
        cmd.CancelTimer("utterance", state.turn),
        cmd.StartAsr(state.turn, state.from_sample, end_sample),
        asr_deadline(state.turn, ctx, now),
    )
    return Transcribing(state.turn, end_sample, state.onset_sample, state.addressed), ctx, out


def asr_deadline(turn: int, ctx: Context, now: int) -> cmd.StartTimer:
    """Speech to text must answer within `asr_timeout_samples` (`faults.on_asr_overdue`)."""
    return cmd.StartTimer("asr", turn, now + ctx.config.asr_timeout_samples)


def on_transcript(state: Transcribing, ctx: Context, event: ev.TranscriptReady, now: int) -> Outcome:
    if event.turn != state.turn:
        return state, ctx, (cmd.NoteIgnored(stale(state, event.turn, "transcript")),)
    if event.to_sample != state.to_sample:
        return state, ctx, (cmd.NoteIgnored(outdated(event, state.to_sample)),)
    speech = state.to_sample - state.onset_sample
    answered = answer(
        state.turn, event.text, ctx, now, state.onset_sample, speech_samples=speech, addressed=state.addressed
    )
    return preceded_by(answered, cmd.CancelTimer("asr", state.turn))


def answer(
    turn: int,
    text: str,
    ctx: Context,
    now: int,
    onset_sample: int,
    *,
    heard: bool = True,
    speech_samples: int | None = None,
    addressed: bool = False,
) -> Outcome:
    """The words of an utterance that began at `onset_sample` and lasted `speech_samples` (when known) are known:
    ask for a reply, unless there is nothing to answer, it is a stop, or it is the assistant's own voice (then
    rest or listen on). Typed words (`heard=False`) cannot be its own voice nor a talk-over: only the stop phrases
    apply to them. An utterance that followed the wake word (`addressed`) may still be a talk-over (the story it
    cut was sounding a moment before), but its shortness alone does not make it a stop: "Hey Jarvis. What time is
    it?" over a story, the wake word found, had its 0.9 s question taken for one on the real-stream suite (4
    times in 4 runs, 3 of them heard right); a word or two still is one ("Hey Jarvis, stop." with the stop heard
    as "Um.")."""
    prompt = normalise_space(text)
    if not prompt:
        return preceded_by(to_idle(ctx, now), cmd.NoteIgnored("empty transcript: nothing to answer"))
    if is_stop_phrase(prompt, ctx.config.stop_phrases, ctx.config.wake_phrase):
        # Whatever was going on was cancelled when this utterance interrupted it; a stop starts nothing new, and
        # silences a ringing timer.
        ctx = replace(ctx, ring=None)
        note = cmd.NoteIgnored(f"stop phrase {prompt!r}: stopped, nothing to answer")
        return preceded_by(to_idle(ctx, now), note)
    if heard and is_own_voice(ctx, prompt, onset_sample):
        return heard_itself(ctx, turn, prompt, now)
    speech = None if addressed else speech_samples
    short = short_interruption(ctx, prompt, onset_sample, speech) if heard else None
    if short is not None:
        ctx = replace(ctx, ring=None)
        why = f"short interruption {prompt!r}: taken as a stop ({short}), nothing to answer"
        return preceded_by(to_idle(ctx, now), cmd.NoteIgnored(why))
    ctx = replace(ctx, ring=None)  # the user asked for something: they heard the ring
    if not heard and ctx.cut_replies:  # typed over an answer: ask once its heard text is in memory (`Thinking.held`)
        return Thinking(turn, Reply(prompt), held=True), ctx, ()
    return ask(Thinking(turn, Reply(prompt)), ctx)


def on_typed(state: Idle | Ringing | Listening | Hearing, ctx: Context, event: ev.TextTyped, now: int) -> Outcome:
    """Typed text while no answer runs: a new turn answers it as a transcript. A ring stops (unless it is empty);
    a listening window or an utterance being heard gives way to it, as to a wake word."""
    return answer_typed(state, ctx, event, now)


def answer_typed(state: State, ctx: Context, event: ev.TextTyped, now: int) -> Outcome:
    """Cancel whatever runs in `state`, and answer the typed text in a new turn (shared with `interrupt`)."""
    ctx, out = abandon(state, ctx)
    turn, ctx = new_turn(ctx)
    return preceded_by(answer(turn, event.text, ctx, now, now, heard=False), *out)


def heard_itself(ctx: Context, turn: int, prompt: str, now: int) -> Outcome:
    """The transcript is the assistant's own voice: answer nothing, count it, and listen on (a ring goes on)."""
    config = ctx.config
    ctx = heard_itself_again(ctx, now)
    window_s = config.breaker_window_samples / config.rate_hz
    note = cmd.NoteIgnored(
        f"{SELF_HEARD}: {prompt!r} is the assistant's own voice (it began while that voice sounded or in its echo "
        f"tail, and repeats what it just said): not a user turn ({len(ctx.own_voice.self_heard_at)} within "
        f"{window_s:g} s)"
    )
    ctx, breaker = maybe_trip(ctx, now)
    if ctx.ring is not None or ctx.alarms_due or suspended(ctx) or config.follow_up_samples <= 0:
        return preceded_by(to_idle(ctx, now), note, *breaker)
    return preceded_by(open_listening(ctx, turn, now, follow_up=True), note, *breaker)
