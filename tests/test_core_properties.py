"""Property tests over random event interleavings: the invariants of design §2 that the core alone holds.

The generator mixes events that make sense in the current state (so runs go deep: speaking, barge-ins,
alarms) with arbitrary ones carrying random turns and epochs (late results, duplicates, nonsense).
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device.core import commands as cmd
from device.core import events as ev
from device.core.machine import IGNORED, TRANSITIONS, step
from device.core.states import (
    Announcing,
    BargeInMatrix,
    BargeInRule,
    Degraded,
    Hearing,
    Listening,
    Paused,
    Speaking,
    Spine,
    Thinking,
    Transcribing,
    current_turn,
    initial,
)
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
        st.builds(ev.TimerFired, st.sampled_from(["listen", "utterance", "alarm", "confirm"]), SMALL),
        st.builds(ev.JobCancelled, SMALL, st.sampled_from(["asr", "reply", "tts"])),
        st.builds(ev.EngineFailed, SMALL, st.sampled_from(["asr", "reply", "tts"]), st.just("boom")),
        st.builds(ev.AudioDeviceLost, st.just("stream error")),
        st.just(ev.AudioDeviceRestored()),
        st.builds(ev.TimerFired, st.just("reopen"), st.integers(1, 3)),
        st.builds(ev.StopRequested, st.just("test")),
        st.builds(ev.MuteChanged, st.booleans(), st.just("test")),
    )


def fitting_event(spine: Spine, now: int) -> st.SearchStrategy[ev.Event]:
    """Events the organs would plausibly post next in this state."""
    state = spine.state
    options: list[st.SearchStrategy[ev.Event]] = [st.just(ev.WakeDetected("hey_jarvis", 0.9, now))]
    if isinstance(state, Paused):
        options += [st.just(ev.TimerFired("confirm", state.turn)), st.just(ev.SpeechStarted(state.hint_onset_sample))]
        state = state.inner  # work and playback go on while paused
    if isinstance(state, Listening):
        options.append(st.just(ev.SpeechStarted(now)))
    if isinstance(state, Hearing):
        ends = st.integers(state.onset_sample, state.onset_sample + 40000)
        options += [st.builds(ev.SpeechEnded, ends), st.builds(ev.SpeechPaused, ends)]
        if state.early_to_sample is not None:  # the early transcription comes back, or the pause was the end
            texts = st.sampled_from(["story", "", "hi"])
            options += [
                st.builds(ev.TranscriptReady, st.just(state.turn), texts, st.just(state.early_to_sample)),
                st.just(ev.SpeechEnded(state.early_to_sample)),
                st.just(ev.EngineFailed(state.turn, "asr", "boom")),
            ]
    if isinstance(state, Transcribing):
        texts = st.sampled_from(["story", "", "hi"])
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


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_invariants_hold_over_random_interleavings(data: st.DataObject) -> None:
    with_earcons = initial(replace(CONFIG, earcons=True))
    d = Driver(with_earcons)
    now = 0
    cut_epochs: set[int] = set()
    epochs_opened: set[int] = set()
    transcripts: dict[tuple[int, int], str] = {}  # (turn, to_sample) -> text, as the ASR worker returned it
    for _ in range(data.draw(st.integers(1, 80), label="steps")):
        now += data.draw(st.integers(0, 8000), label="dt")
        event = data.draw(st.one_of(fitting_event(d.spine, now), arbitrary_event()), label="event")
        before = d.spine
        out = d.feed(event, now)  # never raises: the tables are total
        after = d.spine
        key = (type(before.state), type(event))

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
                assert command.epoch != after.context.earcon_epoch

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


SIGNALS = ("wake", "speech")
INTERRUPTED_TO = (Listening, Hearing, Paused)  # where an interruption leads


def signal_event(signal: str, now: int) -> ev.Event:
    return ev.WakeDetected("hey_jarvis", 0.9, now) if signal == "wake" else ev.SpeechStarted(now)


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


SPEECH = (ev.VoiceHint, ev.SpeechStarted)
