"""The interruption boundary matrix: a wake-word barge-in at each hard boundary of a turn, in virtual time.

The user's request is real audio in the simulated room ("Hey Jarvis. Tell me a story."), so wake word, VAD,
speech to text (whisper), the local responder's word-by-word stream, speech synthesis (Piper) and the real
playback gate all run. `tests/rig_driver.py` runs the rig exactly like `run_virtual` and injects a
`WakeDetected` (barge-in by wake word; its audio path is measured by the echo suite) at the first point where
the case's boundary predicate holds. Each case then checks the interruption contract (docs/architecture.md,
invariants) against the ground truth of the virtual card, which tags every speaker sample with its playback
epoch:

* no stale audio: no sample of the cut epoch later than one period after the cut decision (invariants 3, 4);
* heard accounting: the committed heard text is what `heard_text` gives for the samples really played, that
  count is the gate's own `PlaybackStopped` report, and it is a word prefix of the reply (invariant 5);
* memory: roles alternate, and the last assistant entry is the heard text, marked interrupted;
* no leak: no result of the cancelled turn is handled later than 0.5 s after its `CancelTurn` (invariant 6);
* liveness: the barge-in step itself lands in `Listening`, then the run goes Idle -> Stopping, never stuck.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from device.config import Config, load_config, samples
from device.core import commands as cmd
from device.core import events as ev
from device.core.memory import Message, SpokenChunk, heard_text, normalise_space
from device.core.states import Announcing, Speaking, Thinking, Transcribing
from device.engines.load import Engines, load_engines
from device.rates import SPINE_RATE_HZ as RATE_HZ
from device.runtime.eventlog import LoggedStep, read_log
from device.sim.demo import Rig
from device.sim.scene import Say, Scene
from device.sim.summary import CANCEL_DEADLINE_S, summarise
from tests.rig_driver import Driver

pytestmark = pytest.mark.slow

STORY = "Hey Jarvis. Tell me a story."
TIMER = "Hey Jarvis. Set a timer for two seconds."
LISTEN_TIMEOUT_S = 3.0
"""Shorter than the default 8 s: after the barge-in nobody speaks, and the run only waits for the timeout."""
MAX_RUN_S = 30.0
"""Virtual seconds after which a run is cut short: every case is idle well before (a stuck state fails)."""

# What the cancelled turn leaves in conversation memory.
Memory = Literal[
    "nothing",  # cut before its transcript: no user words, no reply
    "unheard",  # cut before any of the reply was played: an empty, interrupted assistant entry
    "heard",  # cut while the reply played: the heard words, interrupted
    "announcement",  # an announcement is not conversation: memory keeps the previous exchange as it was
]


@dataclass(frozen=True)
class Case:
    said: str
    when: Callable[[Driver], bool]
    memory: Memory
    cuts_playback: bool
    """An epoch is open at the barge-in (it may not have played a sample yet), so the barge-in cuts it."""
    early_asr: bool = True
    """Transcribe at the user's pause (the default). Off for the ASR case: in virtual time the early
    transcription is always back before the endpoint, so nothing would be transcribing when it lands."""


def _chunks(d: Driver) -> list[ev.TtsChunkReady]:
    return [h.event for h in d.handled if isinstance(h.event, ev.TtsChunkReady)]


def _before_first_token(d: Driver) -> bool:
    """Right after the reply was asked for: at the transcript, or at the endpoint when the early one was ready."""
    asked = d.last_event_is(ev.TranscriptReady) or d.last_event_is(ev.SpeechEnded)
    return asked and isinstance(d.state, Thinking) and d.count(ev.ReplyDelta) == 0


def _between_tokens(d: Driver) -> bool:
    return d.last_event_is(ev.ReplyDelta) and d.count(ev.ReplyDelta) == 3


def _between_sentences(d: Driver) -> bool:
    """The tick whose period holds the end of the first sentence: the cursor can only stop at a period's end,
    and 160-sample periods never end exactly at the end of a synthesised sentence."""
    chunks = _chunks(d)
    return d.point == "tick" and isinstance(d.state, Speaking) and bool(chunks) and d.played >= chunks[0].samples


def _mid_word_of_second_sentence(chunks: list[ev.TtsChunkReady]) -> tuple[int, int, int]:
    """(first sample, last sample, index) of the middle word of the second sentence, in epoch samples."""
    first, second = chunks[0], chunks[1]
    k = len(second.text.split()) // 2
    return first.samples + second.word_end_samples[k - 1], first.samples + second.word_end_samples[k], k


def _mid_sentence(d: Driver) -> bool:
    chunks = _chunks(d)
    if d.point != "tick" or not isinstance(d.state, Speaking) or len(chunks) < 2:
        return False
    begins, ends, _ = _mid_word_of_second_sentence(chunks)
    return d.played >= (begins + ends) // 2


def _while_asr_runs(d: Driver) -> bool:
    return d.point == "tick" and isinstance(d.state, Transcribing)


def _during_announcement(d: Driver) -> bool:
    return d.point == "tick" and isinstance(d.state, Announcing) and d.played >= samples(0.5)


def _before_first_sample(d: Driver) -> bool:
    return d.last_event_is(ev.TtsChunkReady) and any(isinstance(c, cmd.OpenPlayback) for c in d.handled[-1].commands)


CASES = {
    "before_first_token": Case(STORY, _before_first_token, "unheard", cuts_playback=False),
    "between_tokens": Case(STORY, _between_tokens, "unheard", cuts_playback=False),
    "between_sentences": Case(STORY, _between_sentences, "heard", cuts_playback=True),
    "mid_sentence": Case(STORY, _mid_sentence, "heard", cuts_playback=True),
    "while_asr_runs": Case(STORY, _while_asr_runs, "nothing", cuts_playback=False, early_asr=False),
    "during_announcement": Case(TIMER, _during_announcement, "announcement", cuts_playback=True),
    "before_first_sample": Case(STORY, _before_first_sample, "unheard", cuts_playback=True),
}


@dataclass(frozen=True)
class Run:
    driver: Driver
    steps: tuple[LoggedStep, ...]
    log_bytes: bytes


@pytest.fixture(scope="module")
def config(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Config:
    path = tmp_path_factory.mktemp("matrix") / "spine.toml"
    path.write_text(f'[models]\ndir = "{models_dir}"\n\n[listen]\ntimeout_s = {LISTEN_TIMEOUT_S}\n')
    return load_config(path)


@pytest.fixture(scope="module")
def engines(config: Config) -> Engines:
    """Loaded once: a rig keeps no engine state except the streaming detectors', which `run_case` resets."""
    return load_engines(config, deterministic=True)


def barge_in(now: int) -> ev.Event:
    return ev.WakeDetected("hey_jarvis", 0.9, now)


def run_case(case: Case, config: Config, engines: Engines, log_path: Path) -> Run:
    # The VAD and both wake scorers carry recurrent state and buffers from the previous rig's audio.
    for detector in (engines.vad, engines.wake, engines.own_wake):
        detector.reset()
    if not case.early_asr:
        config = replace(config, asr=replace(config.asr, early_pause_s=0.0))
    rig = Rig(config, Scene(say=(Say(case.said, at_s=1.0),)), engines, log_path, "virtual")
    driver = Driver(rig, max_samples=samples(MAX_RUN_S))
    driver.run(case.when, barge_in)
    return Run(driver, read_log(log_path).steps, log_path.read_bytes())


_runs: dict[str, Run] = {}
"""Runs of this module, by case: the determinism check compares a fresh run with the matrix's one."""


def _step_of(steps: tuple[LoggedStep, ...], event: ev.Event, t: int) -> LoggedStep:
    return next(s for s in steps if s.t == t and s.event == event)


@pytest.mark.parametrize("name", list(CASES))
def test_a_wake_word_barge_in_at_the_boundary_keeps_the_contract(
    name: str, config: Config, engines: Engines, tmp_path: Path
) -> None:
    case = CASES[name]
    run = _runs[name] = run_case(case, config, engines, tmp_path / "events.jsonl")
    driver, steps = run.driver, run.steps
    injection = driver.injection
    assert injection is not None, f"the boundary of {name} was never reached"
    t_cut = injection.t
    period = config.period_samples
    card = driver.rig.card
    epochs = card.epochs[: card.written]

    # --- back to listening: the barge-in step itself opens the new turn, and the run ends sanely.
    barge = _step_of(steps, injection.step.event, t_cut)
    assert barge.state == "Listening"
    after = [s.state for s in steps if s.line > barge.line]
    assert after[-1] == "Stopping"
    assert set(after) <= {"Listening", "Idle", "Stopping"}, after
    idle_at = next(s.t for s in steps if s.line > barge.line and s.state == "Idle")
    assert idle_at == t_cut + samples(LISTEN_TIMEOUT_S)  # nobody spoke: the new turn's listen window closed
    assert driver.stopped_at is not None and driver.stopped_at < samples(MAX_RUN_S)

    # --- what the barge-in cancelled
    cancels = [c for c in barge.commands if isinstance(c, cmd.CancelTurn)]
    assert len(cancels) == 1, barge.commands
    turn = cancels[0].turn
    cuts = [c.epoch for c in barge.commands if isinstance(c, cmd.CutPlayback)]

    # --- no leak: nothing of the cancelled turn is handled later than the deadline after its cancel
    for s in steps:
        if s.line > barge.line and getattr(s.event, "turn", None) == turn and not isinstance(s.event, ev.JobCancelled):
            assert s.t - t_cut <= CANCEL_DEADLINE_S * RATE_HZ, s

    # --- no stale audio, and the gate's count is the speaker's count
    stopped = [s.event for s in steps if isinstance(s.event, ev.PlaybackStopped)]
    played = 0
    if not case.cuts_playback:
        assert cuts == [] and stopped == []
    else:
        assert len(cuts) == 1
        epoch = cuts[0]
        played = int(np.count_nonzero(epochs == epoch))  # the ground truth: samples that reached the speaker
        assert int(np.count_nonzero(epochs[t_cut + period :] == epoch)) == 0
        assert int(np.count_nonzero(epochs[t_cut:] == epoch)) <= period
        assert stopped == [ev.PlaybackStopped(epoch, played)]
        if case.memory == "unheard":
            assert played == 0

    # --- the run's own summary measures the same (its `leaks` and `stale_samples_played` definitions)
    summary = summarise(
        steps,
        card.player.started,
        epochs,
        period,
        "hey jarvis",
        xruns=0,
        underrun_samples=driver.rig.gate.underrun_samples,
    )
    assert summary["leaks"] == 0 and summary["stale_samples_played"] == 0
    assert summary["cutoff_max_samples_after_decision"] <= period

    # --- heard accounting and memory
    memory = driver.rig.loop.spine.context.memory
    assert [m.role for m in memory] == [("user", "assistant")[i % 2] for i in range(len(memory))]
    commits = [c for s in steps for c in s.commands if isinstance(c, cmd.CommitHeard) and c.turn == turn]
    transcripts = [s.event.text for s in steps if isinstance(s.event, ev.TranscriptReady) and s.event.turn == turn]
    if case.memory == "nothing":
        assert transcripts == [] and commits == [] and memory == ()
        return
    if case.memory == "announcement":
        assert commits == []  # an announcement is not conversation
        assert [(m.role, m.interrupted) for m in memory] == [("user", False), ("assistant", False)]
        assert memory[1].text == "Okay, a 2 second timer, starting now."
        return
    assert len(transcripts) == 1 and "story" in transcripts[0].lower()
    assert len(commits) == 1
    commit = commits[0]
    assert commit.interrupted is True
    heard_words = commit.heard_text.split()
    assert commit.reply_text.split()[: len(heard_words)] == heard_words
    said = normalise_space(transcripts[0])
    assert memory == (Message("user", said), Message("assistant", commit.heard_text, interrupted=True))
    if case.memory == "unheard":
        assert commit.heard_text == ""
        return
    spoken = tuple(
        SpokenChunk(e.seq, e.text, e.samples, e.word_end_samples)
        for s in steps
        if s.line < barge.line and isinstance(e := s.event, ev.TtsChunkReady) and e.turn == turn
    )
    assert commit.heard_text == heard_text(spoken, played)
    assert 0 < len(heard_words) < len(commit.reply_text.split())
    if name == "between_sentences":
        # Cut in the period holding the sentence's end: all of the first sentence, nothing of the second.
        assert injection.played_before - spoken[0].samples in range(period)
        assert commit.heard_text == spoken[0].text
    if name == "mid_sentence":
        begins, ends, k = _mid_word_of_second_sentence(_chunks(driver))
        assert begins < injection.played_before and played < ends  # the cut, fade included, is inside the word
        assert commit.heard_text == " ".join([spoken[0].text, *spoken[1].text.split()[:k]])


def test_the_same_case_gives_the_same_log_bytes(config: Config, engines: Engines, tmp_path: Path) -> None:
    name = "mid_sentence"
    first = _runs.get(name) or run_case(CASES[name], config, engines, tmp_path / "first.jsonl")
    again = run_case(CASES[name], config, engines, tmp_path / "again.jsonl")
    assert again.log_bytes == first.log_bytes
