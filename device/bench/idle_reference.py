"""The peers' idle listening loop, the bar `spine bench` measures Spine's idle cost against: openWakeWord's own
`Model.predict` on 80 ms frames of the default microphone (16 kHz, PortAudio through PulseAudio), over the same
model files Spine loads, and with `--vad` also Silero VAD on every 32 ms of it (plain ONNX Runtime, one thread:
how openWakeWord's examples and wyoming-satellite pair the two). Nothing else: no echo cancellation, no second
detector, no event log. Runs until SIGTERM or `--seconds`.

Run as `python -m device.bench.idle_reference MELSPEC EMBEDDING HEAD [--vad SILERO]`: it imports no other part
of Spine, so its memory is the peers' (numpy, onnxruntime, openwakeword, PyAudio) and nothing of ours.
"""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np

FRAME_SAMPLES = 1280
"""80 ms at 16 kHz: openWakeWord's hop."""
VAD_CHUNK_SAMPLES = 512
"""32 ms at 16 kHz: Silero's chunk."""
RATE_HZ = 16000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("melspec", type=Path)
    parser.add_argument("embedding", type=Path)
    parser.add_argument("head", type=Path)
    parser.add_argument("--vad", type=Path, help="also run this Silero VAD model on every 32 ms")
    parser.add_argument("--seconds", type=float, default=3600.0, help="stop after this long (default 3600)")
    args = parser.parse_args()
    import pyaudio  # type: ignore[import-untyped]
    from openwakeword.model import Model

    model = Model(
        wakeword_models=[str(args.head)], inference_framework="onnx", melspec_model_path=str(args.melspec),
        embedding_model_path=str(args.embedding), ncpu=1,
    )  # fmt: skip
    vad = _Silero(args.vad) if args.vad else None
    stopping = False

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    audio = pyaudio.PyAudio()
    stream = audio.open(rate=RATE_HZ, channels=1, format=pyaudio.paInt16, input=True,
                        frames_per_buffer=FRAME_SAMPLES)  # fmt: skip
    print("listening", flush=True)
    ends_at = time.monotonic() + args.seconds
    while not stopping and time.monotonic() < ends_at:
        frame = np.frombuffer(stream.read(FRAME_SAMPLES, exception_on_overflow=False), np.int16)
        model.predict(frame)
        if vad is not None:
            for start in range(0, FRAME_SAMPLES - VAD_CHUNK_SAMPLES + 1, VAD_CHUNK_SAMPLES):
                vad.probability(frame[start : start + VAD_CHUNK_SAMPLES])
    stream.close()
    audio.terminate()


class _Silero:
    """Silero v5 as its reference loop runs it: 512 samples with the previous 64 in front, the state carried."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._state = np.zeros((2, 1, 128), np.float32)
        self._context = np.zeros((1, 64), np.float32)
        self._rate = np.array(RATE_HZ, np.int64)

    def probability(self, chunk: np.ndarray[Any, np.dtype[np.int16]]) -> float:
        audio = np.concatenate([self._context, chunk[None, :].astype(np.float32) / 32768.0], axis=1)
        output, self._state = self._session.run(None, {"input": audio, "state": self._state, "sr": self._rate})
        self._context = audio[:, -64:]
        return float(output[0][0])


if __name__ == "__main__":
    main()
