"""pipecat's own voice-activity decision over recorded WAV files: run in the peer venv, never imported by Spine.

`spine bench` compares Spine's barge-in with pipecat's (device/bench/peer_pipecat.py). pipecat has its own
dependencies (pipecat-ai[silero] pins its own onnxruntime, numpy, pydantic, loguru, ...), so it lives in a venv
of its own and this file runs there as a script: it imports only the standard library, numpy and pipecat, not
Spine. Usage:

    PEER_VENV/bin/python peer_pipecat_vad.py FILE.wav [FILE.wav ...]  > result.json

Each file (16 kHz, mono, 16-bit) goes through what pipecat does with a local microphone by default:
* the audio arrives in 20 ms chunks (`LocalAudioInputTransport.setup`: `int(sample_rate / 100) * 2` frames
  per PyAudio buffer), and pipecat can act on a chunk only once the whole of it has arrived;
* each chunk is an `InputAudioRawFrame` given to a `VADController` around a `SileroVADAnalyzer` with its default
  `VADParams`, which is what `LLMUserAggregator` builds from `LLMUserAggregatorParams(vad_analyzer=...)`;
* the controller's `on_speech_started` is the moment the aggregator broadcasts `VADUserStartedSpeakingFrame`,
  the default `VADUserTurnStartStrategy` starts the user turn, and with interruptions on (the default) the
  aggregator broadcasts the interruption that makes the output transport drop its queued audio.

A fresh analyzer per file: each file is a session of its own. Times are seconds from the file's first sample to
the end of the chunk that completed the transition. The result, one JSON object on stdout:

    {"pipecat_version": "...", "vad_params": {...}, "window_samples": 512, "input_chunk_samples": 320,
     "output_chunk_ms": 40,
     "files": [{"path": "...", "duration_s": ..., "starts_s": [...], "stops_s": [...]}, ...]}

`output_chunk_ms` is pipecat's default output chunk (`TransportParams.audio_out_10ms_chunks` x 10 ms): on an
interruption the chunk being written still plays out. Progress goes to stderr; pipecat's own log is cut to
warnings.
"""

from __future__ import annotations

import asyncio
import json
import sys
import wave
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger  # type: ignore[import-not-found]
from pipecat.audio.vad.silero import SileroVADAnalyzer  # type: ignore[import-not-found]
from pipecat.audio.vad.vad_controller import VADController  # type: ignore[import-not-found]
from pipecat.frames.frames import InputAudioRawFrame  # type: ignore[import-not-found]
from pipecat.transports.base_transport import TransportParams  # type: ignore[import-not-found]

RATE_HZ = 16000
INPUT_CHUNK_SAMPLES = int(RATE_HZ / 100) * 2
"""pipecat's local input transport reads 20 ms per PyAudio buffer (transports/local/audio.py)."""


def read_wav(path: Path) -> bytes:
    """The int16 samples of a 16 kHz mono 16-bit WAV file, as bytes; anything else is an error naming the file."""
    with wave.open(str(path), "rb") as source:
        shape = (source.getframerate(), source.getnchannels(), source.getsampwidth())
        if shape != (RATE_HZ, 1, 2):
            raise SystemExit(f"{path}: need 16000 Hz mono 16-bit, got {shape[0]} Hz, {shape[1]} ch, {shape[2]} B")
        return source.readframes(source.getnframes())


async def speech_changes(audio: bytes) -> tuple[list[float], list[float]]:
    """When pipecat's VAD controller reported speech started and stopped, seconds into `audio`."""
    analyzer = SileroVADAnalyzer()
    analyzer.set_sample_rate(RATE_HZ)  # what VADController.setup does with the pipeline's input rate
    # No idle timer: the audio never pauses here, and the timer runs on the wall clock, not on the audio's.
    controller = VADController(analyzer, audio_idle_timeout=0)
    starts_s: list[float] = []
    stops_s: list[float] = []
    fed_samples = 0

    async def started(_controller: VADController) -> None:
        starts_s.append(round(fed_samples / RATE_HZ, 4))

    async def stopped(_controller: VADController) -> None:
        stops_s.append(round(fed_samples / RATE_HZ, 4))

    controller.add_event_handler("on_speech_started", started)
    controller.add_event_handler("on_speech_stopped", stopped)
    chunk_bytes = INPUT_CHUNK_SAMPLES * 2
    whole = len(audio) - len(audio) % chunk_bytes  # a last partial chunk never arrives from the device
    for at in range(0, whole, chunk_bytes):
        fed_samples += INPUT_CHUNK_SAMPLES
        frame = InputAudioRawFrame(audio=audio[at : at + chunk_bytes], sample_rate=RATE_HZ, num_channels=1)
        await controller.process_frame(frame)
    await analyzer.cleanup()
    return starts_s, stops_s


async def main(paths: list[Path]) -> dict[str, Any]:
    files = []
    for number, path in enumerate(paths, start=1):
        audio = read_wav(path)
        starts_s, stops_s = await speech_changes(audio)
        files.append(
            {
                "path": str(path),
                "duration_s": round(len(audio) / 2 / RATE_HZ, 4),
                "starts_s": starts_s,
                "stops_s": stops_s,
            }
        )
        print(f"pipecat VAD: {number}/{len(paths)} {path} ({len(starts_s)} starts)", file=sys.stderr, flush=True)
    analyzer = SileroVADAnalyzer()
    analyzer.set_sample_rate(RATE_HZ)
    settings = {
        "pipecat_version": metadata.version("pipecat-ai"),
        "vad_params": analyzer.params.model_dump(),
        "window_samples": analyzer.num_frames_required(),
        "input_chunk_samples": INPUT_CHUNK_SAMPLES,
        "output_chunk_ms": TransportParams().audio_out_10ms_chunks * 10,
        "numpy_version": np.__version__,
    }
    await analyzer.cleanup()
    return settings | {"files": files}


if __name__ == "__main__":
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    if len(sys.argv) < 2:
        raise SystemExit("usage: peer_pipecat_vad.py FILE.wav [FILE.wav ...]")
    print(json.dumps(asyncio.run(main([Path(name) for name in sys.argv[1:]]))))
