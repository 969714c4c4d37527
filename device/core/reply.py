"""The way out: the reply streams in, is cut into sentences, synthesised a little ahead of the speaker, played
under one epoch, and heard; then a follow-up window opens. Also the playback reports of every epoch: drained
to its end, or stopped after a cut with the exact played-sample count (rules 2 and 3 in `machine.py`)."""

from __future__ import annotations

from dataclasses import replace
from typing import assert_never

from device.core import commands as cmd
from device.core import events as ev
from device.core.memory import (
    Message,
    SpokenChunk,
    first_clause,
    heard_text,
    normalise_space,
    sounded_words,
    split_sentences,
    spoken_text,
)
from device.core.moves import (
    APOLOGIES,
    ask,
    new_epoch,
    new_turn,
    open_listening,
    preceded_by,
    remember,
    say,
    stale,
    to_idle,
    tts_deadline,
)
from device.core.states import Announcing, Context, Reply, Speaking, State, Thinking
from device.core.table import Commands, Outcome
from device.core.voice import suspended, voice_ended, voice_opened


def on_reply_delta(state: Thinking | Speaking, ctx: Context, event: ev.ReplyDelta, now: int) -> Outcome:
    if event.turn != state.turn:
        return state, ctx, (cmd.NoteIgnored(stale(state, event.turn, "reply text")),)
    reply = replace(state.reply, text=state.reply.text + event.text)
    sentences, cut_at = split_sentences(reply.text, reply.sentences_cut_at)
    if not sentences and reply.requested == 0 and not reply.waiting:
        clause = first_clause(reply.text, reply.sentences_cut_at, ctx.config.first_clause_min_words)
        if clause is not None:
            sentences, cut_at = (clause[0],), clause[1]
    reply = replace(reply, sentences_cut_at=cut_at, waiting=(*reply.waiting, *sentences))
    if not sentences:  # text still growing: nothing new for synthesis (chunks and the timer pace the rest)
        return replace(state, reply=reply), ctx, ()
    return synthesise_ahead(replace(state, reply=reply), ctx, now)


def on_reply_finished(state: Thinking | Speaking, ctx: Context, event: ev.ReplyFinished, now: int) -> Outcome:
    if event.turn != state.turn:
        return state, ctx, (cmd.NoteIgnored(stale(state, event.turn, "end of reply")),)
    reply = state.reply
    rest = normalise_space(reply.text[reply.sentences_cut_at :])
    if rest:
        reply = replace(reply, sentences_cut_at=len(reply.text), waiting=(*reply.waiting, rest))
    reply = replace(reply, stream="closed")
    if reply.requested == 0 and not reply.waiting:
        # The reply ended without a word. Silence would leave the user unsure they were heard at all: it is a
        # reply that failed, and gets the same short apology (invariant 10), then rest.
        ctx = remember(ctx, Message("assistant", ""))
        said, ctx, spoken = say(ctx, APOLOGIES["reply"], now)
        return said, ctx, (cmd.CommitHeard(state.turn, "", "", interrupted=False), *spoken)
    nxt, ctx, out = synthesise_ahead(replace(state, reply=reply), ctx, now)
    assert isinstance(nxt, Thinking | Speaking)
    return nxt, ctx, out + finish_if_complete(nxt)


def ahead_samples(state: Thinking | Speaking, now: int) -> int:
    """Synthesised audio not yet played, estimated from the sample clock (0 while nothing plays yet)."""
    match state:
        case Thinking():
            return 0
        case Speaking():
            queued = sum(chunk.samples for chunk in state.reply.chunks)
            return max(0, queued - (now - state.playing_since_sample))
        case _:
            assert_never(state)


def synthesise_ahead(state: Thinking | Speaking, ctx: Context, now: int) -> Outcome:
    """Send waiting sentences to synthesis while the lookahead has room; otherwise wake up when it will."""
    reply, config = state.reply, ctx.config
    ahead = ahead_samples(state, now)
    out: list[cmd.Command] = []
    idle_before = reply.requested == len(reply.chunks)
    while reply.waiting and reply.requested - len(reply.chunks) < config.tts_in_flight:
        if reply.requested > 0 and ahead >= config.tts_lookahead_samples:
            break
        out.append(cmd.StartTts(state.turn, reply.requested, reply.waiting[0]))
        reply = replace(reply, waiting=reply.waiting[1:], requested=reply.requested + 1)
    if idle_before and reply.requested > len(reply.chunks):  # synthesis has work again: its deadline runs
        out.append(tts_deadline(state.turn, ctx, now))
    if reply.waiting and reply.requested == len(reply.chunks) and isinstance(state, Speaking):
        # Nothing in flight: no chunk will arrive to wake us, so a timer does when the lookahead has room.
        out.append(cmd.StartTimer("lookahead", state.turn, now + ahead - config.tts_lookahead_samples + 1))
    return replace(state, reply=reply), ctx, tuple(out)


def on_lookahead_due(state: Speaking, ctx: Context, event: ev.TimerFired, now: int) -> Outcome:
    """The speaker has played far enough that the lookahead has room for the sentences held back."""
    if event.ref != state.turn:
        return state, ctx, (cmd.NoteIgnored(stale(state, event.ref, "lookahead timer")),)
    return synthesise_ahead(state, ctx, now)


def on_tts_chunk(state: Thinking | Speaking, ctx: Context, event: ev.TtsChunkReady, now: int) -> Outcome:
    if event.turn != state.turn:
        return state, ctx, (cmd.NoteIgnored(stale(state, event.turn, "speech audio")),)
    speaking, ctx, out = play_chunk(state, ctx, state.reply, event, now)
    still_in_flight = speaking.reply.requested > len(speaking.reply.chunks)
    nxt, ctx, more = synthesise_ahead(speaking, ctx, now)
    assert isinstance(nxt, Speaking)
    if still_in_flight:  # a sentence came back and another is on its way: the deadline starts again
        more = (*more, tts_deadline(state.turn, ctx, now))
    elif nxt.reply.requested == len(nxt.reply.chunks):  # nothing asked of synthesis any more
        more = (*more, cmd.CancelTimer("tts", state.turn))
    return nxt, ctx, (*out, *more, *finish_if_complete(nxt))


def on_remote_audio(state: Thinking | Speaking, ctx: Context, event: ev.RemoteAudioReady, now: int) -> Outcome:
    """The backend's own voice (a realtime model): its words and their audio come together, so the text is the
    reply's as it is spoken and nothing goes to synthesis. Each stretch counts as requested and received at
    once, so the reply ends (`FinishPlayback`) as a synthesised one does: stream closed, every chunk queued."""
    if event.turn != state.turn:
        return state, ctx, (cmd.NoteIgnored(stale(state, event.turn, "remote speech audio")),)
    reply = state.reply
    text = f"{reply.text} {event.text}" if reply.text and event.text else reply.text + event.text
    reply = replace(reply, text=text, sentences_cut_at=len(text), requested=reply.requested + 1)
    speaking, ctx, out = play_chunk(state, ctx, reply, event, now)
    return speaking, ctx, (*out, *finish_if_complete(speaking))


def play_chunk(
    state: Thinking | Speaking, ctx: Context, reply: Reply, event: ev.TtsChunkReady | ev.RemoteAudioReady, now: int
) -> tuple[Speaking, Context, Commands]:
    """Queue a chunk of the reply's speech: the first opens the reply's epoch (Thinking -> Speaking)."""
    chunk = SpokenChunk(event.seq, event.text, event.samples, event.word_end_samples)
    reply = replace(reply, chunks=(*reply.chunks, chunk))
    out: list[cmd.Command] = []
    match state:
        case Thinking():  # the first audio of the reply: it plays under an epoch of its own
            epoch, ctx = new_epoch(ctx)
            ctx = voice_opened(ctx, epoch)
            out.append(cmd.OpenPlayback(epoch, state.turn))
            speaking = Speaking(state.turn, epoch, reply, playing_since_sample=now)
        case Speaking():
            speaking = replace(state, reply=reply)
            if ahead_samples(state, now) == 0:  # the speaker ran dry waiting for this chunk: it starts now
                speaking = replace(speaking, playing_since_sample=now - sum(c.samples for c in state.reply.chunks))
        case _:
            assert_never(state)
    out.append(cmd.QueuePlayback(speaking.epoch, state.turn, event.seq))
    return speaking, ctx, tuple(out)


def finish_if_complete(state: Thinking | Speaking) -> Commands:
    reply = state.reply
    done = reply.stream == "closed" and not reply.waiting and len(reply.chunks) == reply.requested
    if isinstance(state, Speaking) and done:
        return (cmd.FinishPlayback(state.epoch),)
    return ()


def on_announcement_chunk(state: Announcing, ctx: Context, event: ev.TtsChunkReady, now: int) -> Outcome:
    if event.turn != state.turn:
        return state, ctx, (cmd.NoteIgnored(stale(state, event.turn, "speech audio")),)
    return (
        replace(state, voiced=True),
        ctx,
        (
            cmd.CancelTimer("tts", state.turn),
            cmd.QueuePlayback(state.epoch, state.turn, event.seq),
            cmd.FinishPlayback(state.epoch),
        ),
    )


# ------------------------------------------------------------------------------------------ playback reports


def on_drained(state: Speaking | Announcing, ctx: Context, event: ev.PlaybackDrained, now: int) -> Outcome:
    """The current epoch played to its end: what it said was heard whole."""
    if event.epoch != state.epoch:
        return on_stale_drain(state, ctx, event, now)
    match state:
        case Announcing():
            return to_idle(voice_ended(ctx, state.epoch, now, tuple(state.text.split())), now)
        case Speaking():
            text = spoken_text(state.reply.chunks)
            ctx = voice_ended(ctx, state.epoch, now, tuple(text.split()))
            ctx = remember(ctx, Message("assistant", text))
            return preceded_by(follow_up(ctx, now), cmd.CommitHeard(state.turn, text, text, interrupted=False))
        case _:
            assert_never(state)


def follow_up(ctx: Context, now: int) -> Outcome:
    """A reply was heard to its end: listen a little for a follow-up question without the wake word (not while
    the breaker holds: then only the wake word is trusted to address the assistant)."""
    if ctx.alarms_due or ctx.config.follow_up_samples <= 0 or suspended(ctx):
        return to_idle(ctx, now)
    turn, ctx = new_turn(ctx)
    return open_listening(ctx, turn, now, follow_up=True)


def on_stale_drain(state: State, ctx: Context, event: ev.PlaybackDrained, now: int) -> Outcome:
    """An epoch that is not the current turn's drained: a chime, the start-up sound, or a reply already left."""
    if event.epoch == ctx.startup_epoch:
        return state, replace(ctx, startup_epoch=0), (cmd.NoteIgnored("the start-up sound played to its end"),)
    if event.epoch == ctx.earcon_epoch:
        return state, ctx, (cmd.NoteIgnored(f"earcon epoch {event.epoch} played to its end"),)
    ctx = voice_ended(ctx, event.epoch, now)  # it sounded until now, whatever it was
    return state, ctx, (cmd.NoteIgnored(f"epoch {event.epoch} drained after it stopped being current"),)


def on_stopped(state: State, ctx: Context, event: ev.PlaybackStopped, now: int) -> Outcome:
    """A cut epoch faded out: commit exactly the words played before the cut (invariant 5)."""
    cut = next((c for c in ctx.cut_replies if c.epoch == event.epoch), None)
    if event.epoch == ctx.startup_epoch:
        ctx = replace(ctx, startup_epoch=0)
    if cut is None:
        ctx = voice_ended(ctx, event.epoch, now)  # an announcement's words were noted when it was cut
        return (
            state,
            ctx,
            (cmd.NoteIgnored(f"epoch {event.epoch} stopped; no reply of it awaits its heard text"),),
        )
    ctx = voice_ended(ctx, event.epoch, now, sounded_words(cut.chunks, event.played_samples))
    ctx = replace(ctx, cut_replies=tuple(c for c in ctx.cut_replies if c.epoch != event.epoch))
    heard = heard_text(cut.chunks, event.played_samples)
    ctx = remember(ctx, Message("assistant", heard, interrupted=True))
    commit = cmd.CommitHeard(cut.turn, cut.full_text, heard, interrupted=True)
    if isinstance(state, Thinking) and state.held and not ctx.cut_replies:  # the request waited for this
        return preceded_by(ask(state, ctx), commit)
    return state, ctx, (commit,)
