"""The test peer's voice: a reply's text rendered as 48 kHz audio with every word's place on the audio timeline,
so what a truncation at `audio_end_ms` keeps can be said exactly.

* `ToneVoice` (the default): each word a voiced, vowel-like tone (a gliding fundamental with formant-shaped
  harmonics) whose length follows the word's letters, with gaps between words and longer ones after sentences.
  Deterministic, instant, and every word's start and end are exact by construction.
* `PiperVoice`: the project's Piper voice (device/engines/tts.py), for a demo that should sound like speech;
  its word ends are Piper's estimate (see that module), and loading it takes a moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from device.reply.realtime_config import RTC_RATE_HZ

if TYPE_CHECKING:
    from device.engines.tts import PiperTts

Audio = npt.NDArray[np.int16]

_SENTENCE_ENDS = (".", "!", "?")


@dataclass(frozen=True, eq=False)  # eq=False: numpy arrays do not compare as a bool
class SpokenReply:
    """A reply's audio and where each of its words sits in it."""

    audio: Audio
    """48 kHz mono int16."""
    words: tuple[str, ...]
    word_start_ms: tuple[float, ...]
    word_end_ms: tuple[float, ...]
    """Non-decreasing; the last is at most the audio's duration."""

    @property
    def duration_ms(self) -> float:
        return len(self.audio) * 1000 / RTC_RATE_HZ

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def words_within(self, audio_end_ms: float) -> tuple[str, ...]:
        """The words wholly said within the first `audio_end_ms` of the audio (what a listener cut there heard)."""
        return tuple(word for word, end in zip(self.words, self.word_end_ms, strict=True) if end <= audio_end_ms)

    def deltas(self) -> tuple[str, ...]:
        """The transcript as the model streams it: one delta per word, each but the last with its space."""
        last = len(self.words) - 1
        return tuple(word if index == last else word + " " for index, word in enumerate(self.words))


class Voice(Protocol):
    def render(self, text: str) -> SpokenReply: ...


@dataclass(frozen=True)
class ToneVoice:
    """Words as vowel-like tones: deterministic, exact word timing, no model."""

    ms_per_letter: float = 55.0
    min_word_ms: float = 150.0
    max_word_ms: float = 600.0
    gap_ms: float = 70.0
    sentence_gap_ms: float = 250.0
    f0_hz: float = 130.0
    level: float = 0.25
    """Peak level as a fraction of full scale."""

    def render(self, text: str) -> SpokenReply:
        pieces: list[Audio] = []
        starts: list[float] = []
        ends: list[float] = []
        at_samples = 0
        words = tuple(text.split())
        for index, word in enumerate(words):
            letters = sum(1 for char in word if char.isalnum()) or 1
            word_ms = min(self.max_word_ms, max(self.min_word_ms, letters * self.ms_per_letter))
            tone = self._tone(_samples(word_ms), self.f0_hz * (1.0 + 0.06 * ((index % 5) - 2)))
            gap_ms = self.sentence_gap_ms if word.rstrip("\"')").endswith(_SENTENCE_ENDS) else self.gap_ms
            gap = np.zeros(_samples(gap_ms), np.int16)
            starts.append(at_samples * 1000 / RTC_RATE_HZ)
            at_samples += len(tone)
            ends.append(at_samples * 1000 / RTC_RATE_HZ)
            at_samples += len(gap)
            pieces.extend((tone, gap))
        audio = np.concatenate(pieces) if pieces else np.zeros(0, np.int16)
        return SpokenReply(audio, words, tuple(starts), tuple(ends))

    def _tone(self, count: int, f0_hz: float) -> Audio:
        t_s = np.arange(count) / RTC_RATE_HZ
        glide = np.linspace(1.05, 0.95, count) * f0_hz  # a falling pitch, as a spoken syllable's
        phase = 2 * np.pi * np.cumsum(glide) / RTC_RATE_HZ
        harmonics = np.arange(1, 25)
        # Weights shaped by two formants (an open vowel), so a voice detector hears something voice-like.
        centres = harmonics * f0_hz
        weights = np.exp(-(((centres - 700) / 250) ** 2)) + 0.6 * np.exp(-(((centres - 1200) / 300) ** 2)) + 0.05
        signal = (weights[:, None] * np.sin(harmonics[:, None] * phase[None, :])).sum(axis=0)
        fade = min(count // 2, _samples(15.0))
        envelope = np.ones(count)
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, fade)) if fade else np.zeros(0)
        envelope[:fade] = ramp
        envelope[count - fade :] = ramp[::-1]
        shaped = signal * envelope * (0.9 + 0.1 * np.sin(2 * np.pi * 4 * t_s))
        peak = float(np.abs(shaped).max()) or 1.0
        out: Audio = np.rint(shaped / peak * self.level * 32767).astype(np.int16)
        return out


class PiperVoice:
    """The project's Piper voice, its audio brought to 48 kHz; word starts are the previous word's end."""

    def __init__(self, tts: PiperTts) -> None:
        self._tts = tts

    def render(self, text: str) -> SpokenReply:
        import soxr

        spoken = self._tts.synthesize(text)
        rate_hz = self._tts.sample_rate_hz
        audio: Audio = soxr.resample(spoken.audio, rate_hz, RTC_RATE_HZ).astype(np.int16)
        ends = tuple(end * 1000 / rate_hz for end in spoken.word_end_samples)
        starts = (0.0, *ends[:-1]) if ends else ()
        return SpokenReply(audio, spoken.words, starts, ends)


def _samples(duration_ms: float) -> int:
    return round(duration_ms * RTC_RATE_HZ / 1000)
