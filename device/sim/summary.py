"""What a run of the simulated room measured: `summary.json`.

Sources: the event log (decisions, with their times), the virtual card (what really reached the speaker,
sample by sample, tagged with its playback epoch) and the scene's ground truth (when the user really spoke).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from device.core import commands as cmd
from device.core import events as ev
from device.core.states import DEFAULT_STOP_PHRASES
from device.rates import SPINE_RATE_HZ as RATE_HZ
from device.runtime.eventlog import LoggedStep
from device.sim import bargein
from device.sim.card import Utterance

CANCEL_DEADLINE_S = 0.5
"""A result of a cancelled turn arriving later than this after the cancel means its job did not stop: a leak."""


def _ms(samples: int | float) -> float:
    return round(float(samples) * 1000 / RATE_HZ, 1)


def _s(samples: int | float) -> float:
    return round(float(samples) / RATE_HZ, 3)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Levenshtein distance over words, divided by the reference length."""
    ref, hyp = words(reference), words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return round(row[-1] / len(ref), 3)


def strip_wake_phrase(text: str, wake_phrase: str) -> str:
    """The part of a scripted utterance meant as the request (the wake phrase is not transcribed)."""
    pattern = r"^\W*" + r"\W+".join(map(re.escape, wake_phrase.split())) + r"\b\W*"
    return re.sub(pattern, "", text, flags=re.IGNORECASE)


@dataclass
class TurnMarks:
    """When each step of one turn happened, in samples of the run's clock (None: not seen); from the event log.

    `asr_from`..`asr_to` is the audio of the endpoint's transcription (the one that counts: up to the endpoint's
    end of speech); `asr_started` and `transcript_at` are that transcription's own start and return, which may
    both come before the endpoint decision when the transcript was made early, at the user's pause."""

    turn: int
    asr_from: int = 0
    asr_to: int = 0
    endpoint_decided: int | None = None
    asr_started: int | None = None
    transcript: str | None = None
    transcript_at: int | None = None
    reply_started: int | None = None
    first_text_at: int | None = None
    first_tts_started: int | None = None
    first_chunk_at: int | None = None
    epoch: int | None = None
    commit: cmd.CommitHeard | None = None


def summarise(
    steps: Iterable[LoggedStep],
    utterances: list[Utterance],
    epochs_played: np.ndarray[Any, np.dtype[np.int32]],
    period_samples: int,
    wake_phrase: str,
    xruns: int,
    underrun_samples: int,
    user: np.ndarray[Any, np.dtype[np.float32]] | None = None,
    echo: np.ndarray[Any, np.dtype[np.float32]] | None = None,
    stop_phrases: tuple[str, ...] = DEFAULT_STOP_PHRASES,
) -> dict[str, Any]:
    """`user` and `echo` are the two sources at the mic, kept apart (for levels); silence when not given."""
    steps = list(steps)
    read = _read(steps)
    turns, asr, cuts, asked, leaks, states = read.turns, read.asr, read.cuts, read.asked, read.leaks, read.states
    # Earcons are not the assistant speaking: a user talking over the wake chime is no barge-in (nothing should
    # stop it), and its samples are not speech time.
    chimes = [c for step in steps for c in step.commands if isinstance(c, cmd.PlayEarcon)]
    chime_epochs = [c.epoch for c in chimes]
    chiming = np.isin(epochs_played, chime_epochs)
    chime_samples = int(np.count_nonzero(chiming))
    epochs_played = np.where(chiming, 0, epochs_played).astype(np.int32)
    turn_rows = [_turn_row(t, utterances, epochs_played, wake_phrase) for t in sorted(turns.values(), key=_key)]
    silent = np.zeros(len(epochs_played), np.float32)
    talked_over = bargein.analyse(
        steps,
        utterances,
        epochs_played,
        silent if user is None else user,
        silent if echo is None else echo,
        replies=[_asked_reply(turn, at, prompt, turns, asr) for turn, at, prompt in asked],
        stop_phrases=stop_phrases,
    )
    barge_ins = [_barge_in_row(t) for t in talked_over["talk_overs"] if t["interrupted"]]
    after = [int(np.count_nonzero(epochs_played[decision:] == epoch)) for decision, epoch in cuts]
    stale = [int(np.count_nonzero(epochs_played[decision + period_samples :] == epoch)) for decision, epoch in cuts]
    return {
        "turns": [row for row in turn_rows if row is not None],
        "barge_ins": barge_ins,
        "false_barge_ins": talked_over["false_pauses"] + talked_over["false_cancels"],
        "self_replies": talked_over["self_replies"],
        "interruptions": talked_over,
        "cutoff_max_samples_after_decision": max(after, default=0),
        "period_samples": period_samples,
        "assistant_speech_s": _s(int(np.count_nonzero(epochs_played))),
        "earcons": {"played": [c.kind for c in chimes], "seconds": _s(chime_samples)},
        "stale_samples_played": sum(stale),
        "leaks": leaks,
        "xruns": xruns,
        "underrun_samples": underrun_samples,
        "states": states,
        "utterances": [
            {"text": u.text, "voice": u.voice, "start_s": _s(u.start_sample), "end_s": _s(u.end_sample)}
            for u in utterances
        ],
        "notes": run_notes(utterances, steps),
    }


def run_notes(utterances: list[Utterance], steps: list[LoggedStep]) -> list[str]:
    """What a reader of the numbers above must know to read them: a run with nothing to measure, or a script
    whose utterances ran into each other (their voices were mixed at the mic). Empty for an ordinary run."""
    notes = []
    if not utterances:
        notes.append("the user never spoke (no [[say]] was due before the end): no turn, no talk-over to measure")
    elif not any(isinstance(step.event, ev.SpeechStarted) for step in steps):
        notes.append("hearing found no user speech onset: no turn, no talk-over to measure")
    for number, (before, after) in enumerate(itertools.pairwise(utterances), start=2):
        if after.start_sample < before.end_sample:
            notes.append(
                f"utterances {number - 1} and {number} overlapped: {number} began at {_s(after.start_sample)} s, "
                f"while {number - 1} ran to {_s(before.end_sample)} s (their voices are mixed at the mic)"
            )
    return notes


def turn_marks(steps: Iterable[LoggedStep]) -> dict[int, TurnMarks]:
    """The marks of every turn that reached an endpoint decision, by turn number."""
    return _read(list(steps)).turns


@dataclass
class _Read:
    """What one pass over the event log collects."""

    turns: dict[int, TurnMarks] = field(default_factory=dict)
    asr: _Transcriptions = field(default_factory=lambda: _Transcriptions())
    cuts: list[tuple[int, int]] = field(default_factory=list)  # (decision sample, epoch)
    cancels: dict[int, int] = field(default_factory=dict)  # turn -> sample of CancelTurn
    asked: list[tuple[int, int, str]] = field(default_factory=list)  # (turn, sample, prompt) of every StartReply
    leaks: int = 0
    states: list[str] = field(default_factory=lambda: ["Idle"])


def _read(steps: list[LoggedStep]) -> _Read:
    read = _Read()
    for step in steps:
        _note_endpoint(step, read.states[-1], read.asr, read.turns)
        if step.state != read.states[-1] and step.state != "?":
            read.states.append(step.state)
        read.leaks += _late_result(step, read.cancels)
        _note_event(step, read.asr, read.turns)
        for command in step.commands:
            _note_command(step, command, read.asr, read.turns, read.cuts, read.cancels)
            if isinstance(command, cmd.StartReply):
                read.asked.append((command.turn, step.t, command.prompt))
    return read


def _asked_reply(
    turn: int, at: int, prompt: str, turns: dict[int, TurnMarks], asr: _Transcriptions
) -> bargein.AskedReply:
    """A reply asked for, with the audio its transcript came from: the turn's endpoint window, or else (a reply
    without an endpoint) its latest transcription's; none at all if nothing of the turn was transcribed."""
    row = turns.get(turn)
    if row is not None and row.asr_started is not None:
        return bargein.AskedReply(turn, at, prompt, row.asr_from, row.asr_to)
    windows = [(end, start) for (t, end), (start, _) in asr.started.items() if t == turn]
    if not windows:
        return bargein.AskedReply(turn, at, prompt, None, None)
    end, start = max(windows)
    return bargein.AskedReply(turn, at, prompt, start, end)


def _key(turn: TurnMarks) -> int:
    return turn.turn


def late_results(steps: Iterable[LoggedStep]) -> int:
    """The leaks of a run as `summarise` counts them, for a run with no per-sample record of its speaker."""
    return _read(list(steps)).leaks


def _late_result(step: LoggedStep, cancels: dict[int, int]) -> int:
    """A leak: a worker reported one (wall clock), or a result came long after its turn was cancelled."""
    if isinstance(step.event, ev.JobLeaked):
        return 1
    turn = getattr(step.event, "turn", None)
    if turn is None or turn not in cancels or isinstance(step.event, ev.JobCancelled):
        return 0
    return int(step.t - cancels[turn] > CANCEL_DEADLINE_S * RATE_HZ)


@dataclass
class _Transcriptions:
    """Every transcription of the run by (turn, to_sample): early ones of a pause, and the endpoint's."""

    started: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)  # -> (from_sample, at)
    ready: dict[tuple[int, int], tuple[str, int]] = field(default_factory=dict)  # -> (text, at)


def endpoint(step: LoggedStep, before: str) -> tuple[int, int] | None:
    """(turn, end sample) if `step` is an endpoint decision, taken in state `before`: where hearing ended and
    transcribing (or, with the early transcript ready, thinking) began. A turn's request is the utterance
    up to there, and its transcript the transcription up to that sample."""
    if before != "Hearing" or step.state in ("Hearing", "Listening", "?"):
        return None
    if isinstance(step.event, ev.SpeechEnded):
        end = step.event.end_sample
    elif isinstance(step.event, ev.TimerFired) and step.event.kind == "utterance":
        end = step.t
    else:
        return None
    turn = next((c.turn for c in step.commands if isinstance(c, cmd.StartAsr)), None)
    if turn is None:
        turn = next(c.ref for c in step.commands if isinstance(c, cmd.CancelTimer) and c.kind == "utterance")
    return turn, end


def _note_endpoint(step: LoggedStep, before: str, asr: _Transcriptions, turns: dict[int, TurnMarks]) -> None:
    decided = endpoint(step, before)
    if decided is None:
        return
    turn, end = decided
    started = asr.started.get((turn, end))
    from_sample, asr_at = started if started is not None else (0, step.t)
    row = TurnMarks(turn, from_sample, end, endpoint_decided=step.t, asr_started=asr_at)
    if (turn, end) in asr.ready:
        row.transcript, row.transcript_at = asr.ready[(turn, end)]
    turns[turn] = row


def _note_event(step: LoggedStep, asr: _Transcriptions, turns: dict[int, TurnMarks]) -> None:
    event = step.event
    if isinstance(event, ev.TranscriptReady):
        asr.ready[(event.turn, event.to_sample)] = (event.text, step.t)
        row = turns.get(event.turn)
        if row is not None and row.transcript is None and row.asr_to == event.to_sample:
            row.transcript, row.transcript_at = event.text, step.t
    elif isinstance(event, ev.ReplyDelta) and event.turn in turns and turns[event.turn].first_text_at is None:
        turns[event.turn].first_text_at = step.t
    elif isinstance(event, ev.TtsChunkReady) and event.turn in turns and turns[event.turn].first_chunk_at is None:
        turns[event.turn].first_chunk_at = step.t


def _note_command(
    step: LoggedStep,
    command: cmd.Command,
    asr: _Transcriptions,
    turns: dict[int, TurnMarks],
    cuts: list[tuple[int, int]],
    cancels: dict[int, int],
) -> None:
    match command:
        case cmd.StartAsr(turn, start, end):
            asr.started[(turn, end)] = (start, step.t)
            if turn in turns and turns[turn].asr_to == end:  # the endpoint started it (no early one)
                turns[turn].asr_from, turns[turn].asr_started = start, step.t
        case cmd.StartReply(turn):
            if turn in turns:
                turns[turn].reply_started = step.t
        case cmd.StartTts(turn) if turn in turns and turns[turn].first_tts_started is None:
            turns[turn].first_tts_started = step.t
        case cmd.OpenPlayback(epoch, turn) if turn in turns:
            turns[turn].epoch = epoch
        case cmd.CommitHeard(turn) if turn in turns:
            turns[turn].commit = command
        case cmd.CutPlayback(epoch):
            cuts.append((step.t, epoch))
        case cmd.CancelTurn(turn):
            cancels.setdefault(turn, step.t)


def between_ms(start: int | None, end: int | None) -> float | None:
    return None if start is None or end is None else _ms(end - start)


def _turn_row(
    turn: TurnMarks, utterances: list[Utterance], epochs_played: np.ndarray[Any, np.dtype[np.int32]], wake_phrase: str
) -> dict[str, Any] | None:
    if turn.transcript is None:
        return None
    spoken = _best_overlap(utterances, turn.asr_from, turn.asr_to)
    expected = strip_wake_phrase(spoken.text, wake_phrase) if spoken else ""
    first_audio = None
    if turn.epoch is not None:
        played = np.flatnonzero(epochs_played == turn.epoch)
        first_audio = int(played[0]) if len(played) else None
    commit = turn.commit
    return {
        "turn": turn.turn,
        "said": expected,
        "transcript": turn.transcript,
        "wer": word_error_rate(expected, turn.transcript),
        "reply_text": commit.reply_text if commit else "",
        "heard_text": commit.heard_text if commit else "",
        "interrupted": commit.interrupted if commit else True,
        "latency_ms": {
            "endpointing": between_ms(turn.asr_to, turn.endpoint_decided),
            "asr": between_ms(turn.asr_started, turn.transcript_at),
            "asr_after_endpoint": None
            if turn.transcript_at is None or turn.endpoint_decided is None
            else _ms(max(0, turn.transcript_at - turn.endpoint_decided)),
            "reply_first_text": between_ms(turn.reply_started, turn.first_text_at),
            "tts_first_chunk": between_ms(turn.first_tts_started, turn.first_chunk_at),
        },
        "endpoint_to_first_audio_ms": between_ms(turn.endpoint_decided, first_audio),
        "speech_end_to_first_audio_ms": between_ms(spoken.end_sample if spoken else None, first_audio),
    }


def _best_overlap(utterances: list[Utterance], start: int, end: int) -> Utterance | None:
    def overlap(u: Utterance) -> int:
        return min(end, u.end_sample) - max(start, u.start_sample)

    best = max(utterances, key=overlap, default=None)
    return best if best is not None and overlap(best) > 0 else None


def _barge_in_row(talk_over: dict[str, Any]) -> dict[str, Any]:
    """An honoured interruption, in the shape the timeline picture reads."""
    onset_s, cut_s = float(talk_over["onset_s"]), float(talk_over["cut_s"])
    silence_ms = talk_over["onset_to_silence_ms"]
    return {
        "epoch": talk_over["epoch"],
        "truth_onset_s": onset_s,
        "decision_s": cut_s,
        "cut_s": round(onset_s + (silence_ms if silence_ms is not None else 0.0) / 1000, 3),
        "onset_to_decision_ms": round((cut_s - onset_s) * 1000, 1),
        "onset_to_silence_ms": silence_ms,
        "echo_to_user_db": talk_over["echo_to_user_db"],
    }
