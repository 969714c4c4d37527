"""The campaign's slice with the real models (issue 16): conversations in the simulated room with real hearing
(openWakeWord, Silero, the echo canceller), whisper.cpp and Piper, each talked over at a random moment in a hard
room drawn at random, and checked against the contract.

Where the main campaign (device/bench/campaign.py) stands in for hearing, speech to text and synthesis to fit
thousands of conversations into CI, this slice runs them for real on fewer: the user (espeak-ng, one of three
voices, 0 to 12 dB under full scale) asks for a story, the time or a timer, and one conversation in five is not
talked over at all (the echo alone must never interrupt or be answered); the others are talked over with a stop
phrase, the wake word and a stop, or the wake word and a question, at a random moment: while the user is still
within the end-of-speech window or speech to text runs (one in four), or 0 to 6 s into the answer's first audio.
The room: the echo 24 dB under to 6 dB over the user, delay 10-150 ms, reverberation 0.2-0.6 s, noise, and at
random a clock drift (up to 200 ppm), an echo-delay jump (an xrun's mark, -20..+40 ms), a stall of the loop
(100-600 ms) and a soft-clipping speaker.

Checked after each (the contract; a missed talk-over is hearing's figure, counted, not a breach): quiet again
within the bound; no late result of a cancelled turn, no leaked job; at most one period of a cut epoch played
after the cut and none after that; the heard text exactly what the speaker played; memory alternates; no reply
to the assistant's own words (a self-reply) and no stop phrase answered; `spine replay` reproduces the run.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from device.bench.campaign import run_conversations, turn_problems
from device.config import Config, samples, wake_phrase
from device.core import commands as cmd
from device.core.memory import normalise_space
from device.engines.load import Engines
from device.rates import SPINE_RATE_HZ as RATE_HZ
from device.replay import replay
from device.runtime.eventlog import LoggedStep, read_log
from device.sim.demo import Rig, run_virtual
from device.sim.scene import DelayJump, RoomSpec, Say, Scene, Stall
from device.sim.summary import summarise

REQUESTS = ("Tell me a story.", "What time is it?", "Set a timer for two seconds.")
TALK_OVERS: tuple[str | None, ...] = ("Stop.", "Never mind.", "Hey Jarvis, stop.", "Hey Jarvis. What time is it?", None)
VOICES = ("en-us", "en-gb", "en-us+f3")
REQUEST_AT_S = 2.0
"""After the start-up sound (1.2 s): a wake word said over it is often not heard, which is hearing's figure (the
echo suite's cold class), not what this slice is about."""
QUIET_BOUND_S = 75.0
"""Back to rest within this after the user's last word (a story is 48 s; a timer rings for 6 s here)."""
MAX_RUN_S = 110.0


@dataclass(frozen=True)
class RealConversation:
    number: int
    scene: Scene
    talk_over: str | None
    moment: str
    """Where the talk-over was aimed: "answer" (after its first audio) or "request" (end of speech, ASR)."""


def _request_end_s(text: str, voice: str) -> float:
    from device.sim.speech import synthesize

    return REQUEST_AT_S + len(synthesize(text, voice, RATE_HZ)) / RATE_HZ


def _delay_jump(rng: random.Random) -> DelayJump:
    return DelayJump(round(rng.uniform(2.0, 10.0), 2), round(rng.choice((-1, 1)) * rng.uniform(5.0, 40.0), 1))


def real_plan(count: int, seed: int) -> list[RealConversation]:
    """`count` conversations drawn from `seed` (the same seed, the same scenes)."""
    rng = random.Random(seed)
    out = []
    for number in range(count):
        voice, gain_db = rng.choice(VOICES), -rng.uniform(0.0, 12.0)
        request = "Hey Jarvis. " + rng.choice(REQUESTS)
        talk_over = rng.choice(TALK_OVERS)
        says = [Say(request, voice, gain_db, at_s=REQUEST_AT_S)]
        moment = "none"
        if talk_over is not None and rng.random() < 0.25:
            moment = "request"
            at_s = _request_end_s(request, voice) + rng.uniform(0.1, 1.2)
            says.append(Say(talk_over, voice, gain_db, at_s=round(at_s, 2)))
        elif talk_over is not None:
            moment = "answer"
            says.append(Say(talk_over, voice, gain_db, after="speaking", delay_s=round(rng.uniform(0.0, 6.0), 2)))
        room = RoomSpec(
            echo_delay_ms=round(rng.uniform(10.0, 150.0), 1),
            echo_gain_db=round(gain_db + rng.uniform(-24.0, 6.0), 1),
            rt60_s=round(rng.uniform(0.2, 0.6), 2),
            noise_dbfs=round(rng.uniform(-65.0, -50.0), 1),
            seed=seed * 100_000 + number,
            drift_ppm=round(rng.uniform(-200.0, 200.0), 1) if rng.random() < 0.5 else 0.0,
            delay_jumps=(
                DelayJump(round(rng.uniform(2.0, 10.0), 2), round(rng.choice((-1, 1)) * rng.uniform(5, 40), 1)),
            )
            if rng.random() < 0.3
            else (),
            speaker_clip_dbfs=round(rng.uniform(-12.0, -3.0), 1) if rng.random() < 0.2 else None,
        )
        stall = (
            (Stall(round(rng.uniform(2.0, 10.0), 2), round(rng.uniform(100.0, 600.0))),) if rng.random() < 0.3 else ()
        )
        out.append(RealConversation(number, Scene(room, tuple(says), None, stall), talk_over, moment))
    return out


def conversation_config(base: Config) -> Config:
    sim = replace(base.sim, idle_tail_s=0.5, max_duration_s=MAX_RUN_S)
    return replace(base, sim=sim, listen=replace(base.listen, alarm_ring_max_s=6.0))


@dataclass(frozen=True)
class RealOutcome:
    number: int
    talk_over: str | None
    moment: str
    problems: tuple[str, ...]
    answered: bool
    """The request got a reply asked for (not: its wake word or words were not heard, hearing's figure)."""
    honoured: bool
    """The talk-over did what the user meant: a stop left nothing of an answer playing from a second after it
    ended; a question got a reply asked for. Without a talk-over: no answer was paused or cut."""
    self_replies: int
    false_barge_ins: int
    end_s: float


def answered(steps: Sequence[LoggedStep]) -> bool:
    """Whether the request got a reply asked for (else the wake word or the request was not heard: a talk-over
    waiting for the answer's first audio never comes, and the scene runs to its bound with the assistant at rest)."""
    return any(isinstance(c, cmd.StartReply) for s in steps for c in s.commands)


def check(
    conv: RealConversation, config: Config, rig: Rig, end: int, steps: Sequence[LoggedStep], summary: dict[str, Any]
) -> list[str]:
    problems: list[str] = []
    last_said = max((u["end_s"] for u in summary["utterances"]), default=0.0)
    # The run's last step is the stop that ends the scene; the state before it is where the assistant was left.
    left_in = steps[-2].state if len(steps) > 1 else "?"
    if left_in != "Idle" or (end >= samples(MAX_RUN_S) and answered(steps)):
        problems.append(f"never quiet again: {left_in} at {end / RATE_HZ:.1f} s")
    elif end / RATE_HZ - last_said > QUIET_BOUND_S:
        problems.append(f"quiet only {end / RATE_HZ - last_said:.1f} s after the last word")
    problems += turn_problems(
        summary, steps, config.period_samples, rig.card.epochs[:end], rig.loop.spine.context.memory
    )
    for reply in summary["self_replies"]:
        problems.append(f"a reply to the assistant's own words at {reply['asked_s']} s: {reply['transcript']!r}")
    stops = config.barge_in.stop_phrases
    for s in steps:
        for c in s.commands:
            if isinstance(c, cmd.StartReply) and normalise_space(c.prompt).strip(" .!?").lower() in stops:
                problems.append(f"a stop phrase was answered: {c.prompt!r}")
    return problems


STOP_GRACE_S = 1.0
"""A stop is honoured when no answer audio is queued or resumed from this long after its last word."""


def _honoured(conv: RealConversation, steps: Sequence[LoggedStep], summary: dict[str, Any]) -> bool:
    if conv.talk_over is None:
        return not any(isinstance(c, cmd.PausePlayback | cmd.CutPlayback) for s in steps for c in s.commands)
    talk = summary["utterances"][1] if len(summary["utterances"]) > 1 else None
    if talk is None:
        return False
    if "time" in conv.talk_over:  # a question: its reply was asked for
        return any(
            isinstance(c, cmd.StartReply) and "time" in c.prompt.lower()
            for s in steps if s.t >= samples(talk["start_s"]) for c in s.commands
        )  # fmt: skip
    after = samples(talk["end_s"] + STOP_GRACE_S)
    return not any(
        isinstance(c, cmd.QueuePlayback | cmd.ResumePlayback) for s in steps if s.t >= after for c in s.commands
    )


def run_real_conversation(conv: RealConversation, base: Config, engines: Engines, log_path: Path) -> RealOutcome:
    config = conversation_config(base)
    rig = Rig(config, conv.scene, engines, log_path, "virtual")
    run = run_virtual(rig, conv.scene)
    card, end = run.card, run.end_sample
    steps = read_log(log_path).steps
    summary = summarise(
        steps, card.player.started, card.epochs[:end], config.period_samples, wake_phrase(config.wake),
        xruns=0, underrun_samples=rig.gate.underrun_samples, user=card.user[:end], echo=card.echo[:end],
        stop_phrases=config.barge_in.stop_phrases,
    )  # fmt: skip
    problems = check(conv, config, rig, end, steps, summary)
    _, mismatches = replay(log_path)
    if mismatches:
        problems.append(f"replay differs at {len(mismatches)} steps, first {mismatches[0]}")
    honoured = _honoured(conv, steps, summary)
    return RealOutcome(
        conv.number, conv.talk_over, conv.moment, tuple(problems), answered(steps), honoured,
        len(summary["self_replies"]),
        int(summary["false_barge_ins"]), round(end / RATE_HZ, 1),
    )  # fmt: skip


def _log_name(conv: RealConversation) -> str:
    return f"real-{conv.number:04d}.jsonl"


def run_real_slice(
    count: int, seed: int, config: Config, out: Path, jobs: int, progress: Callable[[int, int], None]
) -> tuple[list[RealOutcome], float]:
    """The slice; (outcomes in plan order, wall seconds). A failing conversation's log stays in `out`."""
    plan = real_plan(count, seed)
    return run_conversations(plan, run_real_conversation, _log_name, config, out, jobs, progress, chunksize=1)


def tally_real(outcomes: Sequence[RealOutcome]) -> dict[str, Any]:
    talked = [o for o in outcomes if o.talk_over is not None and o.answered]
    echo_only = [o for o in outcomes if o.talk_over is None and o.answered]
    return {
        "conversations": len(outcomes),
        "requests_not_answered": sum(not o.answered for o in outcomes),
        "broke_the_contract": sum(bool(o.problems) for o in outcomes),
        "talk_overs": len(talked),
        "talk_overs_honoured": sum(o.honoured for o in talked),
        "by_moment": {
            moment: {"n": len(mine), "honoured": sum(o.honoured for o in mine)}
            for moment in ("request", "answer")
            if (mine := [o for o in talked if o.moment == moment])
        },
        "echo_only": len(echo_only),
        "echo_only_interrupted": sum(not o.honoured for o in echo_only),
        "false_barge_ins": sum(o.false_barge_ins for o in outcomes),
        "self_replies": sum(o.self_replies for o in outcomes),
        "virtual_minutes": round(sum(o.end_s for o in outcomes) / 60, 1),
        "failures": [{"conversation": o.number, "problems": list(o.problems)} for o in outcomes if o.problems][:50],
        "each": [dataclasses.asdict(o) for o in outcomes],
    }


def report_lines(result: dict[str, Any], seed: int, wall_s: float, jobs: int) -> list[str]:
    moments = result["by_moment"]
    lines = [
        "## Campaign slice with the real models",
        "",
        f"{result['conversations']} conversations (seed {seed}), {result['virtual_minutes']} min of virtual time, in"
        f" {wall_s:.0f} s on {jobs} worker processes, real hearing, whisper.cpp and Piper in a hard room drawn for"
        f" each (`device/bench/campaign_real.py`): **{result['broke_the_contract']} broke the contract**.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| broke the contract | {result['broke_the_contract']} of {result['conversations']} |",
        f"| requests not answered (wake word or request not heard; not talked over then) |"
        f" {result['requests_not_answered']} |",
        f"| self-replies (answered its own voice) | {result['self_replies']} |",
        f"| echo only (not talked over): answers paused or cut | {result['echo_only_interrupted']} of"
        f" {result['echo_only']} |",
        f"| false barge-ins (a pause or cut with no user speaking), all conversations | {result['false_barge_ins']} |",
        f"| talk-overs honoured: a stop left no answer playing {STOP_GRACE_S:g} s after it, a question got its reply"
        f" (hearing's figure, not the contract) | {result['talk_overs_honoured']} of {result['talk_overs']} |",
    ]
    for moment, row in moments.items():
        what = "in the answer (0-6 s after its first audio)" if moment == "answer" else "at the end of the request"
        lines.append(f"| … aimed {what} | {row['honoured']} of {row['n']} |")
    if result["failures"]:
        lines += ["", "Failures (their logs are kept in the output directory):", ""]
        lines += [f"- conversation {f['conversation']}: {'; '.join(f['problems'])}" for f in result["failures"]]
    return lines
