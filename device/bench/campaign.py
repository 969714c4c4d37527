"""The interruption campaign (issue 16): thousands of conversations in virtual time, each interrupted once at a
random sample by one of the signals the barge-in matrix weighs, each checked against the contract of
docs/architecture.md.

Each conversation: the wake word, a request (a story, the time, a timer, something the local responder does not
know), and one interruption at a random moment from the request's first word to a few seconds into the answer
(so it lands while the user speaks, right at the end of speech, during speech to text, before the first word of
the reply, inside the wake chime, while the answer plays, while a timer rings): the wake word and a follow-up,
speech without the wake word, a hint of voice that is never confirmed (a cough), the monitor's barge-in button and
a follow-up, a typed request, a mute and an unmute. The follow-up is a stop phrase or a question.

What is real and what stands in, so that thousands fit in CI on 2 cores:

* Real: the spine (core, loop, executor), the jobs and the virtual runner, the local responder, the playback gate
  and the virtual card, whose speaker tags every sample with its epoch (the ground truth of what was played).
* Hearing stands in (`ScriptedUser`): it reports the facts real hearing reports for the scripted user (a voice
  hint 96 ms into speech, speech confirmed at 192 ms, the pause and the end after the endpointer's silences, the
  wake word 0.7 s in), whatever the state, as real hearing does. Hearing itself is measured by the echo suite
  and the real-stream suite, not here.
* Speech to text stands in (`MarkedAsr`): while the user talks, the audio the spine keeps is marked with the
  utterance's number, and the stand-in transcribes a window as the words of the utterances marked in it: what
  the spine cut out is what it gets.
* Speech synthesis stands in (`PacedTts`): audio as long as Piper's voice makes it (measured with the default
  voice on six sentences of 6-103 characters: 2,500 samples before the first word, 850 per character, 2,600
  after the last; word ends at each word's share of the characters), a quiet tone, so nothing is synthesised.
* Timing: each conversation draws the jobs' modelled costs (`[sim]`) at random between half and three times what
  `spine bench latency` measured on this machine (ASR p50 380 ms for a short request, first sentence's audio p50
  160 ms, the local responder's first word 40 ms, a remote model's 300 ms), so the cut lands before, during and
  after each job.

Checked after each conversation (`check`): back to idle within a bound after the last input (no stuck state);
no job left running or leaked and nothing of a cancelled turn handled after the cancel deadline (invariants 2, 6);
at most one period of a cut epoch played after the cut and none ever after (3, 4); what entered memory as the
assistant's words is exactly the text of the samples the speaker played (5); memory alternates user and
assistant; every reply answers something the user said or typed (11); a stop phrase is never answered; and
`spine replay` reproduces the run (7).
"""

from __future__ import annotations

import json
import multiprocessing
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from device.config import Config, samples
from device.core import commands as cmd
from device.core import events as ev
from device.core.memory import Message, SpokenChunk, heard_text, normalise_space
from device.engines.load import Engines, load_engines
from device.rates import SPINE_RATE_HZ as RATE_HZ
from device.replay import replay
from device.runtime.eventlog import LoggedStep, read_log
from device.runtime.executor import MicState
from device.runtime.fsm_thread import FsmThread
from device.sim.card import VirtualCard
from device.sim.clocks import VirtualTime
from device.sim.demo import Rig
from device.sim.scene import Scene
from device.sim.summary import CANCEL_DEADLINE_S, summarise

Audio = npt.NDArray[np.int16]
W = TypeVar("W")
R = TypeVar("R")
C = TypeVar("C")


class _Checked(Protocol):
    """An outcome of a checked conversation: every way it broke the contract, none when it kept it."""

    @property
    def problems(self) -> tuple[str, ...]: ...


Result = TypeVar("Result", bound=_Checked)
BargeKind = Literal["wake", "voice", "hint", "remote", "typed", "mute"]

BARGE_KINDS: tuple[BargeKind, ...] = ("wake", "voice", "hint", "remote", "typed", "mute")
REQUESTS = ("Tell me a story.", "What time is it?", "Set a timer for two seconds.", "Thank you.")
FOLLOW_UPS = ("Stop.", "Never mind.", "Cancel.", "What time is it?", "Tell me a story.")
WAKE_MODEL = "hey_jarvis"

WORDS_PER_S = 2.5
"""How fast the scripted user talks: an utterance lasts its word count over this."""
HINT_AFTER_S, CONFIRM_AFTER_S, WAKE_AFTER_S = 0.096, 0.192, 0.7
"""When hearing reports a hint, confirmed speech and the wake word after the user's first sample (3 and 6 VAD
chunks of 32 ms; the wake phrase ends about 0.7 s in)."""
WAKE_GAP_S = 0.15
"""The user's breath between the wake phrase and the words."""
MARK_BASE = 20000
"""The spine's kept audio during utterance k is this + k (the stand-in ASR reads it back)."""
TTS_LEAD_SAMPLES, TTS_SAMPLES_PER_CHAR, TTS_TAIL_SAMPLES = 2500, 850, 2600
QUIET_BOUND_S = 75.0
"""Back to idle within this long after the last input: the longest answer (the story, 48 s) or a ring
(`alarm_ring_max_s`, 6 s here) plus the follow-up window and the listen timeout."""
MAX_RUN_S = 150.0


@dataclass(frozen=True)
class Utterance:
    """The scripted user says `text` from `start` to `end` (samples)."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Conversation:
    number: int
    seed: int
    request: str
    barge: BargeKind
    barge_at: int
    follow_up: str
    costs_ms: tuple[float, float, float, float, float, float]
    """asr_fixed, tts_fixed, reply_first_token, cancel_ack (ms), asr_rtf, tts_rtf."""


def plan(count: int, seed: int) -> list[Conversation]:
    """`count` conversations drawn from `seed` (the same seed, the same campaign)."""
    rng = random.Random(seed)
    out = []
    for number in range(count):
        request = rng.choice(REQUESTS)
        barge = rng.choice(BARGE_KINDS)
        words_from_s = 1.0 + WAKE_AFTER_S + WAKE_GAP_S
        request_end_s = words_from_s + _duration_s(request)
        # A user says one thing at a time: a spoken interruption begins after the request's last word, one in
        # five before its endpoint is decided (within the end silence, 0.7 s); a button, typed text, a mute or a
        # cough may come at any moment from the request's first word, one in five around its end (+-0.2 s).
        spoken = barge in ("wake", "voice")
        first_s = request_end_s + 0.05 if spoken else words_from_s
        around_end = (first_s, request_end_s + 0.7) if spoken else (request_end_s - 0.2, request_end_s + 0.2)
        at_s = rng.uniform(*around_end) if rng.random() < 0.2 else rng.uniform(first_s, request_end_s + 6.0)
        costs = (
            rng.uniform(0.5, 3.0) * 80.0,  # asr_fixed_ms: with asr_rtf, 380 ms p50 for a short request
            rng.uniform(0.5, 3.0) * 30.0,
            rng.uniform(0.5, 3.0) * rng.choice((40.0, 300.0)),  # the local responder, or a remote model
            rng.uniform(0.5, 3.0) * 10.0,
            rng.uniform(0.5, 3.0) * 0.15,
            rng.uniform(0.5, 3.0) * 0.06,
        )
        out.append(Conversation(number, seed, request, barge, samples(at_s), rng.choice(FOLLOW_UPS), costs))
    return out


def _duration_s(text: str) -> float:
    return max(0.4, len(text.split()) / WORDS_PER_S)


@dataclass
class ScriptedUser:
    """What hearing would report for the scripted user, period by period, and the marks on the kept audio."""

    config: Config
    utterances: list[Utterance] = field(default_factory=list)
    facts: list[tuple[int, ev.Event]] = field(default_factory=list)
    _due: list[tuple[int, ev.Event]] | None = None

    def say(self, text: str, start: int, wake: bool = False) -> Utterance:
        """The user says `text` from `start`, after the wake phrase when `wake`: hearing reports the wake phrase's
        onset and the wake word, then the words as an utterance of their own (the endpointer starts afresh after
        the wake word, as device/runtime/hearing.py does)."""
        if wake:
            self._onset(start)
            self.facts.append((start + samples(WAKE_AFTER_S), ev.WakeDetected(WAKE_MODEL, 0.9, start + samples(0.7))))
            start += samples(WAKE_AFTER_S + WAKE_GAP_S)
        end = start + samples(_duration_s(text))
        said = Utterance(text, start, end)
        self.utterances.append(said)
        end_silence_s = self.config.vad.end_silence_s
        self._onset(start)
        self.facts += [
            (end + samples(self.config.asr.early_pause_s or end_silence_s / 2), ev.SpeechPaused(end)),
            (end + samples(end_silence_s), ev.SpeechEnded(end)),
        ]
        return said

    def _onset(self, start: int) -> None:
        self.facts += [
            (start + samples(HINT_AFTER_S), ev.VoiceHint(start, 0.9)),
            (start + samples(CONFIRM_AFTER_S), ev.SpeechStarted(start)),
        ]

    def at(self, at: int, event: ev.Event) -> None:
        self.facts.append((at, event))

    def last_input(self) -> int:
        return max(at for at, _ in self.facts)

    def heard(self, start: int, count: int) -> list[ev.Event]:
        """The facts of the period [start, start + count), in script order (stable by sample). Periods are asked
        for in order, once each: the script is sorted at the first."""
        if self._due is None:
            self._due = sorted(self.facts, key=lambda f: f[0])
        facts = []
        while self._due and self._due[0][0] < start + count:
            facts.append(self._due.pop(0)[1])
        return facts

    def marks(self, start: int, count: int) -> Audio:
        """The kept audio of the period: the number of the utterance the user is saying, or silence (the wake
        phrase is no utterance: speech to text never gets it as words here)."""
        out = np.zeros(count, np.int16)
        for index, said in enumerate(self.utterances):
            lo, hi = max(start, said.start), min(start + count, said.end)
            if lo < hi:
                out[lo - start : hi - start] = MARK_BASE + index
        return out


class MarkedAsr:
    """Transcribes a window as the words of the utterances marked in it, in order."""

    def __init__(self, user: ScriptedUser) -> None:
        self._user = user

    def transcribe(self, audio: Audio) -> str:
        marked = audio[audio >= MARK_BASE]
        if len(marked) == 0:
            return ""
        numbers = sorted(set(int(m) - MARK_BASE for m in np.unique(marked)))
        return " ".join(self._user.utterances[n].text for n in numbers)


@dataclass(frozen=True)
class PacedSpeech:
    audio: Audio
    word_end_samples: tuple[int, ...]


class PacedTts:
    """Audio as long as the default voice makes it (see the module), with word ends at each word's share."""

    def synthesize(self, text: str) -> PacedSpeech:
        words = text.split()
        if not words:
            return PacedSpeech(np.zeros(0, np.int16), ())
        chars = sum(len(w) for w in words) + len(words) - 1
        body = TTS_SAMPLES_PER_CHAR * chars
        ends, said = [], 0
        for word in words:
            said += len(word) + 1
            ends.append(TTS_LEAD_SAMPLES + min(body, body * said // (chars + 1)))
        length = TTS_LEAD_SAMPLES + body + TTS_TAIL_SAMPLES
        tone = (800 * np.sin(2 * np.pi * 220 * np.arange(length) / RATE_HZ)).astype(np.int16)
        return PacedSpeech(tone, tuple(ends))


class SpeakerOnly(VirtualCard):
    """The virtual card without its room: the speaker's samples and the epoch of each (the ground truth of what
    was played), and a mic that hears nothing (hearing is scripted). The room's reverberation filter alone took
    60 % of the campaign's time."""

    def tick(self, start: int, n: int) -> tuple[Audio, Audio]:
        frame = self._gate.pull(n)
        silent = np.zeros(n, np.int16)
        self._record(start, n, silent, frame.audio, frame.epochs)
        return silent, frame.audio


class CampaignRig(Rig):
    """The daemon in the simulated room with the scripted user in place of hearing."""

    def __init__(self, config: Config, engines: Engines, log_path: Path, user: ScriptedUser) -> None:
        super().__init__(config, Scene(), engines, log_path, "virtual")
        self.card = SpeakerOnly(self.gate, Scene(), RATE_HZ, capacity_samples=samples(MAX_RUN_S))
        self.user = user
        self.quiet_at: int | None = None
        """When the spine was quiet again for good; None if the run hit `max_samples` first (a stuck state)."""
        self.max_samples = samples(MAX_RUN_S)

    def hear(self, mic: Audio, start: int, played: Audio) -> list[ev.Event]:
        facts = self.user.heard(start, len(mic))
        kept = np.zeros_like(mic) if self.executor.mic is MicState.MUTED else self.user.marks(start, len(mic))
        self.capture.append(kept)
        self.last_cleaned = kept
        if self.executor.mic is MicState.MUTED:  # a muted mic hears nothing; requests from outside still come
            facts = [f for f in facts if isinstance(f, ev.MuteChanged | ev.BargeInRequested | ev.TextTyped)]
        return facts

    def finished(self, now: int, scene: Scene) -> bool:
        """Quiet (idle, nothing playing, no job or timer) for `[sim] idle_tail_s` after the last input, or the
        bound: `quiet_at` says which."""
        if now >= self.max_samples:
            return True
        if now <= self.user.last_input() or not super().finished(now, scene):
            return False
        self.quiet_at = now - samples(self.config.sim.idle_tail_s)
        return True


def script(conv: Conversation, config: Config) -> ScriptedUser:
    user = ScriptedUser(config)
    user.say(conv.request, samples(1.0), wake=True)
    at = conv.barge_at
    match conv.barge:
        case "wake":
            user.say(conv.follow_up, at, wake=True)
        case "voice":
            user.say(conv.follow_up, at)
        case "hint":  # a cough: a hint, never confirmed
            user.at(at + samples(HINT_AFTER_S), ev.VoiceHint(at, 0.8))
        case "remote":  # the button, then the follow-up once the user has finished the request
            user.at(at, ev.BargeInRequested("monitor"))
            user.say(conv.follow_up, max(at + samples(0.3), user.utterances[0].end + samples(0.05)))
        case "typed":
            user.at(at, ev.TextTyped(conv.follow_up, "monitor"))
        case "mute":
            user.at(at, ev.MuteChanged(True, "SIGUSR1"))
            user.at(at + samples(1.5), ev.MuteChanged(False, "SIGUSR2"))
    return user


def conversation_config(conv: Conversation, base: Config, max_duration_s: float = MAX_RUN_S) -> Config:
    """`base` with the conversation's drawn job costs, a short idle tail and a 6 s ring."""
    asr_fixed, tts_fixed, first_token, cancel_ack, asr_rtf, tts_rtf = conv.costs_ms
    sim = replace(
        base.sim, asr_fixed_ms=asr_fixed, tts_fixed_ms=tts_fixed, reply_first_token_ms=first_token,
        cancel_ack_ms=cancel_ack, asr_rtf=asr_rtf, tts_rtf=tts_rtf, idle_tail_s=0.5, max_duration_s=max_duration_s,
    )  # fmt: skip
    return replace(base, sim=sim, listen=replace(base.listen, alarm_ring_max_s=6.0))


@dataclass(frozen=True)
class Outcome:
    conversation: Conversation
    problems: tuple[str, ...]
    """Every way it broke the contract (`check`); none when it kept it."""
    end_s: float
    moment: str
    """Where the interruption landed: the spine's state just before it (a `Speaking` answer, `Transcribing`, ...),
    `Idle` for one that came after the answer ended."""
    cut: bool
    """An answer's playback was cut."""


@dataclass(frozen=True)
class Played:
    """A conversation as it ran: its configuration, the rig (its card's ground truth, its memory), the script."""

    conversation: Conversation
    config: Config
    rig: CampaignRig
    user: ScriptedUser
    end: int


def play(conv: Conversation, base: Config, engines: Engines, log_path: Path) -> Played:
    """Run one conversation in virtual time, its event log at `log_path`."""
    config = conversation_config(conv, base)
    user = script(conv, config)
    # The stand-ins speak the protocols the executor takes (Transcriber, Synthesiser in device/runtime/work.py);
    # `Engines` names the real adapters, which nothing else of the run touches.
    stand_ins = replace(engines, asr=MarkedAsr(user), tts=PacedTts())  # type: ignore[arg-type]
    rig = CampaignRig(config, stand_ins, log_path, user)
    clock = VirtualTime(rig, Scene())
    FsmThread(rig, clock, clock).run("end of conversation")
    return Played(conv, config, rig, user, clock.now())


def run_conversation(conv: Conversation, base: Config, engines: Engines, log_path: Path) -> Outcome:
    """Play one conversation and check it, its replay included."""
    played = play(conv, base, engines, log_path)
    steps = read_log(log_path).steps
    problems = check(played, steps)
    _, mismatches = replay(log_path)
    if mismatches:
        problems.append(f"replay differs at {len(mismatches)} steps, first {mismatches[0]}")
    before = [s.state for s in steps if s.t < conv.barge_at]
    cut = any(isinstance(c, cmd.CutPlayback) for s in steps for c in s.commands)
    return Outcome(conv, tuple(problems), played.end / RATE_HZ, before[-1] if before else "Idle", cut)


def check(played: Played, steps: Sequence[LoggedStep]) -> list[str]:
    """Every way the conversation broke the contract (see the module), as sentences; none when it kept it."""
    conv, config, rig, user, end = played.conversation, played.config, played.rig, played.user, played.end
    problems: list[str] = []
    period = config.period_samples
    card = rig.card
    epochs = card.epochs[: card.written]
    # Liveness: quiet again, within the bound, after the last input.
    if rig.quiet_at is None:
        problems.append(f"never quiet again: {steps[-2].state if len(steps) > 1 else '?'} at {end / RATE_HZ:.1f} s")
    elif rig.quiet_at - user.last_input() > samples(QUIET_BOUND_S):
        problems.append(f"quiet only {(rig.quiet_at - user.last_input()) / RATE_HZ:.1f} s after the last input")
    summary = summarise(steps, [], epochs, period, "hey jarvis", xruns=0, underrun_samples=rig.gate.underrun_samples)
    problems += turn_problems(summary, steps, period, epochs, rig.loop.spine.context.memory)
    said = {u.text for u in user.utterances} | ({conv.follow_up} if conv.barge == "typed" else set())
    problems += replies_answer_the_user(said, config.barge_in.stop_phrases, steps)
    return problems


def turn_problems(
    summary: dict[str, Any], steps: Sequence[LoggedStep], period: int, epochs: npt.NDArray[np.int32],
    memory: Sequence[Message],
) -> list[str]:  # fmt: skip
    """What every conversation is checked for, with stand-ins or the real models: no late result of a cancelled
    turn and no leaked job, no stale audio, a cut within one period, heard text exactly what the speaker played
    (`epochs`: the epoch of each played sample), memory alternating."""
    problems: list[str] = []
    if summary["leaks"]:
        problems.append(f"{summary['leaks']} results of cancelled turns handled after {CANCEL_DEADLINE_S} s")
    if summary["stale_samples_played"]:
        problems.append(f"{summary['stale_samples_played']} samples of a cut epoch played after the cut")
    if summary["cutoff_max_samples_after_decision"] > period:
        problems.append(f"a cut let {summary['cutoff_max_samples_after_decision']} samples through (> one period)")
    if any(isinstance(s.event, ev.JobLeaked) for s in steps):
        problems.append("a job leaked")
    problems += heard_accounting(steps, lambda epoch: int(np.count_nonzero(epochs == epoch)))
    if [m.role for m in memory] != [("user", "assistant")[i % 2] for i in range(len(memory))]:
        problems.append(f"memory does not alternate: {[m.role for m in memory]}")
    return problems


def heard_accounting(steps: Sequence[LoggedStep], played_of: Callable[[int], int]) -> list[str]:
    """What entered memory as heard is the text of the samples of its epoch the speaker played (`played_of`)."""
    problems = []
    epoch_of_turn: dict[int, int] = {}
    chunks: dict[int, list[SpokenChunk]] = {}
    for s in steps:
        for c in s.commands:
            if isinstance(c, cmd.OpenPlayback) and c.turn is not None:
                epoch_of_turn[c.turn] = c.epoch
        if isinstance(s.event, ev.TtsChunkReady) and s.state in ("Speaking", "Paused", "Announcing"):
            e = s.event
            chunks.setdefault(e.turn, []).append(SpokenChunk(e.seq, e.text, e.samples, e.word_end_samples))
    for s in steps:
        for c in s.commands:
            if not isinstance(c, cmd.CommitHeard):
                continue
            epoch = epoch_of_turn.get(c.turn)
            played = played_of(epoch) if epoch is not None else 0
            expected = heard_text(tuple(chunks.get(c.turn, [])), played)
            if c.heard_text != expected:
                problems.append(f"turn {c.turn} heard {c.heard_text!r}, the speaker played {expected!r}")
            heard_words = c.heard_text.split()
            if c.reply_text.split()[: len(heard_words)] != heard_words:
                problems.append(f"turn {c.turn}'s heard text is not a prefix of its reply")
    return problems


def replies_answer_the_user(texts: set[str], stop_phrases: tuple[str, ...], steps: Sequence[LoggedStep]) -> list[str]:
    """Every reply answers what the user said or typed (`texts`; never the assistant's words); no sentence of a
    prompt is one of the `stop_phrases` (`[barge_in] stop_phrases`)."""
    said = {normalise_space(text) for text in texts}
    problems = []
    for s in steps:
        for c in s.commands:
            if not isinstance(c, cmd.StartReply):
                continue
            prompt = normalise_space(c.prompt)
            if not any(prompt == t or prompt.endswith(t) or t in prompt for t in said):
                problems.append(f"a reply was asked for {c.prompt!r}, which the user never said")
            if any(part.strip(" .!?").lower() in stop_phrases for part in prompt.split(".") if part.strip()):
                problems.append(f"a stop phrase was answered: {c.prompt!r}")
    return problems


# ------------------------------------------------------------------------------------------------ the campaign
_engines: Engines | None = None


def worker_engines(config: Config) -> Engines:
    """This worker process's engines, loaded at its first conversation (once per process, not per conversation)."""
    global _engines
    if _engines is None:
        _engines = load_engines(config, deterministic=True)
    return _engines


def run_in_workers(
    work: Sequence[W], run_one: Callable[[W], R], jobs: int, progress: Callable[[int, int], None], chunksize: int
) -> list[R]:
    """`run_one` over `work` in `jobs` spawned processes (or here, for one), results in `work`'s order."""
    results: list[R] = []
    if jobs <= 1:
        for item in work:
            results.append(run_one(item))
            progress(len(results), len(work))
        return results
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        for result in pool.imap(run_one, work, chunksize=chunksize):
            results.append(result)
            progress(len(results), len(work))
    return results


def _worker_run(task: tuple[Callable[[C, Config, Engines, Path], Result], C, Config, Path]) -> Result:
    """One conversation in a worker: `run(conv, config, engines, log)`; its log is kept only if it broke the
    contract (its outcome has problems)."""
    run, conv, config, log = task
    outcome = run(conv, config, worker_engines(config), log)
    if not outcome.problems:
        log.unlink()
    return outcome


def run_conversations(
    conversations: Sequence[C],
    run: Callable[[C, Config, Engines, Path], Result],
    log_of: Callable[[C], str],
    config: Config,
    out: Path,
    jobs: int,
    progress: Callable[[int, int], None],
    chunksize: int = 8,
) -> tuple[list[Result], float]:
    """`run` over `conversations` in `jobs` processes, each logging to `out / log_of(conv)`; (the outcomes in
    order, wall seconds). A failing conversation's log stays in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    work = [(run, conv, config, out / log_of(conv)) for conv in conversations]
    return run_in_workers(work, _worker_run, jobs, progress, chunksize), time.perf_counter() - began


def run_campaign(
    count: int, seed: int, config: Config, out: Path, jobs: int, progress: Callable[[int, int], None]
) -> tuple[list[Outcome], float]:
    """The campaign; (the outcomes in plan order, wall seconds). A failing conversation's log stays in `out`."""
    log_of: Callable[[Conversation], str] = lambda conv: f"conversation-{conv.number:05d}.jsonl"  # noqa: E731
    return run_conversations(plan(count, seed), run_conversation, log_of, config, out, jobs, progress)


def tally(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The campaign's figures: per interruption and per moment it landed, how many, how many cut an answer, how
    many broke the contract (with the first 50 failures' problems)."""
    by_kind: dict[str, dict[str, int]] = {}
    by_moment: dict[str, dict[str, int]] = {}
    for o in outcomes:
        for table, key in ((by_kind, o.conversation.barge), (by_moment, o.moment)):
            row = table.setdefault(key, {"conversations": 0, "cut": 0, "broke_the_contract": 0})
            row["conversations"] += 1
            row["cut"] += o.cut
            row["broke_the_contract"] += bool(o.problems)
    return {
        "conversations": len(outcomes),
        "broke_the_contract": sum(bool(o.problems) for o in outcomes),
        "by_kind": by_kind,
        "by_moment": by_moment,
        "virtual_hours": round(sum(o.end_s for o in outcomes) / 3600, 2),
        "failures": [
            {"conversation": o.conversation.number, "barge": o.conversation.barge, "problems": list(o.problems)}
            for o in outcomes
            if o.problems
        ][:50],
    }


def report_lines(result: dict[str, Any], seed: int, wall_s: float, jobs: int) -> Iterator[str]:
    """The campaign's section of docs/reliability.md."""
    yield "## Interruption campaign"
    yield ""
    yield (
        f"{result['conversations']} conversations (seed {seed}), {result['virtual_hours']} h of virtual time, in "
        f"{wall_s:.0f} s on {jobs} worker processes: **{result['broke_the_contract']} broke the contract**. What "
        "is real, what stands in and what is checked after each conversation: `device/bench/campaign.py`."
    )
    for title, key in (("interruption", "by_kind"), ("where it landed (the state just before it)", "by_moment")):
        yield ""
        yield f"| {title} | conversations | cut an answer | broke the contract |"
        yield "|---|---|---|---|"
        for name, row in sorted(result[key].items()):
            yield f"| {name} | {row['conversations']} | {row['cut']} | {row['broke_the_contract']} |"
    if result["failures"]:
        yield ""
        yield "Failures (their logs are kept in the output directory):"
        yield ""
        for failure in result["failures"]:
            yield f"- conversation {failure['conversation']} ({failure['barge']}): {'; '.join(failure['problems'])}"


def write_json(path: Path, result: dict[str, Any]) -> None:
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
