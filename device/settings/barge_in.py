"""Settings of interrupting the assistant (`[barge_in]`): the barge-in matrix, state by state, and how the
assistant tells the user's voice from its own.

Part of the settings' one home (device/config.py); a leaf like it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from device.core.states import DEFAULT_STOP_PHRASES, BargeInMatrix, BargeInRule
from device.tomlfile import example, within


@dataclass(frozen=True)
class BargeInRow:
    """One state's row of the barge-in matrix; a key left out keeps that state's default (shown commented)."""

    wake: bool | None = None
    """The wake word interrupts this state."""
    speech: bool | None = None
    """User speech interrupts this state (over playback: pause on a hint, cancel once confirmed)."""
    wake_threshold: float | None = field(default=None, metadata=within(0.0, 1.0))
    """Wake word score needed to interrupt this state (at least `[wake] threshold`, which hearing applies)."""
    speech_probability: float | None = field(default=None, metadata=within(0.0, 1.0))
    """Voice probability a hint needs to pause this state's playback."""

    @staticmethod
    def of(rule: BargeInRule) -> BargeInRow:
        """A row that says all of `rule` (what `spine config --default` shows for a state's defaults)."""
        return BargeInRow(rule.wake, rule.speech, rule.wake_threshold, rule.speech_probability)

    def over(self, default: BargeInRule) -> BargeInRule:
        return BargeInRule(
            wake=default.wake if self.wake is None else self.wake,
            speech=default.speech if self.speech is None else self.speech,
            wake_threshold=default.wake_threshold if self.wake_threshold is None else self.wake_threshold,
            speech_probability=(
                default.speech_probability if self.speech_probability is None else self.speech_probability
            ),
        )


_MATRIX = BargeInMatrix()


@dataclass(frozen=True)
class BargeInConfig:
    """What may interrupt the assistant, state by state (the defaults are `BargeInMatrix` in the core):

    | state        | wake word | speech |
    |--------------|-----------|--------|
    | transcribing | yes       | no     |
    | thinking     | yes       | no     |
    | speaking     | yes       | yes    |
    | announcing   | yes       | yes    |

    and how the assistant tells the user's voice from its own.
    """

    transcribing: BargeInRow = field(default_factory=BargeInRow, metadata=example(BargeInRow.of(_MATRIX.transcribing)))
    """While the user's request is being transcribed."""
    thinking: BargeInRow = field(default_factory=BargeInRow, metadata=example(BargeInRow.of(_MATRIX.thinking)))
    """While the reply is awaited, before anything plays."""
    speaking: BargeInRow = field(default_factory=BargeInRow, metadata=example(BargeInRow.of(_MATRIX.speaking)))
    """While the reply plays (and while it is paused on a hint)."""
    announcing: BargeInRow = field(default_factory=BargeInRow, metadata=example(BargeInRow.of(_MATRIX.announcing)))
    """While a timer rings or an apology plays."""
    confirm_ms: float = field(default=400.0, metadata=within(50.0, 2000.0))
    """After a hint of voice paused playback, speech must be confirmed within this long, in milliseconds, or
    playback resumes (more than `[vad] start_s` - `[vad] hint_s`, the time from a hint to its confirmation)."""
    stop_phrases: tuple[str, ...] = DEFAULT_STOP_PHRASES
    """An interrupting utterance that says only one of these (lower case, no punctuation) ends the exchange."""
    echo_tail_s: float = field(default=0.5, metadata=within(0.0, 5.0))
    """An utterance that began while the assistant spoke, or this long after, in seconds, and repeats its last
    words is its own echo: never answered (a self-interruption)."""
    own_words_window_words: int = field(default=20, metadata=within(1, 200))
    """That guard compares a transcript with this many of the last words the speaker played."""
    own_words_min_fraction: float = field(default=0.6, metadata=within(0.0, 1.0))
    """At least this share of a transcript's words, in order, among those played words make it the assistant's
    own (two of two, two of three, three of four, three of five ...)."""
    own_one_word_tail_words: int = field(default=3, metadata=within(1, 200))
    """A one-word transcript is the assistant's own only if it is one of this many last played words."""
    short_interruption_max_words: int = field(default=2, metadata=within(0, 10))
    """A talk-over of at most this many words (the wake phrase aside) that whisper did not read as a stop phrase
    is still taken as a stop, never answered (a stop said over echo is often misheard). 0: answer them."""
    short_interruption_max_s: float = field(default=1.0, metadata=within(0.0, 5.0))
    """A talk-over whose speech lasted at most this long, in seconds, is taken as a stop whatever whisper made of
    it: a command said over the echo is often heard as words that were never said ("Cancel." came back as "I'm
    so f *ing." and "Okay, m's all." over a loud echo, and was answered). Measured in the echo suite: stop phrases
    lasted 0.29-0.86 s from onset to end of speech, questions 1.28-2.3 s. 0: by words only. Not after the wake
    word: a request the user called for is answered however quickly it is said ("What time is it?" in 0.9 s)."""
    breaker_self_heard: int = field(default=2, metadata=within(0, 100))
    """This many self-interruptions within `breaker_window_s` suspend voice barge-in (the wake word still
    interrupts) until the echo canceller converges again or `breaker_hold_s` pass; 0: never."""
    breaker_window_s: float = field(default=60.0, metadata=within(1.0, 3600.0))
    """How far back, in seconds, self-interruptions count towards the breaker."""
    breaker_hold_s: float = field(default=60.0, metadata=within(1.0, 3600.0))
    """A tripped breaker restores voice barge-in when the canceller next converges, or after this long, in
    seconds, at the latest."""
    reference_window_s: float = field(default=0.5, metadata=within(0.01, 5.0))
    """How long, in seconds, a played sample can still be heard as echo (delay plus reverberation): while
    anything was played this recently, voice on the mic counts only where the played reference cannot explain
    it (device/runtime/echo_reference.py)."""
    user_hold_s: float = field(default=0.3, metadata=within(0.0, 5.0))
    """Once the played reference found someone else's voice, voice stays believed this long, in seconds, after
    the last chunk that proved it, so a syllable the echo happens to mask does not break the run of voice that
    confirms a barge-in."""

    def matrix(self) -> BargeInMatrix:
        defaults = BargeInMatrix()
        return BargeInMatrix(
            transcribing=self.transcribing.over(defaults.transcribing),
            thinking=self.thinking.over(defaults.thinking),
            speaking=self.speaking.over(defaults.speaking),
            announcing=self.announcing.over(defaults.announcing),
        )
