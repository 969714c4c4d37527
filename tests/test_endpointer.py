"""The endpointer (device/runtime/endpointer.py): its states and table, driven with probabilities at explicit
sample times, and its equivalence with the endpointer it replaced (a frozen copy below) on random input."""

from __future__ import annotations

import types
from collections import deque
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from device.core.events import Event, SpeechEnded, SpeechPaused, SpeechStarted, VoiceHint
from device.runtime.endpointer import (
    STRONGER_BY,
    TABLE,
    WATCHED,
    Endpointer,
    EndpointerConfig,
    Gap,
    Hinted,
    Input,
    Onset,
    Paused,
    Quiet,
    Speaking,
    State,
)
from tests.hearing_fakes import CHUNK
from tests.hearing_fakes import CONFIG as HEARING_CONFIG

CONFIG = HEARING_CONFIG.endpointer  # the endpointer of the hearing tests, in chunks of CHUNK samples


def push_all(
    endpointer: Endpointer, probabilities: list[float], first_chunk: int = 0, hints: bool = False
) -> list[Event | None]:
    """The fact each chunk revealed (None for none; hints only if asked); two facts from one chunk fail here."""
    out: list[Event | None] = []
    for i, p in enumerate(probabilities):
        facts = endpointer.push(p, (first_chunk + i) * CHUNK, CHUNK)
        facts = [f for f in facts if hints or not isinstance(f, VoiceHint)]
        assert len(facts) <= 1, facts
        out.append(facts[0] if facts else None)
    return out


def test_endpointer_starts_at_the_first_chunk_of_the_run_that_lasted_start_samples() -> None:
    endpointer = Endpointer(CONFIG)
    events = push_all(endpointer, [0.9, 0.9, 0.1, 0.6, 0.5, 0.7, 0.9], hints=True)
    # The first run (chunks 0-1) is a hint, then broken by chunk 2; the run from chunk 3 hints at chunk 4 (its
    # peak so far is 0.6) and lasts 3 chunks at chunk 5.
    assert events == [None, VoiceHint(0, 0.9), None, None, VoiceHint(3 * CHUNK, 0.6), SpeechStarted(3 * CHUNK), None]


def test_a_hint_and_the_start_may_come_from_the_same_chunk() -> None:
    endpointer = Endpointer(replace(CONFIG, hint_samples=3 * CHUNK))
    assert endpointer.push(0.7, 0, CHUNK) == endpointer.push(0.8, CHUNK, CHUNK) == []
    assert endpointer.push(0.6, 2 * CHUNK, CHUNK) == [VoiceHint(0, 0.8), SpeechStarted(0)]


def test_endpointer_ends_after_end_silence_at_the_first_silent_chunk() -> None:
    endpointer = Endpointer(CONFIG)
    events = push_all(endpointer, [0.9, 0.9, 0.9, 0.2, 0.2, 0.9, 0.3, 0.1, 0.0, 0.34, 0.0])
    assert events == [
        *[None, None, SpeechStarted(0)],
        *[None, None, None],  # two silent chunks, then voice again: the silence run restarts
        *[None, None, None, SpeechEnded(6 * CHUNK), None],
    ]


def test_endpointer_reports_each_pause_once_with_the_end_the_utterance_will_have() -> None:
    endpointer = Endpointer(replace(CONFIG, pause_samples=2 * CHUNK))
    events = push_all(endpointer, [0.9, 0.9, 0.9, 0.2, 0.2, 0.2, 0.9, 0.3, 0.1, 0.0, 0.0, 0.0])
    assert events == [
        *[None, None, SpeechStarted(0)],
        *[None, SpeechPaused(3 * CHUNK), None],  # a pause the user then speaks on past
        None,
        *[None, SpeechPaused(7 * CHUNK), None, SpeechEnded(7 * CHUNK), None],  # a pause that was the end
    ]
    no_pauses = Endpointer(replace(CONFIG, pause_samples=0))
    assert SpeechPaused(3 * CHUNK) not in push_all(no_pauses, [0.9, 0.9, 0.9, 0.2, 0.2, 0.2, 0.0])


def test_endpointer_hysteresis_between_the_off_and_on_thresholds() -> None:
    endpointer = Endpointer(CONFIG)
    # Between the thresholds (0.35 <= p < 0.5): not enough to start speech...
    assert push_all(endpointer, [0.45, 0.45, 0.45, 0.45]) == [None] * 4
    assert push_all(endpointer, [0.5, 0.5, 0.5], first_chunk=4) == [None, None, SpeechStarted(4 * CHUNK)]
    # ...but enough to keep it going: silence is below the off threshold only.
    assert push_all(endpointer, [0.35, 0.4, 0.49, 0.36, 0.35, 0.35], first_chunk=7) == [None] * 6
    assert push_all(endpointer, [0.34, 0.2, 0.2, 0.2], first_chunk=13) == [None, None, None, SpeechEnded(13 * CHUNK)]


def test_endpointer_reset_forgets_a_run_and_an_utterance() -> None:
    endpointer = Endpointer(CONFIG)
    push_all(endpointer, [0.9, 0.9])
    endpointer.reset()
    assert push_all(endpointer, [0.9, 0.9, 0.9], first_chunk=2) == [None, None, SpeechStarted(2 * CHUNK)]
    endpointer.reset()  # no longer speaking: silence ends nothing, voice must build a new run
    assert push_all(endpointer, [0.0] * 5 + [0.9] * 3, first_chunk=5) == [None] * 7 + [SpeechStarted(10 * CHUNK)]


def test_endpointer_reset_during_speech_finds_the_onset_after_the_last_pause() -> None:
    """The wake word is scored late, when the user already speaks again: the utterance starts after the pause."""
    endpointer = Endpointer(CONFIG)
    # wake word (speech), a pause of two chunks, then the request already under way at the reset
    push_all(endpointer, [0.9, 0.9, 0.9, 0.1, 0.1, 0.9, 0.9])
    endpointer.reset()
    assert push_all(endpointer, [0.9], first_chunk=7) == [SpeechStarted(5 * CHUNK)]


def test_a_reset_as_of_an_earlier_sample_starts_the_request_where_it_began() -> None:
    """A wake word found late (the second grid's catch-up): by then the request has been under way for longer than
    the lookback. The reset as of the wake word's frame finds its start after the pause, then replays the chunks
    heard since. Before, the lookback ran back from the late reset, all voice, and the request started there."""
    endpointer = Endpointer(CONFIG)
    # "Hey Jarvis" (speech), a pause of two chunks, then a request of 23 chunks (longer than the lookback, 15.6)
    push_all(endpointer, [0.9] * 6 + [0.1, 0.1] + [0.9] * 23)
    # the wake word's frame ended with chunk 8, the request's first
    assert endpointer.reset(at_sample=at(9)) == [VoiceHint(at(8), 0.9), SpeechStarted(at(8))]
    assert push_all(endpointer, [0.0] * 4, first_chunk=31) == [None, None, None, SpeechEnded(at(31))]


def test_a_late_reset_inside_the_wake_word_replays_its_tail_and_the_pause() -> None:
    """The wake word's frame ended inside "Jarvis": its tail, then the pause, end that run short of speech, and the
    request that follows starts speech at its own first chunk."""
    endpointer = Endpointer(CONFIG)
    push_all(endpointer, [0.9] * 6 + [0.1] * 3 + [0.9] * 20)
    assert endpointer.reset(at_sample=at(5)) == [VoiceHint(at(9), 0.9), SpeechStarted(at(9))]


def test_a_reset_as_of_now_replays_nothing() -> None:
    endpointer = Endpointer(CONFIG)
    push_all(endpointer, [0.9] * 6 + [0.1, 0.1, 0.9])
    assert endpointer.reset(at_sample=at(9)) == [] and state_of(endpointer) == Onset(at(8), 0.0)


def test_endpointer_reset_in_silence_starts_afresh() -> None:
    endpointer = Endpointer(CONFIG)
    push_all(endpointer, [0.9, 0.9, 0.1])
    endpointer.reset()
    assert push_all(endpointer, [0.9, 0.9, 0.9], first_chunk=3) == [None, None, SpeechStarted(3 * CHUNK)]


def state_of(endpointer: Endpointer) -> State:
    """The endpointer's state, read afresh (a call, so mypy does not keep a type narrowed by an earlier assert)."""
    return endpointer.state


def at(chunk: int) -> int:
    return chunk * CHUNK


def test_the_table_covers_every_input_each_state_can_meet_and_nothing_else() -> None:
    levels = (Input.VOICE, Input.MURMUR, Input.SILENCE)
    expected = {(state, level) for state in (Quiet, Onset, Hinted, Speaking, Gap, Paused) for level in levels}
    expected.add((Hinted, Input.STRONGER))
    expected |= {(state, watched) for state, inputs in WATCHED.items() for watched in inputs}
    assert set(TABLE) == expected


def test_a_short_blip_hints_but_never_starts() -> None:
    endpointer = Endpointer(CONFIG)
    assert endpointer.push(0.8, at(0), CHUNK) == []
    assert state_of(endpointer) == Onset(at(0), 0.8)
    assert endpointer.push(0.9, at(1), CHUNK) == [VoiceHint(at(0), 0.9)]
    assert state_of(endpointer) == Hinted(at(0), 0.9)
    assert endpointer.push(0.4, at(2), CHUNK) == []  # a murmur is not voice outside speech: the run ends
    assert (state_of(endpointer), endpointer.voiced) == (Quiet(), False)


def test_a_hint_that_was_soft_hints_again_when_the_run_grows_surer() -> None:
    """The spine pauses only on a hint as probable as its rule asks: a soft first chunk must not hide the sure
    one after it until speech starts (the echo suite's "Hey Jarvis" at 0.6 then 1.0 played on 190 ms)."""
    endpointer = Endpointer(replace(CONFIG, hint_samples=CHUNK, start_samples=7 * CHUNK))
    steps = [
        (0.6, [VoiceHint(at(0), 0.6)], Hinted(at(0), 0.6)),
        (0.699, [], Hinted(at(0), 0.6)),  # less than STRONGER_BY (0.1) surer: no hint at every step of a climb
        (0.55, [], Hinted(at(0), 0.6)),
        (0.7, [VoiceHint(at(0), 0.7)], Hinted(at(0), 0.7)),
        (0.99, [VoiceHint(at(0), 0.99)], Hinted(at(0), 0.99)),
        (1.0, [], Hinted(at(0), 0.99)),
        (1.0, [SpeechStarted(at(0))], Speaking()),  # the chunk that starts speech hints no more
    ]
    for chunk, (probability, facts, state) in enumerate(steps):
        assert (endpointer.push(probability, at(chunk), CHUNK), endpointer.state) == (facts, state), chunk


def test_hint_then_start_then_a_pause_then_the_end() -> None:
    endpointer = Endpointer(replace(CONFIG, pause_samples=2 * CHUNK))
    steps = [
        (0.6, [], Onset(at(0), 0.6)),
        (0.9, [VoiceHint(at(0), 0.9)], Hinted(at(0), 0.9)),
        (0.7, [SpeechStarted(at(0))], Speaking()),
        (0.4, [], Speaking()),  # a murmur keeps speech going
        (0.1, [], Gap(at(4))),
        (0.2, [SpeechPaused(at(4))], Paused(at(4))),
        (0.0, [], Paused(at(4))),
        (0.0, [SpeechEnded(at(4))], Quiet()),
    ]
    for chunk, (probability, facts, state) in enumerate(steps):
        assert (endpointer.push(probability, at(chunk), CHUNK), endpointer.state) == (facts, state), chunk


def test_speech_after_a_pause_goes_on_and_the_next_silence_may_pause_again() -> None:
    endpointer = Endpointer(replace(CONFIG, pause_samples=2 * CHUNK))
    for chunk, probability in enumerate([0.9, 0.9, 0.9, 0.0, 0.0]):
        endpointer.push(probability, at(chunk), CHUNK)
    assert state_of(endpointer) == Paused(at(3))
    assert endpointer.push(0.5, at(5), CHUNK) == []
    assert state_of(endpointer) == Speaking()
    assert endpointer.push(0.0, at(6), CHUNK) == []
    assert endpointer.push(0.0, at(7), CHUNK) == [SpeechPaused(at(6))]


def test_a_silence_that_reaches_the_end_at_once_is_no_pause() -> None:
    endpointer = Endpointer(replace(CONFIG, start_samples=CHUNK, end_silence_samples=CHUNK, pause_samples=CHUNK))
    assert endpointer.push(0.9, at(0), CHUNK) == [SpeechStarted(at(0))]
    assert endpointer.push(0.0, at(1), CHUNK) == [SpeechEnded(at(1))]


def test_without_a_hint_length_below_the_start_speech_starts_unhinted() -> None:
    endpointer = Endpointer(replace(CONFIG, hint_samples=4 * CHUNK))
    assert [endpointer.push(0.9, at(chunk), CHUNK) for chunk in range(3)] == [[], [], [SpeechStarted(0)]]


def test_reset_in_speech_goes_quiet_or_resumes_the_run_under_way() -> None:
    endpointer = Endpointer(CONFIG)
    for chunk, probability in enumerate([0.9, 0.9, 0.9, 0.0]):
        endpointer.push(probability, at(chunk), CHUNK)
    assert state_of(endpointer) == Gap(at(3))
    endpointer.reset()
    assert (state_of(endpointer), endpointer.voiced) == (Quiet(), False)
    endpointer.push(0.9, at(4), CHUNK)
    endpointer.reset()  # voice under way since the pause: the run resumes from its first chunk, peak forgotten
    assert (state_of(endpointer), endpointer.voiced) == (Onset(at(4), 0.0), True)
    assert endpointer.push(0.6, at(5), CHUNK) == [VoiceHint(at(4), 0.6)]


def test_reset_with_voice_all_through_the_lookback_starts_the_run_after_the_reset() -> None:
    endpointer = Endpointer(CONFIG)
    for chunk in range(20):
        endpointer.push(0.9, at(chunk), CHUNK)
    endpointer.reset()
    assert state_of(endpointer) == Onset(at(20), 0.0)


# --------------------------------------------------------------------------- the endpointer it replaced


class FrozenEndpointer:
    """`Endpointer` as it was in device/runtime/hearing.py before it became a table (state in booleans), kept
    verbatim but for the config's names: the reference the new one must match, event for event, but for the
    hints a hinted run repeats when it grows surer (added since)."""

    def __init__(self, config: Any) -> None:
        self._config = config
        self._recent: deque[tuple[int, int, float]] = deque()  # (chunk start, end, probability), lookback only
        self.reset()

    @property
    def voiced(self) -> bool:
        """Within an utterance, or within a run of voice that may become one."""
        return self._speaking or self._run_start is not None

    def reset(self) -> None:
        """Forget the current utterance; if speech is under way, its run starts after the last pause."""
        self._speaking = False
        self._paused = False  # the current silence within an utterance was reported as a pause
        self._hinted = False
        self._run_peak = 0.0
        self._run_start: int | None = None  # first sample of the current run of on (or off) chunks
        if self._recent and self._recent[-1][2] >= self._config.vad_on_threshold:
            for start, _end, probability in reversed(self._recent):
                if probability < self._config.vad_on_threshold:
                    break
                self._run_start = start
            if self._run_start == self._recent[0][0]:  # no pause within the lookback: start after the reset
                self._run_start = self._recent[-1][1]

    def push(self, probability: float, chunk_start: int, chunk_samples: int) -> list[Event]:
        config = self._config
        self._recent.append((chunk_start, chunk_start + chunk_samples, probability))
        while self._recent[0][0] < chunk_start - config.onset_lookback_samples:
            self._recent.popleft()
        if not self._speaking:
            if probability < config.vad_on_threshold:
                self._run_start, self._hinted, self._run_peak = None, False, 0.0
                return []
            if self._run_start is None:
                self._run_start = chunk_start
            self._run_peak = max(self._run_peak, probability)
            facts: list[Event] = []
            run_samples = chunk_start + chunk_samples - self._run_start
            if run_samples >= config.hint_samples and not self._hinted:
                self._hinted = True
                # Rounded so the log is stable and readable; the decision used the same rounded value.
                facts.append(VoiceHint(self._run_start, round(self._run_peak, 3)))
            if run_samples >= config.start_samples:
                self._speaking, onset, self._run_start = True, self._run_start, None
                self._hinted, self._run_peak = False, 0.0
                facts.append(SpeechStarted(onset))
            return facts
        if probability >= config.vad_off_threshold:
            self._run_start = None
            return []
        if self._run_start is None:
            self._run_start, self._paused = chunk_start, False
        silence = chunk_start + chunk_samples - self._run_start
        if silence >= config.end_silence_samples:
            self._speaking, end, self._run_start = False, self._run_start, None
            return [SpeechEnded(end)]
        if 0 < config.pause_samples <= silence and not self._paused:
            self._paused = True
            return [SpeechPaused(self._run_start)]
        return []


def frozen_config(config: EndpointerConfig) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        vad_on_threshold=config.on_threshold,
        vad_off_threshold=config.off_threshold,
        hint_samples=config.hint_samples,
        start_samples=config.start_samples,
        end_silence_samples=config.end_silence_samples,
        pause_samples=config.pause_samples,
        onset_lookback_samples=config.onset_lookback_samples,
    )


@st.composite
def configs(draw: st.DrawFn) -> EndpointerConfig:
    thresholds = st.sampled_from([0.0, 0.2, 0.35, 0.5, 0.7, 1.0])
    on, off = sorted((draw(thresholds), draw(thresholds)), reverse=True)
    lengths = st.one_of(st.sampled_from([0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK]), st.integers(0, 12 * CHUNK))
    return EndpointerConfig(
        on_threshold=on,
        off_threshold=off,
        hint_samples=draw(lengths),
        start_samples=draw(lengths),
        end_silence_samples=draw(lengths),
        pause_samples=draw(lengths),
        onset_lookback_samples=draw(st.integers(0, 20 * CHUNK)),
    )


# A chunk: its probability (often exactly a threshold) and its length; or None, a reset (a wake word).
probabilities = st.one_of(st.sampled_from([0.0, 0.2, 0.35, 0.5, 0.7, 1.0]), st.floats(0.0, 1.0))
steps = st.lists(
    st.one_of(st.tuples(probabilities, st.sampled_from([CHUNK, CHUNK, CHUNK, 160, 1280])), st.none()),
    max_size=150,
)


@settings(max_examples=400, deadline=None)
@given(configs(), steps, st.integers(0, 10**6))
def test_the_table_emits_exactly_what_the_boolean_endpointer_did(
    config: EndpointerConfig, script: list[tuple[float, int] | None], first_sample: int
) -> None:
    new, old = Endpointer(config), FrozenEndpointer(frozen_config(config))
    at_sample = first_sample
    for number, step in enumerate(script):
        if step is None:
            new.reset()
            old.reset()
        else:
            probability, samples = step
            before = new.state
            facts = new.push(probability, at_sample, samples)
            if isinstance(before, Hinted):  # the one change since: a hinted run hints again when surer
                again = [f for f in facts if isinstance(f, VoiceHint)]
                surer = round(before.peak + STRONGER_BY, 3)
                assert all(hint.onset_sample == before.since and hint.probability >= surer for hint in again)
                facts = [f for f in facts if not isinstance(f, VoiceHint)]
            assert facts == old.push(probability, at_sample, samples), number
            at_sample += samples
        assert new.voiced == old.voiced, number
