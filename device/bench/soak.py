"""The simulated soak (issue 16): one spine, one run, an hour of conversation in virtual time, interrupted at random,
with timers ringing and engines failing now and then, checked for what only a long run shows: a state it never
leaves, jobs or memory that pile up, an event log that grows faster than the conversation.

It is the interruption campaign's conversations (device/bench/campaign.py: the same stand-ins for hearing, speech
to text and synthesis, the same checks of heard text, replies and memory) played back to back in one run, one every
`SLOT_S`; speech to text fails on one utterance in `ASR_FAILS_EVERY`, synthesis on one sentence in
`TTS_FAILS_EVERY` (an engine raising: the spine apologises and carries on). The speaker keeps only how much of
each epoch it played (an hour of per-sample ground truth would be the memory the soak measures).

Checked: idle again before each conversation begins; no job leaked and nothing of a cancelled turn handled after
the cancel deadline; heard text, replies and memory as in the campaign; the conversation memory the spine keeps
and the history a reply is asked with stay bounded; the process's resident memory flat from the first tenth of
the run to its end; the event log's bytes per hour.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from device.bench.campaign import (
    Audio,
    CampaignRig,
    Conversation,
    MarkedAsr,
    PacedSpeech,
    PacedTts,
    ScriptedUser,
    conversation_config,
    heard_accounting,
    plan,
    replies_answer_the_user,
    script,
)
from device.config import Config, samples
from device.core import commands as cmd
from device.core import events as ev
from device.engines.load import Engines
from device.rates import SPINE_RATE_HZ as RATE_HZ
from device.runtime.eventlog import read_log
from device.runtime.fsm_thread import FsmThread
from device.sim.card import VirtualCard
from device.sim.clocks import VirtualTime
from device.sim.scene import Scene
from device.sim.summary import CANCEL_DEADLINE_S, late_results

SLOT_S = 80.0
"""Each conversation's share of the run: the longest (a story played to its end, 48 s, then the follow-up window
and the listen timeout) is over well within it."""
ASR_FAILS_EVERY, TTS_FAILS_EVERY = 9, 23
RSS_GROWTH_MAX_MB = 24.0
"""Resident memory may grow this much from the first tenth of the run to its end (allocator noise, caches that
fill once); a leak of one message or one job per conversation shows as a steady climb well past it."""


class FailingAsr(MarkedAsr):
    """The campaign's stand-in, raising on every `ASR_FAILS_EVERY`-th transcription."""

    def __init__(self, user: ScriptedUser) -> None:
        super().__init__(user)
        self.calls = 0

    def transcribe(self, audio: Audio) -> str:
        self.calls += 1
        if self.calls % ASR_FAILS_EVERY == 0:
            raise RuntimeError("stand-in speech to text failed (soak)")
        return super().transcribe(audio)


class FailingTts(PacedTts):
    def __init__(self) -> None:
        self.calls = 0

    def synthesize(self, text: str) -> PacedSpeech:
        self.calls += 1
        if self.calls % TTS_FAILS_EVERY == 0:
            raise RuntimeError("stand-in synthesis failed (soak)")
        return super().synthesize(text)


class CountingSpeaker(VirtualCard):
    """The speaker without the room and without per-sample history: how many samples of each epoch it played."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.played_of: dict[int, int] = {}

    def tick(self, start: int, n: int) -> tuple[Audio, Audio]:
        frame = self._gate.pull(n)
        for epoch in np.unique(frame.epochs[frame.epochs > 0]).tolist():
            self.played_of[epoch] = self.played_of.get(epoch, 0) + int(np.count_nonzero(frame.epochs == epoch))
        return np.zeros(n, np.int16), frame.audio


def resident_mb() -> float:
    """This process's resident memory (Linux /proc), in MB."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[1])
    return pages * 4096 / 1e6


@dataclass(frozen=True)
class SoakResult:
    conversations: int
    virtual_s: float
    problems: tuple[str, ...]
    rss_mb: tuple[float, float]
    """Resident memory after the first tenth of the run, and at its end."""
    log_bytes: int
    memory_messages_max: int
    history_messages_max: int
    engine_failures: int
    interrupted: int


def soak_script(conversations: Sequence[Conversation], config: Config) -> ScriptedUser:
    """The conversations' scripts one after another, each in its slot."""
    user = ScriptedUser(config)
    for index, conv in enumerate(conversations):
        offset = samples(index * SLOT_S)
        one = script(conv, config)
        user.utterances += [replace(u, start=u.start + offset, end=u.end + offset) for u in one.utterances]
        user.facts += [(at + offset, _moved(event, offset)) for at, event in one.facts]
    return user


def _moved(event: ev.Event, offset: int) -> ev.Event:
    """A fact of a conversation scripted from sample 0, moved to start at `offset`."""
    match event:
        case ev.VoiceHint(onset, p):
            return ev.VoiceHint(onset + offset, p)
        case ev.SpeechStarted(onset):
            return ev.SpeechStarted(onset + offset)
        case ev.SpeechPaused(end):
            return ev.SpeechPaused(end + offset)
        case ev.SpeechEnded(end):
            return ev.SpeechEnded(end + offset)
        case ev.WakeDetected(model, score, at, own):
            return ev.WakeDetected(model, score, at + offset, own)
        case _:
            return event


def run_soak(minutes: float, seed: int, base: Config, engines: Engines, log_path: Path) -> SoakResult:
    count = max(1, int(minutes * 60 // SLOT_S))
    conversations = plan(count, seed)
    # One run, one machine: the job costs of one conversation, drawn from the plan, hold for the whole run.
    config = conversation_config(random.Random(seed).choice(conversations), base, max_duration_s=86400.0)
    user = soak_script(conversations, config)
    stand_ins = replace(engines, asr=FailingAsr(user), tts=FailingTts())  # type: ignore[arg-type]
    rig = CampaignRig(config, stand_ins, log_path, user)
    speaker = CountingSpeaker(rig.gate, Scene(), RATE_HZ, capacity_samples=RATE_HZ)
    rig.card = speaker
    rig.max_samples = samples(count * SLOT_S + 120.0)
    rss: list[float] = []
    tenth = samples(count * SLOT_S / 10)
    rig.loop.observers.append(lambda now, *_: rss.append(resident_mb()) if not rss and now >= tenth else None)
    idle_before: list[str] = []
    starts = [samples(i * SLOT_S + 0.9) for i in range(1, count)]
    rig.loop.observers.append(lambda now, _e, state, _c: _note_idle(now, state, starts, idle_before))
    clock = VirtualTime(rig, Scene())
    FsmThread(rig, clock, clock).run("end of soak")
    end_rss = resident_mb()
    steps = read_log(log_path).steps
    problems = [f"not idle before conversation {i + 1}: {state}" for i, state in enumerate(idle_before) if state]
    leaks = late_results(steps)
    if leaks:
        problems.append(f"{leaks} jobs leaked or results of cancelled turns handled after {CANCEL_DEADLINE_S} s")
    problems += heard_accounting(steps, lambda epoch: speaker.played_of.get(epoch, 0))
    said = {u.text for u in user.utterances} | {c.follow_up for c in conversations if c.barge == "typed"}
    problems += replies_answer_the_user(said, config.barge_in.stop_phrases, steps)
    memory = rig.loop.spine.context.memory
    if [m.role for m in memory] != [("user", "assistant")[i % 2] for i in range(len(memory))]:
        problems.append("memory does not alternate at the end of the soak")
    histories = [len(c.history) for s in steps for c in s.commands if isinstance(c, cmd.StartReply)]
    return SoakResult(
        conversations=count,
        virtual_s=clock.now() / RATE_HZ,
        problems=tuple(problems),
        rss_mb=(rss[0] if rss else end_rss, end_rss),
        log_bytes=log_path.stat().st_size,
        memory_messages_max=len(memory),
        history_messages_max=max(histories, default=0),
        engine_failures=sum(isinstance(s.event, ev.EngineFailed) for s in steps),
        interrupted=sum(isinstance(c, cmd.CutPlayback) for s in steps for c in s.commands),
    )


def _note_idle(now: int, state: str, starts: list[int], out: list[str]) -> None:
    """Before each conversation's start (its slot's first second): the state the spine is in then ("" if idle)."""
    while starts and now >= starts[0]:
        starts.pop(0)
        out.append("" if state == "Idle" else state)


def report_lines(result: SoakResult, minutes: float, seed: int, wall_s: float) -> list[str]:
    """The soak's section of docs/reliability.md."""
    start_mb, end_mb = result.rss_mb
    hours = result.virtual_s / 3600
    return [
        "## Soak (simulated)",
        "",
        f"One spine, one run: {result.conversations} conversations back to back ({result.virtual_s / 60:.0f} min of"
        f" virtual time, seed {seed}) in {wall_s:.0f} s, each interrupted once at random, speech to text failing on"
        f" one transcription in {ASR_FAILS_EVERY} and synthesis on one sentence in {TTS_FAILS_EVERY}: "
        f"**{len(result.problems)} problems**. What it checks: `device/bench/soak.py`.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| answers cut / engine failures handled | {result.interrupted} / {result.engine_failures} |",
        f"| resident memory after the first tenth / at the end | {start_mb:.1f} / {end_mb:.1f} MB "
        f"(growth {end_mb - start_mb:+.1f} MB, at most {RSS_GROWTH_MAX_MB:.0f}) |",
        f"| conversation memory at the end / longest history a reply was asked with | "
        f"{result.memory_messages_max} / {result.history_messages_max} messages |",
        f"| event log | {result.log_bytes / 1e6 / max(hours, 1e-9):.2f} MB per hour of conversation |",
        *([""] + [f"- {problem}" for problem in result.problems[:50]] if result.problems else []),
    ]
