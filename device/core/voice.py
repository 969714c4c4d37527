"""The assistant's own voice as the machine keeps account of it: what it said, when it sounded, whether it is
heard again (rules 8 and 9 in `machine.py`). Pure functions of the context; the handlers decide with them."""

from __future__ import annotations

from dataclasses import replace

from device.core import commands as cmd
from device.core.memory import (
    ends_in_stop_phrase,
    last_clause_is_stop_phrase,
    own_words_match,
    words_after_wake,
    words_without_fillers,
)
from device.core.states import Context
from device.core.table import Commands

SELF_HEARD = "self-interruption"
"""How a `NoteIgnored` for a transcript of the assistant's own voice begins (summaries count it)."""


def voice_opened(ctx: Context, epoch: int) -> Context:
    """An epoch of speech opened: the voice sounds until it drains or stops."""
    voice = ctx.own_voice
    return replace(ctx, own_voice=replace(voice, sounding=(*voice.sounding, epoch)))


def voice_said(ctx: Context, words: tuple[str, ...]) -> Context:
    """Add words the speaker played to the guard's window (it keeps the last `own_words_window_words`)."""
    if not words:
        return ctx
    voice, keep = ctx.own_voice, ctx.config.own_words_window_words
    return replace(ctx, own_voice=replace(voice, words=(*voice.words, *words)[-keep:]))


def voice_ended(ctx: Context, epoch: int, now: int, words: tuple[str, ...] = ()) -> Context:
    """An epoch of speech drained or stopped: its words were played, and the voice fell silent now."""
    voice = ctx.own_voice
    if epoch in voice.sounding:
        voice = replace(voice, sounding=tuple(e for e in voice.sounding if e != epoch), ended_at_sample=now)
    return voice_said(replace(ctx, own_voice=voice), words)


def is_own_voice(ctx: Context, prompt: str, onset_sample: int) -> bool:
    """Whether an utterance that began at `onset_sample` and says `prompt` is the assistant's own voice: it
    began while that voice sounded or within the echo tail after, and it says the last words played, or words
    of a cut reply whose stop report is still to come (how much of it played is not known yet)."""
    voice, config = ctx.own_voice, ctx.config
    if not talked_over(ctx, onset_sample):
        return False
    pending = tuple(w for cut in ctx.cut_replies if cut.epoch in voice.sounding for w in cut.full_text.split())
    windows = (voice.words, (*voice.words, *pending)) if pending else (voice.words,)
    return any(
        own_words_match(
            prompt, words, min_fraction=config.own_words_min_fraction, one_word_tail=config.own_one_word_tail_words
        )
        for words in windows
    )


def talked_over(ctx: Context, onset_sample: int) -> bool:
    """Whether an utterance that began at `onset_sample` began while the assistant's voice sounded or within
    its echo tail."""
    voice = ctx.own_voice
    ended = voice.ended_at_sample
    return bool(voice.sounding) or (ended is not None and onset_sample <= ended + ctx.config.echo_tail_samples)


STOP_TAIL_MAX_WORDS = 4
"""A talk-over of at most this many words (fillers such as "okay" and "now" aside) that ends in a stop phrase is a
stop: whisper often garbles a wake word said over the assistant's echo ("Hey Jarvis, stop." came back as "All of
this stop.", "All right, we stop.", "Okay, now we're gonna stop." and "Okay, y'all are missed. Stop." on real
streams, and all were answered). A longer one that ends so ("tell me why they had to stop") is a request."""


def short_interruption(ctx: Context, prompt: str, onset_sample: int, speech_samples: int | None = None) -> str | None:
    """Why a talk-over that is no stop phrase is still taken as a stop, or None: its speech lasted at most
    `short_interruption_max_samples` (`speech_samples`, when known), it is a word or two
    (`short_interruption_max_words`), short and ends in a stop phrase (`STOP_TAIL_MAX_WORDS`), or its last clause
    is one ("..., stop.")."""
    config = ctx.config
    words = words_after_wake(prompt, config.wake_phrase)
    if not talked_over(ctx, onset_sample):
        return None
    if speech_samples is not None and 0 < speech_samples <= config.short_interruption_max_samples:
        return "a talk-over too short for a request"
    limit = config.short_interruption_max_words
    if limit > 0 and len(words) <= limit:
        return "a talk-over of a word or two"
    content = words_without_fillers(prompt, config.wake_phrase)
    if len(content) <= STOP_TAIL_MAX_WORDS and ends_in_stop_phrase(prompt, config.stop_phrases, config.wake_phrase):
        return "a short talk-over ending in a stop phrase"
    if last_clause_is_stop_phrase(prompt, config.stop_phrases):
        return "a talk-over whose last clause is a stop phrase"
    return None


# ------------------------------------------------------------------------------------------------ breaker


def suspended(ctx: Context) -> bool:
    """Whether the breaker holds: voice barge-in is suspended and only the wake word interrupts."""
    return ctx.own_voice.suspended_since_sample is not None


def heard_itself_again(ctx: Context, now: int) -> Context:
    """Count a transcript that was the assistant's own voice (within `breaker_window_samples`)."""
    voice = ctx.own_voice
    recent = (*(t for t in voice.self_heard_at if now - t < ctx.config.breaker_window_samples), now)
    return replace(ctx, own_voice=replace(voice, self_heard_at=recent))


def maybe_trip(ctx: Context, now: int) -> tuple[Context, Commands]:
    """Trip the breaker when the assistant heard itself `breaker_self_heard` times within the window."""
    voice, config = ctx.own_voice, ctx.config
    if suspended(ctx) or config.breaker_self_heard <= 0 or len(voice.self_heard_at) < config.breaker_self_heard:
        return ctx, ()
    trips = voice.trips + 1
    ctx = replace(ctx, own_voice=replace(voice, suspended_since_sample=now, trips=trips))
    window_s, hold_s = config.breaker_window_samples / config.rate_hz, config.breaker_hold_samples / config.rate_hz
    why = (
        f"heard itself {len(voice.self_heard_at)} times within {window_s:g} s: only the wake word interrupts "
        f"until the echo canceller converges again, or for {hold_s:g} s"
    )
    return ctx, (cmd.VoiceBargeIn(False, why), cmd.StartTimer("breaker", trips, now + config.breaker_hold_samples))


def restore(ctx: Context, why: str, *also: cmd.Command) -> tuple[Context, Commands]:
    """Hearing is trusted again: voice barge-in is back, and self-hearings count from zero."""
    voice = replace(ctx.own_voice, suspended_since_sample=None, self_heard_at=())
    return replace(ctx, own_voice=voice), (*also, cmd.VoiceBargeIn(True, why))


def voice_suspended(name: str) -> cmd.NoteIgnored:
    return cmd.NoteIgnored(
        f"voice barge-in is suspended (the assistant kept hearing itself): only the wake word interrupts {name}"
    )
