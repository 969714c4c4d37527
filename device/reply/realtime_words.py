"""Where a realtime model's words fall in its audio, estimated on the device (pure, no I/O).

The server streams the transcript (ahead of the audio) and the audio, but no word timing, and deletes a
truncated item's transcript. So, as Piper's word ends are, the words' ends are an estimate: a speaking-rate
model (each word's length follows its letters, a gap after it, a longer one after a sentence), stretched by
`scale`, which the caller learns from answers heard to their end (audio received / the model's length). Heard
text is then what the played-sample cursor passed, exactly as for Piper (`device.core.memory.heard_text`).

`WordClock.feed(delta)` takes transcript text; `WordClock.take(until_samples)` hands out the words whose
estimated end is at or before `until_samples` (16 kHz samples of the item's audio), once each; `finish()` ends
the text (its last word has no trailing space).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from device.rates import SPINE_RATE_HZ

MS_PER_LETTER = 55.0
MIN_WORD_MS = 150.0
MAX_WORD_MS = 600.0
GAP_MS = 70.0
SENTENCE_GAP_MS = 250.0
_SENTENCE_ENDS = (".", "!", "?")


def word_ms(word: str) -> tuple[float, float]:
    """The model's (length, gap after) of one word, in ms at scale 1."""
    letters = sum(1 for char in word if char.isalnum()) or 1
    length = min(MAX_WORD_MS, max(MIN_WORD_MS, letters * MS_PER_LETTER))
    gap = SENTENCE_GAP_MS if word.rstrip("\"')").endswith(_SENTENCE_ENDS) else GAP_MS
    return length, gap


def modelled_ms(text: str) -> float:
    """The model's whole length of `text` at scale 1, gaps included."""
    return sum(sum(word_ms(word)) for word in text.split())


@dataclass
class WordClock:
    scale: float = 1.0
    _partial: str = ""
    _words: list[tuple[str, int]] = field(default_factory=list)
    """Complete words not yet taken, with their estimated end in samples."""
    _cursor_ms: float = 0.0
    text: str = ""
    """All the text fed so far."""

    def feed(self, delta: str) -> None:
        self.text += delta
        pieces = (self._partial + delta).split(" ")
        self._partial = pieces.pop()  # the last piece may still grow
        for piece in pieces:
            for word in piece.split():
                self._place(word)

    def finish(self) -> None:
        for word in self._partial.split():
            self._place(word)
        self._partial = ""

    def take(self, until_samples: int | None = None) -> list[tuple[str, int]]:
        """The words (word, end in samples) whose end is at or before `until_samples`; all of them if None."""
        cut = len(self._words)
        if until_samples is not None:
            cut = next((i for i, (_, end) in enumerate(self._words) if end > until_samples), cut)
        taken, self._words = self._words[:cut], self._words[cut:]
        return taken

    def _place(self, word: str) -> None:
        length, gap = word_ms(word)
        end_ms = self._cursor_ms + length * self.scale
        self._cursor_ms = end_ms + gap * self.scale
        self._words.append((word, round(end_ms * SPINE_RATE_HZ / 1000)))


def learned_scale(previous: float, text: str, audio_samples: int, weight: float = 0.5) -> float:
    """The stretch after an answer heard whole: `audio_samples` of audio said `text`. Moves `previous` part way
    (`weight`) towards what this answer showed, within 0.5..2 (a wild answer must not ruin the next estimate)."""
    model = modelled_ms(text)
    if model <= 0 or audio_samples <= 0:
        return previous
    seen = audio_samples * 1000 / SPINE_RATE_HZ / model
    return min(2.0, max(0.5, previous + weight * (seen - previous)))
