"""The endpointer: one voice probability per chunk in, where speech hints, starts, pauses and ends out.

Pure: no models, no clock; every time is a sample index the caller gives. Hearing (device/runtime/hearing.py)
feeds it the probability it believes for each 32 ms chunk and reports what it emits.

It is a small state machine, all of it in `TABLE` below. Each chunk is first one level input, by its voice
probability p:

    VOICE    p >= on_threshold
    MURMUR   off_threshold <= p < on_threshold
    SILENCE  p < off_threshold

Then, while the new state measures a run (of voice toward a hint and a start, or of silence toward a pause and
an end), each length the run has now reached is one more input, checked in the order `WATCHED` lists them for
the state the machine is in at that moment:

    HINT_LONG   the run of voice lasted hint_samples        START_LONG  ... start_samples
    PAUSE_LONG  the silence lasted pause_samples (if > 0)   END_LONG    ... end_silence_samples

Once hinted, a VOICE chunk at least `STRONGER_BY` more probable than the hint reported is `STRONGER`, and hints
again with the higher probability: the spine pauses playback only on a hint at least as probable as its rule
asks, and a run whose first chunk was soft (0.6) and its next sure (1.0) would otherwise wait for the start of
speech to be heard.
Measured in the echo suite: "Hey Jarvis" 11 dB over the echo hinted at 0.6, and the story played on for 190 ms
more, to the start of speech (254 ms onset to silence, where a pause on the second chunk takes about 100).

The hysteresis is in the table: outside speech only VOICE builds a run (MURMUR breaks it); within speech only
SILENCE counts (MURMUR keeps speech going). A run that falls short of `start_samples` (a blip, a cough) ends in
`Quiet` with at most a `VoiceHint`.

`reset()` is the one transition outside the table (a wake word was detected): to `Quiet`, or to `Onset` when the
user is already speaking again, its run starting after the last pause within `onset_lookback_samples`. A reset
as of an earlier sample (a wake word found late) then pushes the chunks heard since through the table again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum

from device.core.events import Event, SpeechEnded, SpeechPaused, SpeechStarted, VoiceHint


@dataclass(frozen=True)
class EndpointerConfig:
    """The endpointer's parameters, in samples (built from `[vad]` and `[asr]` by `hearing_config`)."""

    on_threshold: float
    """A chunk at or above this voice probability is voice: runs of it hint and start speech."""
    off_threshold: float
    """Within speech, a chunk below this probability is silence. At most `on_threshold`."""
    hint_samples: int
    """A run of voice this long is a `VoiceHint` (enough to pause playback, not to cancel it)."""
    start_samples: int
    """A run of voice this long starts speech: `SpeechStarted` at its first sample."""
    end_silence_samples: int
    """Silence this long within speech ends it: `SpeechEnded` at the silence's first sample."""
    pause_samples: int
    """Silence this long within speech is a `SpeechPaused` (once per silence; 0: never), so transcription may
    start while the endpointer waits out the rest of `end_silence_samples`."""
    onset_lookback_samples: int
    """How far back a reset may look for the start of speech already under way."""

    def __post_init__(self) -> None:
        if self.off_threshold > self.on_threshold:  # the levels below would overlap
            raise ValueError(f"off_threshold {self.off_threshold} above on_threshold {self.on_threshold}")


# ------------------------------------------------------------------------------------------------ states


@dataclass(frozen=True)
class Quiet:
    """No speech, and no voice building toward it."""


@dataclass(frozen=True)
class Onset:
    """A run of voice, outside speech, not yet long enough for a hint."""

    since: int
    """The run's first sample."""
    peak: float
    """The run's highest probability so far (the hint reports it)."""


@dataclass(frozen=True)
class Hinted:
    """A run of voice, outside speech, long enough for a hint (reported), not yet for speech."""

    since: int
    peak: float
    """The probability the last hint of the run reported."""


@dataclass(frozen=True)
class Speaking:
    """Within speech, the voice going on."""


@dataclass(frozen=True)
class Gap:
    """Within speech, a silence not yet long enough for a pause."""

    since: int
    """The silence's first sample (where the utterance ends if the silence lasts)."""


@dataclass(frozen=True)
class Paused:
    """Within speech, a silence long enough for a pause (reported), not yet for the end."""

    since: int


State = Quiet | Onset | Hinted | Speaking | Gap | Paused


class Input(Enum):
    VOICE = "voice"
    STRONGER = "stronger voice"
    MURMUR = "murmur"
    SILENCE = "silence"
    HINT_LONG = "hint long"
    START_LONG = "start long"
    PAUSE_LONG = "pause long"
    END_LONG = "end long"


VOICE, STRONGER, MURMUR, SILENCE = Input.VOICE, Input.STRONGER, Input.MURMUR, Input.SILENCE
HINT_LONG, START_LONG, PAUSE_LONG, END_LONG = Input.HINT_LONG, Input.START_LONG, Input.PAUSE_LONG, Input.END_LONG

Fact = type[VoiceHint] | type[SpeechStarted] | type[SpeechPaused] | type[SpeechEnded]

# ------------------------------------------------------------------------------------------- the machine

TABLE: dict[tuple[type[State], Input], tuple[type[State], Fact | None]] = {
    # state            input          next state  fact emitted
    (Quiet, VOICE): (Onset, None),
    (Quiet, MURMUR): (Quiet, None),
    (Quiet, SILENCE): (Quiet, None),
    (Onset, VOICE): (Onset, None),
    (Onset, MURMUR): (Quiet, None),  # a blip: the run ends short of speech
    (Onset, SILENCE): (Quiet, None),
    (Onset, HINT_LONG): (Hinted, VoiceHint),
    (Onset, START_LONG): (Speaking, SpeechStarted),  # only when start_samples < hint_samples: no hint then
    (Hinted, VOICE): (Hinted, None),
    (Hinted, STRONGER): (Hinted, VoiceHint),  # the hint again, surer: the spine may pause on this one
    (Hinted, MURMUR): (Quiet, None),  # a hint that never became speech
    (Hinted, SILENCE): (Quiet, None),
    (Hinted, START_LONG): (Speaking, SpeechStarted),
    (Speaking, VOICE): (Speaking, None),
    (Speaking, MURMUR): (Speaking, None),
    (Speaking, SILENCE): (Gap, None),
    (Gap, VOICE): (Speaking, None),
    (Gap, MURMUR): (Speaking, None),
    (Gap, SILENCE): (Gap, None),
    (Gap, PAUSE_LONG): (Paused, SpeechPaused),
    (Gap, END_LONG): (Quiet, SpeechEnded),  # a silence that reaches the end at once is no pause first
    (Paused, VOICE): (Speaking, None),  # the user spoke on past the pause
    (Paused, MURMUR): (Speaking, None),
    (Paused, SILENCE): (Paused, None),
    (Paused, END_LONG): (Quiet, SpeechEnded),
}
"""Every (state, input) that can occur -> (the next state, the fact emitted or None). A state entered from
another state of the same run (`Onset` -> `Hinted`, `Gap` -> `Paused`, or itself) keeps the run's `since`; a
run state entered from elsewhere starts its run at the chunk. Facts carry the run's `since`: `VoiceHint(since,
peak)` (from `Hinted`: the stronger chunk's probability), `SpeechStarted(since)`, `SpeechPaused(since)`,
`SpeechEnded(since)`. `STRONGER` occurs only in `Hinted`."""

WATCHED: dict[type[State], tuple[Input, ...]] = {
    Onset: (HINT_LONG, START_LONG),
    Hinted: (START_LONG,),
    Gap: (END_LONG, PAUSE_LONG),
    Paused: (END_LONG,),
}
"""The run lengths each state watches, in the order they are checked after every chunk."""

_VOICE_RUN = (Onset, Hinted)
_SILENCE_RUN = (Gap, Paused)


LATE_RESET_SAMPLES = 40000
"""How much older than the lookback a reset may be (2.5 s): a wake word the second frame grid rescues is reported
after a catch-up over at most 2.4 s of audio (`CATCH_UP_FRAMES` in device/runtime/wake_grids.py)."""

STRONGER_BY = 0.1
"""How much more probable than its last hint a chunk of a hinted run must be to hint again: a tenth of the scale,
so a run hints again once or twice (0.6 -> 1.0), not at every step of Silero's climb (0.706, 0.975, 0.996, 0.998,
1.0 each hinted again on a real stream before this bound)."""


class Endpointer:
    """Voice probability per chunk -> `VoiceHint`, `SpeechStarted`, `SpeechPaused`, `SpeechEnded` (see the
    module)."""

    def __init__(self, config: EndpointerConfig) -> None:
        self._config = config
        self._recent: deque[tuple[int, int, float]] = deque()  # (chunk start, end, probability), lookback only
        self._state: State = Quiet()

    @property
    def state(self) -> State:
        return self._state

    @property
    def voiced(self) -> bool:
        """Within an utterance, or within a run of voice that may become one."""
        return not isinstance(self._state, Quiet)

    def reset(self, at_sample: int | None = None) -> list[Event]:
        """Forget the current utterance as of `at_sample` (where the wake word was found; None: now); if speech
        was under way then, its run starts after the last pause before it. The chunks heard since are pushed
        again from there, and the facts they reveal returned: a wake word found late (the second frame grid finds
        it after a catch-up, device/runtime/wake_grids.py) still starts the request where it began. Measured
        under load before: "Hey Jarvis" found 0.42 s after its frame, the voice of the whole lookback was the
        request, the run started at the reset, and "What time is it?" was heard from "is it?"."""
        heard = list(self._recent)  # oldest first: the chunks ending by `at_sample` are a prefix
        by_then = len(heard) if at_sample is None else sum(1 for chunk in heard if chunk[1] <= at_sample)
        self._state = self._resumed_run(heard[:by_then])
        facts: list[Event] = []
        for chunk_start, chunk_end, probability in heard[by_then:]:
            self._feed(probability, chunk_start, chunk_end, facts)
        return facts

    def push(self, probability: float, chunk_start: int, chunk_samples: int) -> list[Event]:
        """One chunk's voice probability, the chunk starting at sample `chunk_start`; the facts it revealed."""
        chunk_end = chunk_start + chunk_samples
        self._recent.append((chunk_start, chunk_end, probability))
        while self._recent[0][0] < chunk_start - self._config.onset_lookback_samples - LATE_RESET_SAMPLES:
            self._recent.popleft()
        facts: list[Event] = []
        self._feed(probability, chunk_start, chunk_end, facts)
        return facts

    def _feed(self, probability: float, chunk_start: int, chunk_end: int, facts: list[Event]) -> None:
        self._step(self._level(probability, chunk_end), chunk_start, probability, facts)
        while (reached := self._reached(chunk_end)) is not None:
            self._step(reached, chunk_start, probability, facts)

    def _level(self, probability: float, chunk_end: int) -> Input:
        if probability >= self._config.on_threshold:
            return STRONGER if self._stronger(probability, chunk_end) else VOICE
        return MURMUR if probability >= self._config.off_threshold else SILENCE

    def _stronger(self, probability: float, chunk_end: int) -> bool:
        """A hinted run's chunk `STRONGER_BY` more probable than its last hint (compared as reported, rounded),
        unless this chunk starts speech anyway."""
        state = self._state
        if not isinstance(state, Hinted) or chunk_end - state.since >= self._config.start_samples:
            return False
        return round(probability, 3) >= round(state.peak + STRONGER_BY, 3)

    def _reached(self, chunk_end: int) -> Input | None:
        """The first run length the current state watches that its run has reached by `chunk_end`."""
        state = self._state
        for watched in WATCHED.get(type(state), ()):
            assert isinstance(state, Onset | Hinted | Gap | Paused)
            needed = self._samples_for(watched)
            if watched is PAUSE_LONG and needed == 0:  # 0: no pauses
                continue
            if chunk_end - state.since >= needed:
                return watched
        return None

    def _samples_for(self, watched: Input) -> int:
        config = self._config
        return {
            HINT_LONG: config.hint_samples,
            START_LONG: config.start_samples,
            PAUSE_LONG: config.pause_samples,
            END_LONG: config.end_silence_samples,
        }[watched]

    def _step(self, given: Input, chunk_start: int, probability: float, facts: list[Event]) -> None:
        before = self._state
        target, fact = TABLE[type(before), given]
        self._state = _enter(target, before, chunk_start, probability, given)
        if fact is not None:
            facts.append(_fact(fact, before, self._state))

    def _resumed_run(self, heard: list[tuple[int, int, float]]) -> State:
        """`Onset` from the first chunk of the voice under way at the end of `heard` (chunks, oldest first), within
        the lookback, else `Quiet`."""
        on = self._config.on_threshold
        if not heard or heard[-1][2] < on:
            return Quiet()
        last_start, last_end, _ = heard[-1]
        lookback = [chunk for chunk in heard if chunk[0] >= last_start - self._config.onset_lookback_samples]
        since = last_start
        for start, _end, probability in reversed(lookback):
            if probability < on:
                break
            since = start
        if since == lookback[0][0]:  # no pause within the lookback: start after the reset
            since = last_end
        return Onset(since, 0.0)


def _enter(target: type[State], before: State, chunk_start: int, probability: float, given: Input) -> State:
    """The state `target` entered from `before` on `given`, a chunk starting at `chunk_start` (see `TABLE`)."""
    if target is Quiet:
        return Quiet()
    if target is Speaking:
        return Speaking()
    same_run = isinstance(before, _VOICE_RUN) if target in _VOICE_RUN else isinstance(before, _SILENCE_RUN)
    since = before.since if same_run and isinstance(before, Onset | Hinted | Gap | Paused) else chunk_start
    if target is Onset:
        return Onset(since, max(before.peak, probability) if isinstance(before, Onset) else probability)
    if target is Hinted:
        if isinstance(before, Onset):
            return Hinted(since, round(before.peak, 3))
        assert isinstance(before, Hinted)
        return Hinted(since, round(probability, 3) if given is STRONGER else before.peak)
    return Gap(since) if target is Gap else Paused(since)


def _fact(fact: Fact, before: State, after: State) -> Event:
    """The fact a transition out of `before` into `after` emits: it carries the run's first sample."""
    assert isinstance(before, Onset | Hinted | Gap | Paused), before
    if fact is VoiceHint:
        assert isinstance(after, Hinted)
        # Rounded so the log is stable and readable; the decision used the same rounded value.
        return VoiceHint(after.since, after.peak)
    if fact is SpeechStarted:
        return SpeechStarted(before.since)
    return SpeechPaused(before.since) if fact is SpeechPaused else SpeechEnded(before.since)
