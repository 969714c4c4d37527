"""`spine bench audio`: the real-time audio path measured on the configured devices, under load.

For each `sys.setswitchinterval` setting it streams full duplex for `seconds` while real ASR and TTS jobs
keep both cores busy, plays speech-like audio and cuts it every two seconds, and reports: the callback's
duration (p50/p99/max), period jitter (start-to-start minus one period), PortAudio xruns, playback underruns
(the FSM side starving the ring), and cut-to-silence at the device, computed as the samples handed after the
cut order plus the time to the next callback plus PortAudio's reported output latency - and, when the input
is the output's monitor (a PulseAudio null sink), measured at the loopback as well.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from device.audio.duplex import DuplexCallback, PlaybackFeeder
from device.audio.stream import DuplexStream
from device.config import Config, samples
from device.engines.load import load_engines
from device.rates import SPINE_RATE_HZ as RATE_HZ
from device.runtime.card import choose_devices

CUT_EVERY_S = 2.0
GAP_S = 0.5


@dataclass(frozen=True)
class AudioBench:
    switch_interval_ms: float
    seconds: float
    callbacks: int
    callback_p50_us: float
    callback_p99_us: float
    callback_max_us: float
    jitter_p99_ms: float
    jitter_max_ms: float
    xruns: int
    underrun_samples: int
    cuts: int
    handed_after_cut_max_samples: int
    cut_to_silence_max_ms: float
    cut_bound_ms: float
    loopback_cut_to_silence_max_ms: float | None
    output_latency_ms: float


def _load(config: Config, stop: threading.Event) -> list[threading.Thread]:
    engines = load_engines(config)
    speech = engines.tts.synthesize("Once upon a time there was a clockmaker who wound every clock.").audio

    def asr_loop() -> None:
        while not stop.is_set():
            engines.asr.transcribe(speech)

    def tts_loop() -> None:
        while not stop.is_set():
            engines.tts.synthesize("The clocks ticked together like a choir, and the villagers set their days.")

    threads = [threading.Thread(target=f, daemon=True) for f in (asr_loop, tts_loop)]
    for thread in threads:
        thread.start()
    return threads


def _signal(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE_HZ)) / RATE_HZ
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)
    return (9000 * envelope * np.cos(2 * np.pi * (220 * t + 300 * t * t))).astype(np.int16)


def bench_once(config: Config, seconds: float, switch_interval_s: float, load: bool) -> AudioBench:
    period = config.period_samples
    callback = DuplexCallback.with_rings(1 << 17, samples(config.audio.fade_ms / 1000), period)
    feeder = PlaybackFeeder(callback.playback, callback.controls)
    stream = DuplexStream(callback, RATE_HZ, period, choose_devices(config))
    previous = sys.getswitchinterval()
    sys.setswitchinterval(switch_interval_s)
    stop = threading.Event()
    loaders = _load(config, stop) if load else []
    captured: list[np.ndarray] = []
    referenced: list[np.ndarray] = []
    decisions: list[int] = []
    buffer = np.zeros(period, np.int16)
    tick = threading.Event()
    try:
        stream.open()
        began = time.monotonic()
        epoch = 0
        next_open, next_cut = began, float("inf")
        while time.monotonic() - began < seconds:
            now = time.monotonic()
            if now >= next_cut:  # cut, then leave half a second of silence so the cut's tail stands alone
                decisions.append(callback.reference.written)
                feeder.cut(epoch)
                next_open, next_cut = now + GAP_S, float("inf")
            elif now >= next_open:
                epoch += 1
                feeder.open(epoch)
                feeder.queue(epoch, _signal(CUT_EVERY_S + 1))
                next_open, next_cut = float("inf"), now + CUT_EVERY_S
            feeder.pump()
            while callback.capture.available() >= period and callback.reference.available() >= period:
                callback.capture.read_into(buffer)
                captured.append(buffer.copy())
                callback.reference.read_into(buffer)
                referenced.append(buffer.copy())
            callback.reports.clear()
            tick.wait(period / RATE_HZ / 2)
    finally:
        stream.close()
        stop.set()
        for thread in loaders:
            thread.join(timeout=30)
        sys.setswitchinterval(previous)
    return _summarise(stream, callback, switch_interval_s, seconds, decisions, captured, referenced, period)


def _summarise(
    stream: DuplexStream,
    callback: DuplexCallback,
    switch_interval_s: float,
    seconds: float,
    decisions: list[int],
    captured: list[np.ndarray],
    referenced: list[np.ndarray],
    period: int,
) -> AudioBench:
    calls = min(stream.calls, len(stream.durations_ns))
    durations_us = stream.durations_ns[:calls] / 1000
    starts = np.sort(stream.starts_ns[:calls])
    jitter_ms = np.abs(np.diff(starts) / 1e6 - period / RATE_HZ * 1000)[10:]  # skip the stream's start-up
    reference = np.concatenate(referenced) if referenced else np.zeros(0, np.int16)
    capture = np.concatenate(captured) if captured else np.zeros(0, np.int16)
    handed_after = [
        _silent_from(reference, d, d + RATE_HZ // 2) - d for d in decisions if d + RATE_HZ // 2 < len(reference)
    ]
    latency_ms = stream.output_latency_s * 1000
    period_ms = period / RATE_HZ * 1000
    cut_ms = [h / RATE_HZ * 1000 + period_ms + latency_ms for h in handed_after]
    loopback = _loopback_cuts(reference, capture, decisions)
    return AudioBench(
        switch_interval_ms=switch_interval_s * 1000,
        seconds=seconds,
        callbacks=stream.calls,
        callback_p50_us=round(float(np.percentile(durations_us, 50)), 1),
        callback_p99_us=round(float(np.percentile(durations_us, 99)), 1),
        callback_max_us=round(float(durations_us.max()), 1),
        jitter_p99_ms=round(float(np.percentile(jitter_ms, 99)), 2) if len(jitter_ms) else 0.0,
        jitter_max_ms=round(float(jitter_ms.max()), 2) if len(jitter_ms) else 0.0,
        xruns=stream.input_overflows + stream.output_underflows,
        underrun_samples=callback.underrun_samples,
        cuts=len(handed_after),
        handed_after_cut_max_samples=max(handed_after, default=0),
        cut_to_silence_max_ms=round(max(cut_ms, default=0.0), 1),
        # The fade belongs in the bound: it is how a cut avoids a click.
        cut_bound_ms=round(period_ms + latency_ms + samples_to_ms(callback.fade_samples), 1),
        loopback_cut_to_silence_max_ms=loopback,
        output_latency_ms=round(latency_ms, 1),
    )


def samples_to_ms(n: int) -> float:
    return n / RATE_HZ * 1000


QUIET_RUN_SAMPLES = 80
"""5 ms at or below the silence threshold ends what a cut let through: the test signal never dips that long."""


def _silent_from(audio: np.ndarray, start: int, end: int, threshold: int = 30) -> int:
    """Where the sound under way at `start` falls silent (the first run of `QUIET_RUN_SAMPLES` quiet samples),
    or `end`. Not the last loud sample before `end`: under load the callback runs late and then catches up, so
    the next epoch, opened `GAP_S` after the cut by the wall clock, can begin less than `GAP_S` of samples after
    it (measured with both cores busy: the whole half second read as handed after the cut)."""
    quiet = (np.abs(audio[start:end].astype(np.int32)) <= threshold).astype(np.int32)
    if len(quiet) < QUIET_RUN_SAMPLES:
        return end
    runs = np.convolve(quiet, np.ones(QUIET_RUN_SAMPLES, np.int32), mode="valid")
    first = np.flatnonzero(runs == QUIET_RUN_SAMPLES)
    return start + int(first[0]) if len(first) else end


def _loopback_cuts(reference: np.ndarray, capture: np.ndarray, decisions: list[int]) -> float | None:
    """Cut-to-silence at the loopback, when the capture is the playback's monitor (else None)."""
    if len(reference) < RATE_HZ or len(capture) < RATE_HZ:
        return None
    window = min(len(reference), len(capture), 4 * RATE_HZ)
    ref, cap = reference[:window].astype(np.float64), capture[:window].astype(np.float64)
    n = 2 * window
    correlation = np.fft.irfft(np.fft.rfft(cap, n) * np.conj(np.fft.rfft(ref, n)), n)[: RATE_HZ // 2]
    lag = int(np.argmax(correlation))
    aligned = cap[lag:]
    quality = float(np.dot(ref[: len(aligned)], aligned[: len(ref)]))
    norm = float(np.linalg.norm(ref) * np.linalg.norm(aligned[: len(ref)])) + 1e-9
    if quality / norm < 0.8:
        return None  # the input does not hear the output directly (a real room): no loopback measurement
    worst = 0.0
    for decision in decisions:
        window = int(GAP_S * RATE_HZ) // 2
        if decision + lag + window >= len(capture):
            continue
        silent_at = _silent_from(capture, decision + lag, decision + lag + window) - lag
        worst = max(worst, (silent_at - decision) / RATE_HZ * 1000)
    return round(worst, 1)


def table(results: list[AudioBench]) -> str:
    header = (
        "switch ms | callbacks | cb p50 µs | cb p99 µs | cb max µs | jitter p99 ms | jitter max ms | xruns | "
        "underrun | cuts | cut→silence max ms (bound) | at loopback ms"
    )
    rows = [header, "-" * len(header)]
    for r in results:
        rows.append(
            f"{r.switch_interval_ms:9.1f} | {r.callbacks:9d} | {r.callback_p50_us:9.1f} | {r.callback_p99_us:9.1f} | "
            f"{r.callback_max_us:9.1f} | {r.jitter_p99_ms:13.2f} | {r.jitter_max_ms:13.2f} | {r.xruns:5d} | "
            f"{r.underrun_samples:8d} | {r.cuts:4d} | {r.cut_to_silence_max_ms:8.1f} ({r.cut_bound_ms:.1f}) | "
            f"{r.loopback_cut_to_silence_max_ms if r.loopback_cut_to_silence_max_ms is not None else '-'}"
        )
    return "\n".join(rows)


def bench_audio(
    config: Config, seconds: float, switch_intervals_ms: list[float], load: bool, json_path: Path | None
) -> list[AudioBench]:
    results = []
    for interval_ms in switch_intervals_ms:
        print(f"bench: {seconds:.0f} s full duplex, switch interval {interval_ms} ms, load {'on' if load else 'off'}")
        results.append(bench_once(config, seconds, interval_ms / 1000, load))
    print(table(results))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n", encoding="utf-8")
        print(f"bench: JSON in {json_path}")
    return results
