"""Devices that cannot run at 16 kHz: the callback runs at the device's native rate, and the FSM thread
resamples (never the callback: resampling is filtering, too much work for a period's GIL slot).

Mic and echo reference pass through two identical streaming resamplers fed identical block lengths, so they
come out with identical lengths and stay aligned sample for sample. The assistant's speech is resampled a
sentence at a time before it enters the playback ring. Played-sample counts come back from the callback in
device samples and are converted to 16 kHz samples, the unit of the heard-text word timing.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import soxr

Audio = npt.NDArray[np.int16]


class RateBridge:
    def __init__(self, device_rate_hz: int, spine_rate_hz: int) -> None:
        self.device_rate_hz = device_rate_hz
        self.spine_rate_hz = spine_rate_hz
        self._mic = soxr.ResampleStream(device_rate_hz, spine_rate_hz, 1, dtype="int16")
        self._reference = soxr.ResampleStream(device_rate_hz, spine_rate_hz, 1, dtype="int16")
        self._mic_out = np.zeros(0, np.int16)
        self._reference_out = np.zeros(0, np.int16)

    @property
    def identity(self) -> bool:
        return self.device_rate_hz == self.spine_rate_hz

    def to_device(self, audio: Audio) -> Audio:
        """A whole sentence of speech, at the device rate."""
        if self.identity or not len(audio):
            return audio
        out: Audio = soxr.resample(audio, self.spine_rate_hz, self.device_rate_hz).astype(np.int16)
        return out

    def from_device(self, mic: Audio, reference: Audio) -> None:
        """Blocks of mic and of played samples, same length, at the device rate."""
        if self.identity:
            self._mic_out = np.concatenate([self._mic_out, mic])
            self._reference_out = np.concatenate([self._reference_out, reference])
            return
        self._mic_out = np.concatenate([self._mic_out, self._mic.resample_chunk(mic)])
        self._reference_out = np.concatenate([self._reference_out, self._reference.resample_chunk(reference)])

    def periods(self, period_samples: int) -> Iterator[tuple[Audio, Audio]]:
        """Whole periods at the Spine rate: (mic, what was played meanwhile)."""
        ready = min(len(self._mic_out), len(self._reference_out)) // period_samples * period_samples
        for at in range(0, ready, period_samples):
            yield self._mic_out[at : at + period_samples], self._reference_out[at : at + period_samples]
        self._mic_out = self._mic_out[ready:]
        self._reference_out = self._reference_out[ready:]

    def to_spine_samples(self, device_samples: int) -> int:
        return device_samples * self.spine_rate_hz // self.device_rate_hz
