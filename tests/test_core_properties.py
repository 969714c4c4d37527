"""Property tests over random event interleavings: the invariants (docs/architecture.md) that the core alone
holds.

The generator mixes events that make sense in the current state (so runs go deep: speaking, barge-ins,
alarms) with arbitrary ones carrying random turns and epochs (late results, duplicates, nonsense).
"""

from __future__ import annotations

from dataclasses import replace

import hypothesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device.core import commands as cmd
from device.core import events as ev
from device.core.machine import IGNORED, TRANSITIONS, step
from device.core.memory import SpokenChunk, own_words_match, sounded_words, spoken_text
from device.core.states import (
    Announcing,
    BargeInMatrix,
    BargeInRule,
    CoreConfig,
    Degraded,
    Hearing,
    Idle,
    Listening,
    Paused,
    Ringing,
    Speaking,
    Spine,
    Thinking,
    Transcribing,
    current_turn,
    initial,
)
from device.core.table import trigger_of
from device.core.voice import SELF_HEARD, is_own_voice
from tests.core_script import CONFIG, Driver, chunk

SMALL = st.integers(min_value=1, max_value=5)
WORDS = st.sampled_from(["Once upon a time. ", "There was a fox ", "who ran. ", "It's late! ", "ok "])


def arbitrary_event() -> st.SearchStrategy[ev.Event]:
    return st.one_of(
        st.builds(ev.WakeDetected, st.just("hey_jarvis"), st.just(0.9), st.integers(0, 10**6), st.booleans()),
        st.builds(ev.VoiceHint, st.integers(0, 10**6), st.floats(0.0, 1.0)),
        st.builds(ev.EchoCancellerChanged, st.booleans(), st.just(20.0)),
        st.builds(ev.SpeechStarted, st.integers(0, 10**6)),
        st.builds(ev.SpeechEnded, st.integers(0, 10**6)),
        st.builds(ev.SpeechPaused, st.integers(0, 10**6)),
        st.builds(ev.TranscriptReady, SMALL, st.sampled_from(["", "tell me a story", "hi"]), st.integers(0, 10**6)),
        st.builds(ev.ReplyDelta, SMALL, WORDS),
        st.builds(ev.ReplyFinished, SMALL),
        st.builds(ev.AlarmRequested, SMALL, st.integers(1, 5), st.just("5 second")),
        st.builds(lambda t, s: chunk(t, s, "one two three."), SMALL, st.integers(0, 4)),
        st.builds(ev.PlaybackDrained, SMALL, st.integers(0, 9000)),
        st.builds(ev.PlaybackStopped, SMALL, st.integers(0, 9000)),
        st.builds(
            ev.TimerFired, st.sampled_from(["listen", "utterance", "alarm", "confirm", "ring", "breaker"]), SMALL
        ),
        st.builds(ev.JobCancelled, SMALL, st.sampled_from(["asr", "reply", "tts"])),
        st.builds(ev.EngineFailed, SMALL, st.sampled_from(["asr", "reply", "tts"]), st.just("boom")),
        st.builds(ev.AudioDeviceLost, st.just("stream error")),
        st.just(ev.AudioDeviceRestored()),
        st.builds(ev.TimerFired, st.just("reopen"), st.integers(1, 3)),
        st.builds(ev.StopRequested, st.just("test")),
        st.builds(ev.MuteChanged, st.booleans(), st.just("test")),
        st.just(ev.Started()),
    )


def heard_texts(spine: Spine) -> st.SearchStrategy[str]:
    """What speech to text may return: requests, nothing, stops, and the echo of the assistant's last words."""
    own = spine.context.own_voice.words
    others = st.sampled_from(["story", "", "hi", "Hey Jarvis, stop.", "one two"])
    if not own:
        return others
    return others | st.sampled_from([" ".join(own[-n:]) for n in (1, 2, 3)])


def fitting_event(spine: Spine, now: int) -> st.SearchStrategy[ev.Event]:
    """Events the organs would plausibly post next in this state."""
    state = spine.state
    ctx = spine.context
    options: list[st.SearchStrategy[ev.Event]] = [st.just(ev.WakeDetected("hey_jarvis", 0.9, now))]
    if isinstance(state, Idle):
        options.append(st.just(ev.Started()))
    if isinstance(state, Ringing) and ctx.ring is not None:
        options += [st.just(ev.SpeechStarted(now)), st.just(ev.TimerFired("ring", ctx.ring.alarm.alarm))]
    if ctx.own_voice.suspended_since_sample is not None:
        options += [
            st.just(ev.EchoCancellerChanged(True, 20.0)),
            st.just(ev.TimerFired("breaker", ctx.own_voice.trips)),
        ]
    if ctx.startup_epoch:
        options.append(st.just(ev.PlaybackDrained(ctx.startup_epoch, 24000)))
    current_epoch = getattr(state.inner if isinstance(state, Paused) else state, "epoch", None)
    for epoch in ctx.own_voice.sounding:  # a cut announcement (or reply) reports it stopped
        if epoch != current_epoch:
            options.append(st.builds(ev.PlaybackStopped, st.just(epoch), st.integers(0, 9000)))
    if isinstance(state, Paused):
        options += [st.just(ev.TimerFired("confirm", state.turn)), st.just(ev.SpeechStarted(state.hint_onset_sample))]
        state = state.inner  # work and playback go on while paused
    if isinstance(state, Listening):
        options.append(st.just(ev.SpeechStarted(now)))
    if isinstance(state, Hearing):
        ends = st.integers(state.onset_sample, state.onset_sample + 40000)
        options += [st.builds(ev.SpeechEnded, ends), st.builds(ev.SpeechPaused, ends)]
        if state.early_to_sample is not None:  # the early transcription comes back, or the pause was the end
            texts = heard_texts(spine)
            options += [
                st.builds(ev.TranscriptReady, st.just(state.turn), texts, st.just(state.early_to_sample)),
                st.just(ev.SpeechEnded(state.early_to_sample)),
                st.just(ev.EngineFailed(state.turn, "asr", "boom")),
            ]
    if isinstance(state, Transcribing):
        texts = heard_texts(spine)
        options.append(st.builds(ev.TranscriptReady, st.just(state.turn), texts, st.just(state.to_sample)))
    if isinstance(state, Thinking | Speaking):
        turn, reply = state.turn, state.reply
        options += [st.builds(ev.ReplyDelta, st.just(turn), WORDS), st.just(ev.ReplyFinished(turn))]
        if len(reply.chunks) < reply.requested:
            seq = len(reply.chunks)
            options.append(st.just(chunk(turn, seq, "one two three.")))
    if isinstance(state, Speaking | Announcing):
        options.append(st.just(ev.VoiceHint(now, 0.9)))
    if isinstance(state, Speaking):
        options += [
            st.builds(ev.PlaybackDrained, st.just(state.epoch), st.integers(0, 9000)),
            st.just(ev.SpeechStarted(now)),
            st.just(ev.SpeechStarted(max(0, now - 4000))),  # an onset a little before: the echo of what played
        ]
    if isinstance(state, Announcing):
        options += [st.just(chunk(state.turn, 0, "Your timer is done.")), st.just(ev.PlaybackDrained(state.epoch, 1))]
    if spine.context.earcon_epoch:
        options.append(st.just(ev.PlaybackDrained(spine.context.earcon_epoch, 2720)))
    for cut in spine.context.cut_replies:
        options.append(st.builds(ev.PlaybackStopped, st.just(cut.epoch), st.integers(0, 9000)))
    if isinstance(state, Degraded):
        options += [st.just(ev.TimerFired("reopen", state.attempt)), st.just(ev.AudioDeviceRestored())]
    for alarm in spine.context.alarms_armed:
        options.append(st.just(ev.TimerFired("alarm", alarm.alarm)))
    return st.one_of(options)


WORK = (cmd.StartAsr, cmd.StartReply, cmd.StartTts, cmd.OpenPlayback, cmd.QueuePlayback)


class PlayedVoice:
    """The test's own account of the assistant's voice, from the events and commands alone (not the context):
    the words played (a drained epoch's text; a cut reply's words up to its stop report; a cut line whole, as
    the guard documents) and whether it sounds, or when it fell silent."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.sounding: set[int] = set()
        self.chunks: dict[int, tuple[SpokenChunk, ...]] = {}  # reply epoch -> what was queued in it
        self.cut: dict[int, tuple[SpokenChunk, ...]] = {}  # cut reply epochs waiting for their stop report
        self.ended_at: int | None = None

    def __repr__(self) -> str:
        return f"PlayedVoice(words={self.words[-20:]}, sounding={self.sounding}, ended_at={self.ended_at})"

    def see(self, before: Spine, event: ev.Event, out: tuple[cmd.Command, ...], now: int) -> None:
        state = before.state.inner if isinstance(before.state, Paused) else before.state
        for command in out:
            if isinstance(command, cmd.OpenPlayback):
                self.sounding.add(command.epoch)
            replying = isinstance(state, Thinking | Speaking)
            if isinstance(command, cmd.QueuePlayback) and isinstance(event, ev.TtsChunkReady) and replying:
                queued = SpokenChunk(event.seq, event.text, event.samples, event.word_end_samples)
                self.chunks[command.epoch] = (*self.chunks.get(command.epoch, ()), queued)
            if isinstance(command, cmd.CutPlayback):
                if isinstance(state, Announcing) and command.epoch == state.epoch:
                    self.words += state.text.split()
                elif command.epoch in self.chunks:
                    self.cut[command.epoch] = self.chunks[command.epoch]
        if isinstance(event, ev.PlaybackDrained | ev.PlaybackStopped):
            if event.epoch in self.sounding:
                self.sounding.discard(event.epoch)
                self.ended_at = now
            current = isinstance(state, Speaking | Announcing) and event.epoch == state.epoch
            if isinstance(event, ev.PlaybackDrained) and isinstance(state, Speaking) and current:
                self.words += spoken_text(state.reply.chunks).split()
            if isinstance(event, ev.PlaybackDrained) and isinstance(state, Announcing) and current:
                self.words += state.text.split()
            if isinstance(event, ev.PlaybackStopped) and event.epoch in self.cut:
                self.words += sounded_words(self.cut.pop(event.epoch), event.played_samples)

    def explains(self, prompt: str, onset: int, config: CoreConfig) -> bool:
        """Whether the prompt repeats what this test saw played, and began while it sounded or in its tail."""
        ended = self.ended_at
        in_time = bool(self.sounding) or (ended is not None and onset <= ended + config.echo_tail_samples)
        played = tuple(self.words[-config.own_words_window_words :])
        return in_time and own_words_match(
            prompt, played, min_fraction=config.own_words_min_fraction, one_word_tail=config.own_one_word_tail_words
        )


def check_own_voice_breaker_and_ring(
    before: Spine, event: ev.Event, out: tuple[cmd.Command, ...], after: Spine, now: int, voice: PlayedVoice
) -> None:
    """The issue 9 invariants of one step."""
    # Never answers itself (issue 9): no reply is asked for a transcript the guard classifies as the
    # assistant's own recent words, by the context it was decided in, and by what this test saw played.
    for command in out:
        if isinstance(command, cmd.StartReply):
            assert isinstance(before.state, Transcribing | Hearing)
            onset = before.state.onset_sample
            assert not is_own_voice(before.context, command.prompt, onset)
            assert not voice.explains(command.prompt, onset, after.context.config), (command.prompt, voice)
            assert after.context.ring is None  # a request silences a ringing timer

    # Statistics (`--hypothesis-show-statistics`): the runs do reach the guard, the breaker and the ring.
    for command in out:
        if isinstance(command, cmd.NoteIgnored) and command.reason.startswith(SELF_HEARD):
            hypothesis.event("heard itself")
        if isinstance(command, cmd.VoiceBargeIn):
            hypothesis.event(f"voice barge-in {'restored' if command.enabled else 'suspended'}")
    if isinstance(after.state, Ringing):
        hypothesis.event("a timer rang")

    # The breaker: while voice barge-in is suspended, voice interrupts nothing; it is suspended and restored
    # in turn, each visibly.
    held = before.context.own_voice.suspended_since_sample is not None
    voice_interrupts = (Transcribing, Thinking, Speaking, Paused, Announcing, Ringing)
    if held and isinstance(event, ev.VoiceHint | ev.SpeechStarted) and isinstance(before.state, voice_interrupts):
        assert after.state == before.state
    for command in out:
        if isinstance(command, cmd.VoiceBargeIn):
            assert command.enabled is held
    toggled = any(isinstance(c, cmd.VoiceBargeIn) for c in out)
    assert (after.context.own_voice.suspended_since_sample is not None) is (held is not toggled)

    # A ring is bounded: no saying of a ringing timer's line starts after alarm_ring_max_samples.
    ring = after.context.ring
    if ring is not None and isinstance(after.state, Announcing) and after.state != before.state:
        assert now - ring.started_at_sample < after.context.config.alarm_ring_max_samples


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_invariants_hold_over_random_interleavings(data: st.DataObject) -> None:
    with_earcons = initial(replace(CONFIG, earcons=True))
    d = Driver(with_earcons)
    now = 0
    cut_epochs: set[int] = set()
    epochs_opened: set[int] = set()
    transcripts: dict[tuple[int, int], str] = {}  # (turn, to_sample) -> text, as the ASR worker returned it
    voice = PlayedVoice()  # what the speaker said and when, kept here from the events alone
    for _ in range(data.draw(st.integers(1, 80), label="steps")):
        now += data.draw(st.integers(0, 8000), label="dt")
        event = data.draw(st.one_of(fitting_event(d.spine, now), arbitrary_event()), label="event")
        before = d.spine
        out = d.feed(event, now)  # never raises: the tables are total
        after = d.spine
        key = (type(before.state), trigger_of(event))
        voice.see(before, event, out, now)

        # The table is the truth: the handler leads only where its row says; an ignored pair changes nothing.
        if key in TRANSITIONS:
            assert type(after.state) in TRANSITIONS[key].targets, (key, after.state)
        else:
            assert key in IGNORED and after == before and out == (cmd.NoteIgnored(IGNORED[key]),)

        # Only the transcript of the audio up to the endpoint is ever answered (never an early one of a pause
        # the user spoke on past).
        if isinstance(event, ev.TranscriptReady):
            transcripts[(event.turn, event.to_sample)] = event.text
        for command in out:
            if isinstance(command, cmd.StartReply):
                if isinstance(before.state, Transcribing):
                    end = before.state.to_sample
                else:
                    assert isinstance(before.state, Hearing) and isinstance(event, ev.SpeechEnded)
                    end = event.end_sample
                assert command.prompt == " ".join(transcripts[(command.turn, end)].split())

        check_own_voice_breaker_and_ring(before, event, out, after, now, voice)

        # Invariant 2: work is started only for the current turn; a result of another turn changes nothing.
        for command in out:
            if isinstance(command, WORK):
                assert command.turn == current_turn(after.state), (command, after.state)
        result_turn = getattr(event, "turn", None)
        if result_turn is not None and result_turn != current_turn(before.state):
            assert after.state == before.state and all(isinstance(c, cmd.NoteIgnored) for c in out)

        # Invariant 4: a cut epoch is never fed, finished or reopened; audio goes only to the current epoch.
        for command in out:
            if isinstance(command, cmd.OpenPlayback | cmd.QueuePlayback | cmd.FinishPlayback):
                assert command.epoch not in cut_epochs
            if isinstance(command, cmd.QueuePlayback):
                assert isinstance(after.state, Speaking | Paused | Announcing)
                assert command.epoch == after.state.epoch
            if isinstance(command, cmd.CutPlayback):
                cut_epochs.add(command.epoch)
            # An earcon is an epoch of its own: never one a reply used, and never fed or cut afterwards.
            if isinstance(command, cmd.OpenPlayback | cmd.PlayEarcon):
                assert command.epoch not in epochs_opened
                epochs_opened.add(command.epoch)
            if isinstance(command, cmd.QueuePlayback | cmd.CutPlayback | cmd.PausePlayback):
                stopping_startup = isinstance(event, ev.StopRequested) and command.epoch == before.context.startup_epoch
                assert command.epoch != after.context.earcon_epoch or stopping_startup

        # Invariant 5 (the core's half): what was heard is a word prefix of what was said.
        for command in out:
            if isinstance(command, cmd.CommitHeard):
                heard, said = command.heard_text.split(), command.reply_text.split()
                assert heard == said[: len(heard)]
                assert command.interrupted or heard == said

    # Invariant 7: the same events at the same times give the same states and commands.
    replayed = Driver(with_earcons)
    for now_, event_, state_name, commands in d.history:
        assert replayed.feed(event_, now_) == commands
        assert type(replayed.spine.state).__name__ == state_name
    assert replayed.spine == d.spine


ECHO_CONFIG = replace(CONFIG, earcons=True, alarm_ring_max_samples=10 * 16000)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_never_answers_itself_over_random_echo_interleavings(data: st.DataObject) -> None:
    """From a story playing, with a timer armed: only plausible events, quick ones, echo-like transcripts. The
    assistant never answers its own words, the breaker holds voice off and gives it back visibly, a ring is
    bounded (`--hypothesis-show-statistics` shows how often each was reached)."""
    d = Driver(initial(ECHO_CONFIG))
    voice = PlayedVoice()
    script: list[tuple[int, ev.Event]] = [
        (0, ev.WakeDetected("hey_jarvis", 0.9, 0)),
        (8000, ev.SpeechStarted(4000)),
        (40000, ev.SpeechEnded(30000)),
        (45000, ev.TranscriptReady(1, "tell me a story", 30000)),
        (46000, ev.AlarmRequested(1, data.draw(st.integers(1, 20), label="alarm_s"), "tea")),
        (50000, ev.ReplyDelta(1, "one two three. four five six. ")),
        (52000, chunk(1, 0, "one two three.")),
    ]
    for now, event in script:
        before = d.spine
        voice.see(before, event, d.feed(event, now), now)
    assert isinstance(d.spine.state, Speaking)
    for _ in range(data.draw(st.integers(1, 150), label="steps")):
        now += data.draw(st.integers(0, 4000), label="dt")
        event = data.draw(fitting_event(d.spine, now), label="event")
        before = d.spine
        out = d.feed(event, now)
        voice.see(before, event, out, now)
        check_own_voice_breaker_and_ring(before, event, out, d.spine, now, voice)


@given(st.data())
def test_step_is_pure(data: st.DataObject) -> None:
    """Invariant 1: only step() decides, and deciding changes nothing but its result (frozen inputs)."""
    d = Driver()
    for _ in range(data.draw(st.integers(0, 20))):
        d.feed(data.draw(fitting_event(d.spine, 0)), 0)
    event = data.draw(arbitrary_event())
    snapshot = d.spine
    first = step(snapshot, event, 123)
    assert step(snapshot, event, 123) == first
    assert d.spine is snapshot and d.spine == snapshot


INTERRUPTED_TO = (Listening, Hearing, Paused)  # where an interruption leads
SPEECH = (ev.VoiceHint, ev.SpeechStarted)  # the speech signals of the barge-in matrix


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_signal_the_matrix_does_not_allow_never_interrupts(data: st.DataObject) -> None:
    """The barge-in matrix: a disallowed signal leaves the state and its work untouched, wherever it comes."""
    rule = st.builds(BargeInRule, st.booleans(), st.booleans())
    matrix = data.draw(st.builds(BargeInMatrix, rule, rule, rule, rule), label="matrix")
    d = Driver(initial(replace(CONFIG, barge_in=matrix)))
    now = 0
    for _ in range(data.draw(st.integers(1, 60), label="steps")):
        now += data.draw(st.integers(0, 8000), label="dt")
        before = d.spine.state
        event = data.draw(st.one_of(fitting_event(d.spine, now), arbitrary_event()), label="event")
        out = d.feed(event, now)
        inner = before.inner if isinstance(before, Paused) else before
        row = {Transcribing: matrix.transcribing, Thinking: matrix.thinking, Speaking: matrix.speaking}.get(
            type(inner), matrix.announcing if isinstance(inner, Announcing) else None
        )
        if row is None:
            continue
        signal = "wake" if isinstance(event, ev.WakeDetected) else "speech" if isinstance(event, SPEECH) else None
        if signal is not None and not getattr(row, signal):
            assert d.spine.state == before and all(isinstance(c, cmd.NoteIgnored) for c in out), (signal, before)
        if isinstance(d.spine.state, INTERRUPTED_TO) and not isinstance(before, INTERRUPTED_TO):
            assert signal is not None and getattr(row, signal), (event, before)
