"""Earcons: the short chimes that tell the user what the assistant is doing without words.

| kind      | when (the spine decides, see `device/core/machine.py`)          | sound                        |
|-----------|----------------------------------------------------------------|------------------------------|
| `wake`    | the wake word was accepted: listening now                       | two bell notes, rising        |
| `timeout` | a listening window opened by the wake word closed without words | the same two notes, falling   |
| `mute`    | the microphone was turned off                                   | one low note                 |
| `unmute`  | the microphone was turned on again                              | one high note                |
| `startup` | the daemon started (once, before anything else)                 | 4 rising notes on soft noise |

Why bells of pure partials: the chime comes back into the microphone, and it must never look like speech.
Silero's voice probability stays low on stationary sinusoids without formants or pitch glide (measured in
`tests/test_earcons.py` through the simulated room at 0 dB coupling, where the echo canceller has not
converged yet), and whisper writes no words for it. The notes are short (the wake chime is 170 ms) so a user
who keeps talking after the wake word is not talked over for long; hearing does not treat an earcon as the
assistant's speech (it does not close the echo gate), so the user is heard through it.

The start-up sound has a second job: it is what the echo canceller and the played-reference echo model
(`device/runtime/echo_reference.py`) first learn the speaker-to-mic path from, before the first answer, so
the user can talk over that answer from its first syllable. Bells alone excite a few frequencies; the soft
band of noise under them (pink, 200 Hz-7 kHz, fading in and out) reaches every band the model measures. It
plays once, when nobody is talking yet, like a smart speaker's boot sound.

Pure functions of (kind, rate, level): the same chime to the sample on every run, so event logs replay.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

Audio = npt.NDArray[np.int16]
EarconKind = Literal["wake", "timeout", "mute", "unmute", "startup"]
EARCON_KINDS: tuple[str, ...] = get_args(EarconKind)

_G5_HZ, _D6_HZ, _C5_HZ, _C6_HZ = 783.99, 1174.66, 523.25, 1046.50
# (note frequency Hz, start ms, length ms) per kind; the notes of one chime overlap a little, like a bell's.
NOTES: dict[str, tuple[tuple[float, float, float], ...]] = {
    "wake": ((_G5_HZ, 0.0, 110.0), (_D6_HZ, 60.0, 110.0)),
    "timeout": ((_D6_HZ, 0.0, 110.0), (_G5_HZ, 60.0, 110.0)),
    "mute": ((_C5_HZ, 0.0, 160.0),),
    "unmute": ((_C6_HZ, 0.0, 160.0),),
    "startup": ((_C5_HZ, 0.0, 400.0), (659.25, 200.0, 400.0), (_G5_HZ, 400.0, 400.0), (_C6_HZ, 600.0, 600.0)),
}
STARTUP_NOISE_S = 1.2
STARTUP_NOISE_BELOW_PEAK_DB = 10.0
"""The noise's RMS relative to the notes' peak (the sum is then scaled to the chime level): about as loud as
speech, so the echo of every band stands well above a quiet room's noise."""
_NOISE_FADE_S = 0.15
_NOISE_SEED = 2026
_PARTIALS = ((1.0, 1.0), (2.0, 0.25), (3.0, 0.08))  # (multiple of the note, relative amplitude): a soft bell
_ATTACK_MS = 5.0  # a click-free start; the end decays to silence on its own
DEFAULT_LEVEL_DBFS = -14.0
"""Peak level: clearly audible next to speech (Piper peaks near -3 dBFS) without startling anyone."""


def earcon_seconds(kind: str) -> float:
    """How long the chime `kind` lasts."""
    notes_s = max(start + length for _, start, length in NOTES[kind]) / 1000
    return max(notes_s, STARTUP_NOISE_S) if kind == "startup" else notes_s


def _startup_noise(samples: int, rate_hz: int) -> npt.NDArray[np.float64]:
    """Pink noise band-limited to 200 Hz-7 kHz with unit RMS, faded in and out (the same on every run)."""
    spectrum = np.fft.rfft(np.random.default_rng(_NOISE_SEED).standard_normal(samples))
    freqs_hz = np.fft.rfftfreq(samples, 1 / rate_hz)
    inside = (freqs_hz >= 200.0) & (freqs_hz <= min(7000.0, rate_hz / 2))
    spectrum = np.where(inside, spectrum / np.sqrt(np.maximum(freqs_hz, 1.0)), 0.0)
    noise = np.fft.irfft(spectrum, samples)
    noise /= float(np.sqrt(np.mean(noise**2)))
    fade = np.minimum(1.0, np.minimum(np.arange(samples), samples - 1 - np.arange(samples)) / (_NOISE_FADE_S * rate_hz))
    return np.asarray(noise * fade, dtype=np.float64)


def earcon(kind: str, rate_hz: int = 16000, level_dbfs: float = DEFAULT_LEVEL_DBFS) -> Audio:
    """The chime `kind` as int16 mono at `rate_hz`, peaking at `level_dbfs`."""
    if kind not in NOTES:
        raise ValueError(f"unknown earcon {kind!r}: expected one of {', '.join(EARCON_KINDS)}")
    if not -60.0 <= level_dbfs <= 0.0:
        raise ValueError(f"earcon level {level_dbfs} dBFS is out of range: use -60 to 0")
    out = np.zeros(round(earcon_seconds(kind) * rate_hz), np.float64)
    for freq_hz, start_ms, length_ms in NOTES[kind]:
        n = round(length_ms / 1000 * rate_hz)
        t_s = np.arange(n) / rate_hz
        tone = sum(gain * np.sin(2 * np.pi * freq_hz * multiple * t_s) for multiple, gain in _PARTIALS)
        attack = np.minimum(1.0, t_s / (_ATTACK_MS / 1000))
        decay = np.exp(-t_s / (length_ms / 1000 / 4.0))  # -35 dB by the note's end: no click when it stops
        begin = round(start_ms / 1000 * rate_hz)
        out[begin : begin + n] += tone * attack * decay
    if kind == "startup":
        out += _startup_noise(len(out), rate_hz) * float(np.abs(out).max()) * 10 ** (-STARTUP_NOISE_BELOW_PEAK_DB / 20)
    peak = float(np.abs(out).max())
    scale = 10 ** (level_dbfs / 20) * 32767 / peak
    return np.round(out * scale).astype(np.int16)
