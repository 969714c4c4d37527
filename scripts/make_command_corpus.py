"""A deterministic corpus of short spoken commands over the assistant's own echo, and an accuracy report on it.

Each case is what the daemon hands the ASR after a talk-over: a user (espeak-ng, several voices) says a stop
phrase or a short real request while a reply (Piper, or espeak-ng) plays; the room (`device.sim.room.EchoPath`)
adds the reply's echo at a delay of 20-300 ms, an RT60 of 0.3-0.6 s and a level of -6..+6 dB relative to the
user; the echo canceller (`device.engines.aec.EchoCanceller`, fed the played reference) cleans the microphone,
either cold (a fresh canceller: the user starts 0.3-1.5 s into the first reply, before it converges) or warm
(the canceller has already heard 6 s of another reply); the cleaned audio is cut from 0.15 s before the user's
onset (the daemon's preroll) to 0.3 s after the user's last word (the early-transcription pause).

Every parameter comes from a seeded generator per case, so the corpus is the same audio on every run (the
canceller is bit-exact on one architecture). Nothing is written to the repository: audio is built in memory.

    .venv/bin/python scripts/make_command_corpus.py            # accuracy and ASR time per utterance
    .venv/bin/python scripts/make_command_corpus.py --show     # and every transcript
    .venv/bin/python scripts/make_command_corpus.py --wake     # the wake word's scores on each mic, no ASR

`--wake` builds "Hey Jarvis, <question>" talk-overs and short requests and stop phrases without the wake word
the same way (seed 11), and counts how often the wake word model scores its threshold on the cleaned mic, on the
raw mic, and on either: which mic hearing's wake word should listen to while the echo sounds
(device/runtime/hearing.py, `hear`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from device.core.memory import is_stop_phrase
from device.core.states import DEFAULT_STOP_PHRASES
from device.engines.aec import FRAME_SAMPLES, OUTPUT_DELAY_SAMPLES, EchoCanceller
from device.sim.room import EchoPath, RoomNoise
from device.sim.scene import RoomSpec
from device.sim.speech import synthesize

Audio = npt.NDArray[np.int16]

RATE_HZ = 16000
PREROLL_S = 0.15
"""The daemon's `listen.preroll_s`: the utterance handed to the ASR starts this long before the VAD onset."""
TAIL_S = 0.3
"""The daemon transcribes early after 0.3 s of silence (`asr.early_pause_s`), so that much follows the words."""
WARM_PRELUDE_S = 6.0
"""Reply heard before the talk-over by a warm canceller: past AEC3's 2.5 s initial state and its convergence."""
NOISE_DBFS = -60.0

STOP_PHRASES = ("Stop.", "Cancel.", "Never mind.", "Be quiet.", "Hey Jarvis, stop.")
REQUESTS = (
    "What time is it?",
    "Tell me a story.",
    "What's the date?",
    "Set a timer for five minutes.",
    "Tell me a joke.",
    "What's the weather?",
)
"""Short real requests that must never read as a stop (not "Stop the timer.": that one rightly stops a ring)."""
WAKE_QUESTIONS = (
    "Hey Jarvis. What time is it?",
    "Hey Jarvis, tell me a joke.",
    "Hey Jarvis. What's the date?",
    "Hey Jarvis, set a timer for five minutes.",
)
WAKE_SEED = 11
WAKE_THRESHOLD = 0.5
"""The daemon's default `wake.threshold`."""
VOICES = ("en-us", "en-gb", "en-us+f3", "en-us+m3", "en-gb+f2", "en-us+m7")
REPLIES = (
    "Once upon a time, in a small village by the sea, there lived an old fisherman and his clever daughter. "
    "Every morning they rowed out before the sun rose, and every evening they came home with stories to tell.",
    "It is twenty past four in the afternoon. I can also set timers, tell you the date, or read you a story "
    "while you wait for the kettle to boil.",
)


@dataclass(frozen=True)
class Case:
    """One utterance as the ASR gets it, and what produced it."""

    name: str
    text: str
    is_stop: bool
    audio: Audio
    voice: str
    echo_db: float
    """Echo level relative to the user's speech (RMS over active frames), dB; positive: the echo is louder."""
    delay_ms: float
    rt60_s: float
    onset_s: float
    """When the user starts, seconds after the (talked-over) reply starts."""
    warm: bool
    reply_voice: str


def _active_rms(audio: npt.NDArray[np.float64]) -> float:
    """RMS over the 10 ms frames within 30 dB of the loudest: the level of speech, not of its pauses."""
    frames = audio[: len(audio) // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)
    energies = (frames**2).mean(axis=1)
    active = energies[energies >= energies.max() * 1e-3]
    return float(np.sqrt(active.mean()))


def _onset_and_end(audio: Audio) -> tuple[int, int]:
    """First and last sample of the frames within 40 dB of the loudest: where a VAD would put the words."""
    frames = audio[: len(audio) // FRAME_SAMPLES * FRAME_SAMPLES].astype(np.float64).reshape(-1, FRAME_SAMPLES)
    energies = (frames**2).mean(axis=1)
    loud = np.flatnonzero(energies >= energies.max() * 1e-4)
    return int(loud[0]) * FRAME_SAMPLES, (int(loud[-1]) + 1) * FRAME_SAMPLES


_piper_cache: dict[str, Audio] = {}


def _reply_audio(text: str, voice: str) -> Audio:
    if voice != "piper":
        return synthesize(text, voice)
    if text not in _piper_cache:
        from device.engines.tts import PiperTts

        models = Path(os.environ.get("SPINE_MODELS_DIR", str(Path.home() / ".local/share/spine/models")))
        tts = PiperTts(models / "tts/en_US-joe-medium.onnx", models / "tts/en_US-joe-medium.onnx.json", True)
        _piper_cache[text] = tts.synthesize(text).audio
    return _piper_cache[text]


def _pad_frames(audio: npt.NDArray[np.float64], samples: int) -> npt.NDArray[np.float64]:
    out = np.zeros(samples, dtype=np.float64)
    out[: min(samples, len(audio))] = audio[:samples]
    return out


def make_case(
    index: int, text: str, is_stop: bool, seed: int, *, user_in_mic: bool = True, cancel: bool = True
) -> Case:
    """Case `index` of `text`: every random choice is drawn from `seed`, so it is the same audio every run.

    `user_in_mic=False`: the same window with the user silent (the echo residue alone, at the same level).
    `cancel=False`: the raw microphone, without the echo canceller (for comparison).
    """
    rng = np.random.default_rng([seed, index])
    voice = VOICES[index % len(VOICES)]
    warm = bool(rng.integers(0, 3) == 0)  # the cold start is the hard case and the issue's: two in three
    reply_voice = "piper" if rng.integers(0, 3) else str(rng.choice(["en-us", "en-gb+m3"]))
    echo_db = float(rng.uniform(-6.0, 6.0))
    delay_ms = float(rng.uniform(20.0, 300.0))
    rt60_s = float(rng.uniform(0.3, 0.6))
    onset_s = float(rng.uniform(0.3, 1.5))
    user = synthesize(text, voice)
    user_start, user_end = _onset_and_end(user)
    user = user[user_start:user_end]

    reply = _reply_audio(REPLIES[index % len(REPLIES)], reply_voice).astype(np.float64)
    prelude = _reply_audio(REPLIES[(index + 1) % len(REPLIES)], reply_voice).astype(np.float64)
    prelude = prelude[: round(WARM_PRELUDE_S * RATE_HZ)] if warm else prelude[:0]
    onset = len(prelude) + round(onset_s * RATE_HZ)
    end = onset + len(user) + round(TAIL_S * RATE_HZ)
    total = (end + OUTPUT_DELAY_SAMPLES) // FRAME_SAMPLES * FRAME_SAMPLES + FRAME_SAMPLES
    played = _pad_frames(np.concatenate((prelude, reply)), total)

    room = RoomSpec(echo_delay_ms=delay_ms, echo_gain_db=0.0, rt60_s=rt60_s, noise_dbfs=NOISE_DBFS, seed=index)
    echo = EchoPath(room, RATE_HZ).process(np.round(played).astype(np.int16)).astype(np.float64)
    # The echo's level is set against the user's voice (the coupling is relative to the user), measured
    # over the talked-over stretch of the echo, where it matters.
    talked_over = echo[onset : onset + len(user)]
    echo *= _active_rms(user.astype(np.float64)) * 10.0 ** (echo_db / 20.0) / max(_active_rms(talked_over), 1.0)
    mic = echo + RoomNoise(NOISE_DBFS, index).next(total).astype(np.float64)
    if user_in_mic:
        mic[onset : onset + len(user)] += user
    mic_int16 = np.clip(np.round(mic), -32768, 32767).astype(np.int16)
    reference = np.clip(np.round(played), -32768, 32767).astype(np.int16)

    canceller = EchoCanceller()
    cleaned = (
        mic_int16
        if not cancel
        else np.concatenate(
            [
                canceller.process(mic_int16[start : start + FRAME_SAMPLES], reference[start : start + FRAME_SAMPLES])
                for start in range(0, total, FRAME_SAMPLES)
            ]
        )
    )
    delay = OUTPUT_DELAY_SAMPLES if cancel else 0
    audio = cleaned[onset - round(PREROLL_S * RATE_HZ) + delay : end + delay].copy()
    name = f"{index:03d} {voice:9s} {'warm' if warm else 'cold'} {reply_voice:8s} echo {echo_db:+4.1f} dB"
    return Case(name, text, is_stop, audio, voice, echo_db, delay_ms, rt60_s, onset_s, warm, reply_voice)


def corpus(repeats: int = 2, seed: int = 9, *, cancel: bool = True, step: int = 1) -> Iterator[Case]:
    """Each stop phrase and request `len(VOICES) * repeats // 2` times, every voice in turn; with `step`, only
    every `step`-th case is built (the others are skipped, not made and dropped)."""
    index = 0
    for text, is_stop in [(p, True) for p in STOP_PHRASES] + [(r, False) for r in REQUESTS]:
        for _ in range(len(VOICES) * repeats // 2):
            if index % step == 0:
                yield make_case(index, text, is_stop, seed, cancel=cancel)
            index += 1


def wake_report(repeats: int = 4) -> None:
    """Each wake-word question and each request or stop phrase without it `repeats` times, cleaned and raw: the
    wake word model's best score over the utterance (after a second of quiet, as a running detector has history),
    counted against `WAKE_THRESHOLD` per mic, cold and warm."""
    from device.engines.wakeword import WakeWordDetector

    models = Path(os.environ.get("SPINE_MODELS_DIR", str(Path.home() / ".local/share/spine/models")))
    folder = models / "wakeword"
    detector = WakeWordDetector(
        folder / "melspectrogram.onnx", folder / "embedding_model.onnx", folder / "hey_jarvis_v0.1.onnx"
    )

    def best_score(audio: Audio) -> float:
        detector.reset()
        padded = np.concatenate((np.zeros(RATE_HZ, np.int16), audio))
        frame = detector.FRAME_SAMPLES
        return max(detector.score(padded[i : i + frame]) for i in range(0, len(padded) - frame + 1, frame))

    counts: dict[tuple[bool, bool], list[int]] = {}  # (wake said, warm) -> [cases, cleaned, raw, either, rule]
    worst_without = 0.0
    index = 0
    for texts, said in ((WAKE_QUESTIONS, True), ((*REQUESTS, "Stop.", "Never mind."), False)):
        for text in texts:
            for _ in range(repeats):
                cleaned_case = make_case(index, text, False, WAKE_SEED)
                cleaned = best_score(cleaned_case.audio)
                raw = best_score(make_case(index, text, False, WAKE_SEED, cancel=False).audio)
                rule = cleaned if cleaned_case.warm else raw  # hearing's choice before both were scored
                row = counts.setdefault((said, cleaned_case.warm), [0, 0, 0, 0, 0])
                row[0] += 1
                for column, score in enumerate((cleaned, raw, max(cleaned, raw), rule), start=1):
                    row[column] += score >= WAKE_THRESHOLD
                if not said:
                    worst_without = max(worst_without, cleaned, raw)
                print(f"{cleaned_case.name} {text!r:44} cleaned {cleaned:.3f} raw {raw:.3f}")
                index += 1
    print(f"\nscoring {WAKE_THRESHOLD} or more    cases  cleaned  raw  either  cleaned warm / raw cold")
    for (said, warm), (cases, cleaned_hits, raw_hits, either, rule) in sorted(counts.items(), reverse=True):
        kind = f"{'wake word said' if said else 'no wake word  '} {'warm' if warm else 'cold'}"
        print(f"{kind}      {cases:5d}  {cleaned_hits:7d}  {raw_hits:3d}  {either:6d}  {rule:7d}")
    print(f"best score of any case without the wake word: {worst_without:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2, help="cases per text: 3 x this (default 2)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--show", action="store_true", help="print every transcript")
    parser.add_argument("--no-command-pass", action="store_true", help="free decoding only (the ASR before it)")
    parser.add_argument("--raw", action="store_true", help="the raw microphone, without the echo canceller")
    parser.add_argument("--wake", action="store_true", help="the wake word's scores on each mic instead (no ASR)")
    args = parser.parse_args()
    if args.wake:
        wake_report()
        return
    from device.engines.asr import COMMANDS, WhisperAsr

    models = Path(os.environ.get("SPINE_MODELS_DIR", str(Path.home() / ".local/share/spine/models")))
    asr = WhisperAsr(
        models / "asr/ggml-tiny.en.bin", threads=args.threads, commands=() if args.no_command_pass else COMMANDS
    )
    hits = {True: 0, False: 0}
    counts = {True: 0, False: 0}
    times_ms: list[float] = []
    for case in corpus(args.repeats, cancel=not args.raw):
        # CPU time, not wall time: with one thread it is the ASR's cost, whatever else the machine runs.
        started_s = time.process_time()
        heard = asr.transcribe(case.audio)
        times_ms.append(1000.0 * (time.process_time() - started_s))
        right = is_stop_phrase(heard, DEFAULT_STOP_PHRASES) == case.is_stop
        hits[case.is_stop] += right
        counts[case.is_stop] += 1
        if args.show or not right:
            print(f"{'ok ' if right else 'BAD'} {case.name} {case.text!r:34} -> {heard!r}")
    print(f"stop phrases recognised as a stop: {hits[True]}/{counts[True]}")
    print(f"requests never a stop:             {hits[False]}/{counts[False]}")
    ordered = sorted(times_ms)
    print(f"ASR CPU ms per utterance: median {ordered[len(ordered) // 2]:.0f}, max {ordered[-1]:.0f}")


if __name__ == "__main__":
    main()
