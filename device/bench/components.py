"""What each part of Spine costs on this machine, measured in this process with the real models: speech to text
(whisper.cpp: time per utterance and real-time factor, per thread count), speech synthesis (Piper: time to the first
sentence's audio and real-time factor), the models hearing runs on the FSM thread (AEC3 per 10 ms, Silero per
32 ms, openWakeWord per 80 ms), and hearing as a whole per 10 ms period while idle and while the assistant speaks
(the FSM thread's audio work: canceller, echo judgement, delay tracker, voice and wake models).

Scaling: openWakeWord's cost per hour of audio with 1, 2 and 4 wake word heads (the feature models are shared,
each head adds its own), and the memory each model adds to a process.

Times are wall-clock on one thread of an otherwise quiet machine (`spine bench` runs them one at a time).
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.bench.idle import memory_kb
from device.bench.tables import percentile
from device.config import Config
from device.engines.model_files import verified_model_paths
from device.rates import SPINE_RATE_HZ
from device.sim.room import RoomNoise, room_echo, to_int16
from device.sim.scene import RoomSpec
from device.sim.speech import synthesize

Audio = npt.NDArray[np.int16]

UTTERANCE = "Hey Jarvis, what will the weather be like tomorrow morning in Berlin?"
ANSWER = (
    "Tomorrow morning in Berlin will be cool and cloudy, with a light wind from the west. "
    "It should clear up by the afternoon."
)
PERIOD_SAMPLES = 160
HOUR_S = 3600.0


def _times_ms(run: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        times.append(1000.0 * (time.perf_counter() - began))
    return times


def _summary(times_ms: list[float], audio_s: float | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"mean_ms": round(sum(times_ms) / len(times_ms), 3), "p99_ms": percentile(times_ms, 0.99)}
    if audio_s:
        out["real_time_factor"] = round(out["mean_ms"] / 1000.0 / audio_s, 3)
    return out


def _rss_mb() -> float:
    return round(memory_kb(os.getpid())["VmRSS"] / 1024, 1)


def asr(config: Config, repeats: int) -> dict[str, Any]:
    """whisper.cpp on a 4-5 s request, per thread count (the first call of each is a warm-up, not counted)."""
    from device.engines.asr import WhisperAsr

    audio = synthesize(UTTERANCE)
    audio_s = len(audio) / SPINE_RATE_HZ
    results: dict[str, Any] = {"audio_s": round(audio_s, 2)}
    before = _rss_mb()
    for threads in sorted({1, config.asr.threads_to_use}):
        engine = WhisperAsr(verified_model_paths(config).asr, threads=threads)
        engine.transcribe(audio)
        results[f"threads_{threads}"] = _summary(_times_ms(partial(engine.transcribe, audio), repeats), audio_s)
        results.setdefault("memory_mb", round(_rss_mb() - before, 1))
        del engine
    return results


def tts(config: Config, repeats: int) -> dict[str, Any]:
    """Piper on a two-sentence answer: time to the first sentence's audio, and the whole answer's real-time factor."""
    from device.engines.tts import PiperTts

    before = _rss_mb()
    paths = verified_model_paths(config)
    engine = PiperTts(paths.voice, paths.voice_config)
    memory_mb = round(_rss_mb() - before, 1)
    first_ms, whole_ms, audio_s = [], [], 0.0
    for _ in range(repeats):
        began = time.perf_counter()
        samples = 0
        for index, chunk in enumerate(engine.synthesize_chunks(ANSWER)):
            if index == 0:
                first_ms.append(1000.0 * (time.perf_counter() - began))
            samples += len(chunk.audio)
        whole_ms.append(1000.0 * (time.perf_counter() - began))
        audio_s = samples / SPINE_RATE_HZ
    return {
        "audio_s": round(audio_s, 2),
        "first_chunk": _summary(first_ms),
        "whole": _summary(whole_ms, audio_s),
        "memory_mb": memory_mb,
    }


def _room(speech: Audio) -> tuple[Audio, Audio]:
    """The assistant's speech (whole periods of it) and what the mic hears of it in an ordinary room (60 ms, RT60
    0.3 s)."""
    played = speech[: len(speech) // PERIOD_SAMPLES * PERIOD_SAMPLES]
    room = RoomSpec(echo_delay_ms=60.0, echo_gain_db=-6.0, rt60_s=0.3, noise_dbfs=-60.0)
    return played, to_int16(room_echo(played, room, SPINE_RATE_HZ, PERIOD_SAMPLES))


def hearing(config: Config, seconds: float) -> dict[str, Any]:
    """Each hearing model per call, and hearing as a whole per 10 ms period, idle and while the assistant speaks
    (built as the daemon builds it, with the real models and the canceller)."""
    from device.engines.aec import EchoCanceller
    from device.engines.load import load_engines
    from device.runtime.hearing import hearing_of

    engines = load_engines(config)
    speech = synthesize(ANSWER)
    played, mic = _room(np.tile(speech, max(1, round(seconds * SPINE_RATE_HZ / len(speech)))))
    periods = len(played) // PERIOD_SAMPLES
    silence = np.zeros(PERIOD_SAMPLES, np.int16)
    quiet_mic = to_int16(RoomNoise(-60.0, 1).next(len(played)))

    def per_period(play: bool) -> list[float]:
        aec = EchoCanceller(converge_erle_db=config.aec.converge_erle_db) if config.aec.enabled else None
        heard = hearing_of(engines, config, aec, PERIOD_SAMPLES)
        times = []
        for index in range(periods):
            at = index * PERIOD_SAMPLES
            raw = (mic if play else quiet_mic)[at : at + PERIOD_SAMPLES]
            reference = played[at : at + PERIOD_SAMPLES] if play else silence
            began = time.perf_counter()
            cleaned, _ = heard.clean(raw, reference)
            heard.hear(cleaned, at, reference, raw=raw)
            times.append(1000.0 * (time.perf_counter() - began))
        return times

    idle, speaking = per_period(False), per_period(True)
    aec = EchoCanceller()
    aec_ms = _times_ms(lambda: aec.process(mic[:PERIOD_SAMPLES], played[:PERIOD_SAMPLES]), 500)
    vad_ms = _times_ms(lambda: engines.vad.probability(mic[:512]), 300)
    wake_ms = _times_ms(lambda: engines.wake.score(mic[:1280]), 100)

    def share(times_ms: list[float]) -> float:
        return round(100.0 * sum(times_ms) / (len(times_ms) * PERIOD_SAMPLES / SPINE_RATE_HZ * 1000.0), 2)

    return {
        "audio_s": round(periods * PERIOD_SAMPLES / SPINE_RATE_HZ, 1),
        "aec_per_10ms": _summary(aec_ms),
        "vad_per_32ms": _summary(vad_ms),
        "wake_per_80ms": _summary(wake_ms),
        "hearing_per_10ms_idle": {**_summary(idle), "percent_of_core": share(idle)},
        "hearing_per_10ms_speaking": {**_summary(speaking), "percent_of_core": share(speaking)},
    }


def wake_scaling(config: Config, seconds: float) -> dict[str, Any]:
    """openWakeWord with 1, 2 and 4 heads (the configured head, loaded that many times) over `seconds` of a quiet
    room: CPU seconds per hour of audio, and the memory each head adds."""
    from device.engines.openwakeword_import import Model

    paths = verified_model_paths(config)
    audio = to_int16(RoomNoise(-60.0, 2).next(round(seconds * SPINE_RATE_HZ)))
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="spine-bench-heads-") as tmp:
        # openWakeWord keys its heads by file name: the same head under four names is four heads.
        names = [Path(tmp) / f"head_{n}.onnx" for n in range(4)]
        for name in names:
            name.symlink_to(paths.wake_head.resolve())
        for heads in (1, 2, 4):
            results[f"heads_{heads}"] = _wake_cost(Model, names[:heads], paths.melspec, paths.embedding, audio)
    return results


def _wake_cost(model_class: Any, heads: list[Path], melspec: Path, embedding: Path, audio: Audio) -> dict[str, float]:
    before = _rss_mb()
    model = model_class(
        wakeword_models=[str(head) for head in heads], inference_framework="onnx",
        melspec_model_path=str(melspec), embedding_model_path=str(embedding), ncpu=1,
    )  # fmt: skip
    loaded = _rss_mb()
    began = resource.getrusage(resource.RUSAGE_SELF)
    for start in range(0, len(audio) - 1280 + 1, 1280):
        model.predict(audio[start : start + 1280])
    ended = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = ended.ru_utime + ended.ru_stime - began.ru_utime - began.ru_stime
    seconds = len(audio) / SPINE_RATE_HZ
    return {
        "cpu_s_per_hour_of_audio": round(cpu_s * HOUR_S / seconds, 1),
        "percent_of_core": round(100.0 * cpu_s / seconds, 2),
        "memory_mb": round(loaded - before, 1),
    }
