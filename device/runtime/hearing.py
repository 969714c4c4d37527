"""Hearing: mic frames in, facts out (`WakeDetected`, `VoiceHint`, `SpeechStarted`, `SpeechEnded`,
`EchoCancellerChanged`). Runs on the FSM thread.

The mic arrives in periods (10 ms); the models want their own frame sizes (Silero 512 samples = 32 ms,
openWakeWord 1280 samples = 80 ms), so each has its own accumulator. Hearing reports facts only: whether a
fact matters in the current state is the spine's decision.

First the echo canceller (when there is one) removes what the speaker played from the mic; everything below
runs on its output. The endpointer (device/runtime/endpointer.py, a state machine in one table) turns voice
probabilities into utterance boundaries with hysteresis: a short run of voice is a `VoiceHint` (early and cheap:
the spine pauses playback on it), a longer one starts speech, a silence within it is a `SpeechPaused` (so the
spine can start transcribing before the end is certain) and a longer one its end. A wake detection resets it,
so an utterance that follows the wake word starts after the wake word instead of including it: if the user is
already speaking again at the reset (the wake word is scored a few frames late), the onset is found by looking
back to the last pause before the wake word's frame (a wake word found late, by the second grid, replays what
was heard since).

While the assistant plays (or its echo may still ring), voice on the mic is believed only when the played
reference cannot explain it (`device/runtime/echo_reference.py`): Spine knows exactly what it played, so speech
that the reference explains is echo whatever the canceller claims, and speech it cannot explain is someone else
from the first syllable of the first answer, whether or not the canceller has converged. That judgement needs
the echo's delay: it is tracked on the waveform (device/runtime/echo_delay.py), because under load the sound
server moves it by tens of milliseconds at each underrun; after an xrun, voice over the assistant's speech is not
believed until the delay is found again (`EchoDelayChanged` reports each change). The voice probability
itself comes from the cleaned mic once the canceller has converged, and from the raw mic before (AEC3's start-up
suppressor mutes the user along with the echo). Once the reference has found someone else, voice stays believed
for `user_hold_samples` after the last chunk that proved it, so the run of voice that confirms a barge-in is not
broken by a syllable the echo happens to mask. The wake word listens to the cleaned mic only while the canceller
has converged and echo may still sound, to the raw mic otherwise (`hear` says why); a second frame grid half a
frame later rescues a near miss (device/runtime/wake_grids.py). It is not gated; instead a
second wake scorer listens to what the speaker plays, and a mic detection that follows one there is marked
`in_own_speech` (the reply said it).

An earcon (the chime after the wake word) is not what the assistant says: the daemon hands hearing silence
in its place as the played reference (`Daemon.hear` says why), so it neither counts as playback nor reaches
the canceller, and the user who goes straight on after "Hey Jarvis" is heard from their first word.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from device.config import Config, samples
from device.core.events import (
    EchoCancellerChanged,
    EchoDelayChanged,
    Event,
    VoiceGate,
    VoiceGateChanged,
    WakeDetected,
    WakeHeardFaintly,
)
from device.rates import SPINE_RATE_HZ as RATE_HZ
from device.runtime.echo_delay import AGREE_SAMPLES, EchoDelayTracker
from device.runtime.echo_reference import DELAY_SLACK_MS, ReferenceEchoModel
from device.runtime.endpointer import Endpointer, EndpointerConfig
from device.runtime.framer import Framer
from device.runtime.wake_grids import WakeGrids, WakeScorer

if TYPE_CHECKING:
    from device.engines.load import Engines

Audio = npt.NDArray[np.int16]


SILENT_PEAK = 32
"""A played period whose peak is at most this (-60 dBFS) is silence: resampling digital silence from a 48 kHz
device leaves +-1 values in the reference, which must not count as the assistant playing."""
PATH_SETTLE_SAMPLES = 16000
"""After the canceller finds the echo path moved (a restarted stream, an xrun), the echo is judged at every delay
it can have for this long, not around the delay just measured: one block's new lag is not yet a trusted delay,
and a pause on the shifted echo is what it would cost (seen on a real stream at 0 dB: a path change, then a
false hint 0.18 s later that paused the story)."""
XRUN_DISTRUST_SAMPLES = 5 * 16000
"""After the card reports an xrun, voice over the assistant's speech is not believed until the delay tracker has
found the echo's delay again, and for at most this long: meanwhile only the wake word interrupts (the voice gate
reads "none"). An xrun shifts the echo against the reference by an unknown amount, and through a sound server
each underrun can add to the delay (measured: 5-130 ms each, up to 485 ms in all): on a PulseAudio null sink at 0
dB with both cores busy, the echo went on 0.5 s after the reference fell silent, was believed as the user, cut
the story and was answered ("I love the clock maker named."). The tracker finds the new delay in 0.4-0.7 s while
the assistant talks; the bound covers an xrun in a pause of the speech."""
UNSETTLED_SAMPLES = 10 * 16000
"""After an xrun, or a move of the echo by more than `DELAY_SLACK_MS`, the path counts as unsettled this long: the
echo is expected anywhere from the tracked delay to `UNSETTLED_LATER_MS` after it, and at the path's own latency
too. Measured under load through PulseAudio: once one underrun had moved the echo, more followed within seconds,
each 5-130 ms later, unreported, until the stream was re-prepared and the echo fell back to the path's latency;
each was taken for the user for the 0.3-0.5 s the tracker needs to see it. An xrun after which the tracker finds the
echo where it was (within `DELAY_SLACK_MS`) settles the path at that moment: the underrun did not grow the sound
server's buffer. Measured on the real-stream suite before the voice was warmed at load (device/engines/tts.py): 5
first answers began with one xrun while Piper synthesised the first sentence; in 4 the delay came back 3-15 ms from
the old one and nothing moved beyond the slack in the 10 s after, and in 3 of those the unsettled path hid "Stop."
0.3 s into the answer under 3.6-4.8 dB of echo (in the fifth the delay came back 20 ms off: a move)."""
REOPEN_SETTLE_SAMPLES = 16000
"""After the stream was reopened a latency step up (device/audio/stream.py), the path counts as unsettled only
this long, not `UNSETTLED_SAMPLES`: the delay tracker finds the new path's delay within 0.4-0.7 s of playback
(voice is not believed until then), and a path judged unsettled for 10 s hid every user under the echo through
the first answer after start on a loaded machine, whose xruns and reopen came at the answer's start (the real-
stream suite's missed "Stop." 0.3 s and "Never mind." 0.7 s into it)."""
UNSETTLED_LATER_MS = 150.0
"""How much later than its tracked delay the echo of an unsettled path may come (one underrun's move, 130 ms)."""
EXACT_STABLE_SAMPLES = 30 * 16000
"""The echo is judged against the played audio at exactly its delay (device/runtime/echo_reference.py) only once
the path has neither had an xrun or a reopen nor moved for this long: under load a sound server moves the echo by
tens of milliseconds with no xrun reported (measured on the real-stream suite: 90 -> 130 ms, 6 s after the last
move the tracker had seen), and before the tracker sees it the exact prediction takes the echo for the user (a
pause and a cut of the story with nobody talking), where the plateau around the delay holds on."""
FAINT_WAKE_HISTORY_SAMPLES = 3 * 16000
"""How far back the pause after a faint wake word is looked for: the wake word and the words after it, to its
score's late peak."""
XRUN_ECHO_TAIL_SAMPLES = 2 * 16000
"""Within that time, the assistant's echo may still sound this long after the last sample it played."""
CANCEL_AFTER_SAMPLES = XRUN_ECHO_TAIL_SAMPLES
"""Once nothing has played for this long no echo can sound, so the canceller is not run (the mic is heard as it
is, and the raw mic's voice model, which would hear the same audio, is not run either) until the speaker plays
again: idle listening is most of a device's day, and the canceller was a fifth of its hearing's cost (AEC3 through
its FFI, 0.09 ms per 10 ms here). Skipping render and capture alike keeps the two streams aligned; the canceller
resumes with what it had learnt of the room. Its output is 8 ms late (AEC3's own delay line), so the cleaned stream
skips 8 ms of quiet as it rests and replays 8 ms of old quiet as it resumes: passing the mic through as late instead
(the true samples at the switch) measured worse on the echo suite (2 self-interruptions in 92 scenes against none,
each an answer that began 0.1 s later), and during the rest the cleaned mic is exactly the raw one, sample for
sample, for speech to text."""


class EchoCanceller(Protocol):
    @property
    def converged(self) -> bool: ...
    @property
    def erle_db(self) -> float: ...
    @property
    def echo_delay_ms(self) -> float | None: ...
    @property
    def path_changes(self) -> int: ...

    def process(self, mic: Audio, reference: Audio, *, near_end_quiet: bool = True) -> Audio: ...


class VoiceProbability(Protocol):
    CHUNK_SAMPLES: int

    def probability(self, chunk: Audio) -> float: ...
    def reset(self) -> None: ...


@dataclass(frozen=True)
class HearingConfig:
    """Hearing's parameters in samples, built from the settings by `hearing_config` (device/config.py documents
    each setting)."""

    wake_model: str
    wake_threshold: float
    wake_refractory_samples: int
    """After a detection, ignore the wake word this long (the score stays high for a few frames)."""
    own_speech_window_samples: int
    """A mic detection up to this long after the wake word was found in the played audio is its echo."""
    endpointer: EndpointerConfig
    vad_reset_quiet_samples: int
    """After this long without voice, the VAD's recurrent state starts afresh (see `_reset_vad_when_quiet`)."""
    reference_window_samples: int
    """How long a played sample can still be heard as echo (delay plus reverberation)."""
    user_hold_samples: int
    """After a chunk the played reference could not explain, voice stays believed this long (see the module)."""
    faint_wake_threshold: float = 0.0
    """Within an utterance, a wake score at least this (and below `wake_threshold`) is a `WakeHeardFaintly`
    (0: never; see `_judge_wake`)."""


def hearing_config(config: Config) -> HearingConfig:
    """The settings hearing uses, in samples: the one place they are converted."""
    vad = config.vad
    return HearingConfig(
        wake_model=config.wake.model_name,
        wake_threshold=config.wake.threshold,
        wake_refractory_samples=samples(config.wake.refractory_s),
        own_speech_window_samples=samples(config.wake.own_speech_window_s),
        endpointer=EndpointerConfig(
            on_threshold=vad.on_threshold,
            off_threshold=vad.off_threshold,
            hint_samples=samples(vad.hint_s),
            start_samples=samples(vad.start_s),
            end_silence_samples=samples(vad.end_silence_s),
            pause_samples=samples(config.asr.early_pause_s),
            onset_lookback_samples=samples(vad.onset_lookback_s),
        ),
        vad_reset_quiet_samples=samples(vad.reset_quiet_s),
        reference_window_samples=samples(config.barge_in.reference_window_s),
        user_hold_samples=samples(config.barge_in.user_hold_s),
        faint_wake_threshold=config.wake.faint_threshold,
    )


class Hearing:
    def __init__(
        self,
        vad: VoiceProbability,
        wake: WakeScorer,
        config: HearingConfig,
        aec: EchoCanceller | None = None,
        own_wake: WakeScorer | None = None,
        raw_vad: VoiceProbability | None = None,
        period_samples: int = 160,
        offset_wake: WakeScorer | None = None,
        other_wake: WakeScorer | None = None,
    ) -> None:
        """`aec` cleans the mic first; `own_wake` (a second scorer of the same model) listens to the speaker;
        `raw_vad` (a second voice model) listens to the raw mic while the canceller is not yet trusted;
        `offset_wake` (a twin of `wake`) scores the second frame grid (device/runtime/wake_grids.py);
        `other_wake` (a twin of `wake`, one grid) listens to the mic the wake word does not, while the assistant's
        echo may sound (`hear` says why)."""
        self._vad, self._config, self._aec, self._own_wake = vad, config, aec, own_wake  # `wake`: the grids own it
        self._raw_vad = raw_vad
        self._scorers: tuple[object, ...] = tuple(
            e for e in (vad, raw_vad, wake, offset_wake, other_wake, own_wake) if e is not None
        )
        self._echo = ReferenceEchoModel(period_samples)
        self._delay = EchoDelayTracker()
        self._delay_said: int | None = None  # the delay the last `EchoDelayChanged` reported
        self._delay_before_xrun: int | None = None  # the delay reported before an xrun, until it is found again
        self._unsettled_until_sample = -1
        self._exact_from_sample = 0  # see EXACT_STABLE_SAMPLES
        self._raw_frames = Framer(vad.CHUNK_SAMPLES)
        self._user_until = -1
        self._gate: VoiceGate = "none"
        self._endpointer = Endpointer(config.endpointer)
        self._vad_frames = Framer(vad.CHUNK_SAMPLES)
        self._wake_grids = WakeGrids(wake, offset_wake, config.wake_threshold)
        self._other_wake = other_wake
        self._other_wake_grids: WakeGrids | None = None  # None: not listening (nothing sounded lately)
        self._own_frames = Framer(wake.FRAME_SAMPLES)
        self._wake_quiet_until = 0
        self._faint_best = 0.0  # the highest faint wake score reported within the utterance under way
        self._voice_heard: deque[tuple[int, float]] = deque()  # (chunk start, unjudged voice probability)
        self._own_wake_until = -1
        self._played_peaks: deque[int] = deque()  # peak of each recently played period, newest last
        self._converged = False
        self._path_changes_seen = 0
        self._has_converged = False
        self._distrust_until_sample = -1
        self._spoke_until_sample = -(10**9)  # the end of the last period that played the assistant's speech
        self._wide_until_sample = -1
        self._quiet_samples = 0
        self._silent_for_samples = 0  # played silence since the speaker last sounded (see CANCEL_AFTER_SAMPLES)
        self._cancelling = True  # the canceller ran on the last period
        self._raw_vad_fresh = True  # the raw mic's voice model starts afresh when it is next run
        self.last_vad_probability = 0.0
        self.last_wake_score = 0.0

    def clean(self, period: Audio, played: Audio) -> tuple[Audio, list[Event]]:
        """The mic period with the speaker's echo removed (as is without a canceller, and while no echo can sound:
        `CANCEL_AFTER_SAMPLES`), and whether the canceller's convergence changed. Call once per period, before
        `hear`, with what was played in it."""
        if self._aec is None:
            return period, []
        sounded = _played_peak(played) > SILENT_PEAK
        self._silent_for_samples = 0 if sounded else self._silent_for_samples + len(period)
        self._cancelling = self._silent_for_samples <= CANCEL_AFTER_SAMPLES
        if not self._cancelling:
            return period, []
        quiet = not self._endpointer.voiced
        cleaned = self._aec.process(period, played, near_end_quiet=quiet)
        if self._aec.converged == self._converged:
            return cleaned, []
        self._converged = self._aec.converged
        return cleaned, [EchoCancellerChanged(self._converged, round(self._aec.erle_db, 1))]

    def hear(
        self,
        period: Audio,
        start_sample: int,
        played: Audio | None = None,
        raw: Audio | None = None,
        speech: bool = True,
    ) -> list[Event]:
        """Process one period of (cleaned) mic audio starting at `start_sample`; return the facts it revealed.

        `played` is what the speaker played in the same period (the echo reference), if anything; `raw` is
        the mic before echo cancellation; `speech` says whether `played` is the assistant's speech (the start-up
        sound is not: see `_distrusted`). Until the canceller converges, the wake word listens to `raw`: AEC3
        starts with a suppressor that mutes the user along with the echo (20-33 dB for its first seconds of
        playback), and the wake word model copes with echo far better than with a muted user. Once nothing has
        played for `reference_window_samples` there is no echo to remove, and it listens to `raw` again: a
        converged canceller still reshapes the user (measured: "Hey Jarvis" 2 s after an apology scored 0.98 on
        the raw mic and at most 0.45 on the cleaned one, under the 0.5 threshold, and the question went unheard).
        While the echo may sound, neither mic is always the better one, so with `other_wake` the wake word also
        listens to the other (a twin on one grid, started afresh each time echo begins to sound after quiet):
        over 16 "Hey Jarvis, <question>" talk-overs built as the command corpus builds them
        (scripts/make_command_corpus.py: echo -3.5..+5.1 dB over the user, 8 cold, 8 warm), the mic the rule above
        picks (raw cold, cleaned warm) scored 0.5 or more in 1, the raw mic in 4, the cleaned one in 2, either in
        5; 32 short requests and stop phrases without the wake word scored at most 0.04 on either. Costs one more
        grid's scoring (2.6 ms per 80 ms frame here) only while echo may sound, and no second frame grid: its
        catch-up is a burst of ~80 ms (device/runtime/wake_grids.py), and two of them at once around a wake word
        held the GIL long enough to risk the sound card's callback. Idle listening is unchanged.
        """
        raw_mic = raw if raw is not None else period
        if self._remember_played(played, len(period)) and speech:
            self._spoke_until_sample = start_sample + len(period)
        cleaned_is_better = self._aec is not None and self._aec.converged and self._echo_may_sound()
        wake_input = period if raw is None or cleaned_is_better else raw
        reference = played if played is not None else np.zeros(len(period), np.int16)
        self._echo.push_played(reference)
        self._delay.push(raw_mic, reference)
        self._set_echo_delays(start_sample)
        facts: list[Event] = self._delay_news(start_sample)
        if self._own_wake is not None and played is not None:
            self._listen_to_own_speech(played, start_sample)
        for frame_end, score in self._wake_grids.push(wake_input, start_sample):
            facts += self._judge_wake(score, frame_end)
        other_input = raw if wake_input is period else period
        for frame_end, score in self._other_ear(other_input, start_sample):
            facts += self._judge_wake(score, frame_end, other_ear=True)
        gate = self._voice_gate(start_sample)
        if gate != self._gate:
            self._gate = gate
            facts.append(VoiceGateChanged(gate))
        raw_chunks = self._raw_frames.push(raw_mic, start_sample)
        for (chunk_start, chunk), (_, raw_chunk) in zip(
            self._vad_frames.push(period, start_sample), raw_chunks, strict=True
        ):
            self.last_vad_probability = self._vad.probability(chunk)
            raw_probability = self._raw_probability(raw_chunk, uncleaned=not self._cancelling)
            self._remember_voice(chunk_start, max(self.last_vad_probability, raw_probability or 0.0))
            played_since = start_sample + len(period) - (chunk_start + len(chunk))
            believed = self._believed_probability(chunk_start + len(chunk), raw_chunk, raw_probability, played_since)
            facts += self._endpointer.push(believed, chunk_start, len(chunk))
            self._reset_vad_when_quiet(len(chunk))
        return facts

    def _raw_probability(self, raw_chunk: Audio, uncleaned: bool) -> float | None:
        """The raw mic's voice probability; while the mic was not cleaned (`clean` skipped the canceller) it is
        the same audio as the cleaned one's, so the cleaned one's, and the raw model starts afresh when the
        canceller runs again (in quiet there is nothing for its state to remember: `_reset_vad_when_quiet`)."""
        if self._raw_vad is None:
            return None
        if uncleaned:
            self._raw_vad_fresh = True
            return self.last_vad_probability
        if self._raw_vad_fresh:
            self._raw_vad.reset()
            self._raw_vad_fresh = False
        return self._raw_vad.probability(raw_chunk)

    @property
    def non_finite_outputs(self) -> int:
        """Scores the voice and wake models gave as NaN or infinite, each read as silence and the model reset
        (device/engines/vad.py, wakeword.py): a model in a garbage state is counted, never left deaf."""
        return sum(int(getattr(scorer, "non_finite_outputs", 0)) for scorer in self._scorers)

    def echo_path_moved(self, at_sample: int, new_latency: bool = False) -> None:
        """The sound card reported an xrun around `at_sample`: a dropped or repeated period shifts the echo against
        the reference at once, long before the canceller can tell. The delay tracker forgets the delay; until it has
        found it again on audio after the xrun, the echo is judged at every delay and no voice over playback is
        believed (for `XRUN_DISTRUST_SAMPLES` at most). `new_latency`: the stream was reopened a latency step up
        (device/audio/stream.py): the path's own latency is the new one, the old is forgotten, and the path is
        unsettled for `REOPEN_SETTLE_SAMPLES` from the reopen, not `UNSETTLED_SAMPLES`."""
        self._delay.forget(at_sample, new_path=new_latency)
        if self._delay_said is not None:  # a second xrun before the delay is found again keeps the first's
            self._delay_before_xrun = self._delay_said
        if new_latency:
            # The reopen started the sound server's stream afresh: the buffer that underruns had grown (the
            # creep `UNSETTLED_SAMPLES` guards against) went with the old stream, and the new one runs a latency
            # step up so that it does not underrun again; an xrun that still comes unsettles the path anew.
            self._unsettled_until_sample = at_sample + REOPEN_SETTLE_SAMPLES
        else:
            self._unsettled_until_sample = max(self._unsettled_until_sample, at_sample + UNSETTLED_SAMPLES)
        self._distrust_until_sample = max(self._distrust_until_sample, at_sample + XRUN_DISTRUST_SAMPLES)
        self._exact_from_sample = max(self._exact_from_sample, at_sample + EXACT_STABLE_SAMPLES)

    def _set_echo_delays(self, now_sample: int) -> None:
        """Tell the echo model where the echo is: around the trusted delay, and also around the path's own
        latency while the tracked delay is longer (a sound server that grew its buffer through underruns drops
        back to it at once, with no xrun reported: measured under load, 315 -> 30, 405 -> 38 and 870 -> 30 ms, each
        time taken for the user until the tracker saw it); every delay up to the longest seen while unknown."""
        delay_ms = self.trusted_delay_ms(now_sample)
        tracker = self._delay
        shortest = tracker.shortest_samples
        tracked = tracker.delay_samples
        also_ms = None
        if delay_ms is not None and shortest is not None and tracked is not None and tracked - shortest > AGREE_SAMPLES:
            also_ms = shortest * 1000 / RATE_HZ
        longest_ms = (tracker.longest_samples or 0) * 1000 / RATE_HZ + DELAY_SLACK_MS
        later_ms = UNSETTLED_LATER_MS if now_sample < self._unsettled_until_sample else DELAY_SLACK_MS
        exact = now_sample >= self._exact_from_sample
        self._echo.set_delay_ms(delay_ms, also_ms, widest_ms=longest_ms, later_ms=later_ms, exact=exact)

    def _delay_news(self, now_sample: int) -> list[Event]:
        """`EchoDelayChanged` when the tracked delay was found, moved by more than a millisecond, or lost; a move
        beyond the slack unsettles the path (`UNSETTLED_SAMPLES`); found after an xrun where it was, it settles it."""
        tracked, said = self._delay.delay_samples, self._delay_said
        if tracked is not None and said is not None and abs(tracked - said) * 1000 / RATE_HZ > DELAY_SLACK_MS:
            self._unsettled_until_sample = now_sample + UNSETTLED_SAMPLES
        if tracked is None and said is not None and self._delay.lost:
            self._delay_said = None
            return [EchoDelayChanged(None, "xrun")]
        if tracked is None or (said is not None and abs(tracked - said) <= AGREE_SAMPLES):
            return []
        if said is not None:  # moved: the path is not stable
            self._exact_from_sample = max(self._exact_from_sample, now_sample + EXACT_STABLE_SAMPLES)
        if said is None and self._delay_before_xrun is not None:
            if abs(tracked - self._delay_before_xrun) * 1000 / RATE_HZ <= DELAY_SLACK_MS:
                self._unsettled_until_sample = min(self._unsettled_until_sample, now_sample)  # found where it was
            self._delay_before_xrun = None
        self._delay_said = tracked
        return [EchoDelayChanged(round(tracked * 1000 / RATE_HZ, 1), "found" if said is None else "moved")]

    def trusted_delay_ms(self, now_sample: int) -> float | None:
        """The echo's delay as the canceller measured it, else as the reference model found it on the start-up
        sound; None (judge every delay) while neither knows it, for `PATH_SETTLE_SAMPLES` after the path moved,
        and while a canceller that had converged is diverged (the found delay is as stale as its own then).
        Above all these, the delay tracked on the waveform (device/runtime/echo_delay.py) once it has one: it
        follows the moves of a loaded machine within half a second, where the canceller takes seconds; after an
        xrun, until it has found the delay again, none."""
        tracked = self._delay.delay_samples
        if tracked is not None:
            return tracked * 1000 / RATE_HZ
        if self._delay.lost:
            return None
        if self._aec is None:
            return self._echo.found_delay_ms
        if self._aec.converged:
            self._has_converged = True
        elif self._has_converged:
            # Converged once, not now: the echo path moved (an xrun under load shifted it) and the canceller has
            # not found it again, so its delay is not the echo's. Seen on a real stream at 0 dB with both cores
            # busy: the canceller diverged, and 1.5 s later the delay it still reported made the echo look like
            # someone else nine times in five seconds, each a pause of the story.
            return None
        if self._aec.path_changes != self._path_changes_seen:
            self._path_changes_seen = self._aec.path_changes
            self._wide_until_sample = now_sample + PATH_SETTLE_SAMPLES
        if now_sample < self._wide_until_sample:
            return None
        # The canceller measures the delay only after 1.5 s of playback: the start-up sound is over by then, and
        # the prediction around the delay would first learn its coupling 0.6 s into the first answer. The delay
        # found on the start-up sound's envelope calibrates it before that answer (in the echo suite, 2 of 40
        # cold talk-overs were missed without it, and the slowest went from 650 to 270 ms onset to hint).
        delay_ms = self._aec.echo_delay_ms
        return delay_ms if delay_ms is not None else self._echo.found_delay_ms

    def _voice_gate(self, now_sample: int) -> VoiceGate:
        if not self._echo.calibrated or self._distrusted(now_sample):
            return "none"
        exact = self._echo.exact_judges
        if self._aec is not None and self._aec.converged:
            return "exact-reference+canceller" if exact else "reference+canceller"
        return "exact-reference" if exact else "reference"

    def _believed_probability(
        self, chunk_end: int, raw_chunk: Audio, raw_probability: float | None, played_since: int = 0
    ) -> float:
        """The voice probability hearing acts on: 0 for voice the played reference explains (see the module).
        `played_since`: samples of reference heard after the chunk's end (it may end inside the period)."""
        trusted = chunk_end >= self._unsettled_until_sample and not self._delay.lost
        verdict = self._echo.judge(raw_chunk, path_trusted=trusted, played_since=played_since)
        if self._distrusted(chunk_end):
            return 0.0
        if not self._echo_may_sound():
            return self.last_vad_probability  # nothing played lately: nothing to mistake for the user
        # Once the reference has proven someone else, the louder of the two voice detectors is believed: before
        # the canceller converges its start-up suppressor mutes the user, and after it, in a room whose echo
        # path drifts, its residual suppressor still does (a user 1.3 dB louder than the echo saying "Stop."
        # scored 0.37 at most on the cleaned mic and 1.0 on the raw one, and the story played on). The raw
        # detector hears the echo as voice too, so it is believed only within the hold the reference opened.
        probability = max(self.last_vad_probability, raw_probability or 0.0)
        # Energy the reference cannot explain is someone else only if it is voice: at the start of an answer, a
        # chunk of room noise before the echo arrives measured a few bands above a quiet room's noise floor.
        if verdict.someone_else and probability >= self._config.endpointer.on_threshold:
            self._user_until = chunk_end + self._config.user_hold_samples
        return probability if chunk_end <= self._user_until else 0.0

    def _distrusted(self, now_sample: int) -> bool:
        """After an xrun, until the delay is found again (`XRUN_DISTRUST_SAMPLES` at most), while the echo of the
        assistant's speech may still sound: no voice over it is believed. The echo of what is not speech (the
        start-up sound's bells on soft noise, device/engines/earcon.py) is no voice at whatever delay, and is
        judged as any echo is: counted here, it hid for 2 s the request of a user who said "Hey Jarvis. Tell me a
        story." just after the start-up sound, when one underrun came in the wake word (seen on CI, a real
        `spine run` on a PulseAudio null sink; tests/test_xrun_after_startup.py), and the listening window closed."""
        return (
            self._delay.lost
            and now_sample < self._distrust_until_sample
            and now_sample <= self._spoke_until_sample + XRUN_ECHO_TAIL_SAMPLES
        )

    def _reset_vad_when_quiet(self, chunk_samples: int) -> None:
        """Measured on the echo suite: after many seconds of echo-cancelled near-silence, Silero's recurrent
        state answers a voice onset several chunks late (peak 0.33 in the first 160 ms instead of 0.89 from a
        fresh state), which made barge-in 300-500 ms slower. Starting it afresh after a second of quiet keeps
        its onset response; in quiet there is nothing for the state to remember."""
        quiet = self.last_vad_probability < self._config.endpointer.off_threshold and not self._endpointer.voiced
        self._quiet_samples = self._quiet_samples + chunk_samples if quiet else 0
        if self._quiet_samples >= self._config.vad_reset_quiet_samples:
            self._vad.reset()
            self._quiet_samples = 0

    def _listen_to_own_speech(self, played: Audio, start_sample: int) -> None:
        """Score the wake word in what the speaker played; silence is skipped (the model's cost is per frame)."""
        assert self._own_wake is not None
        for frame_start, frame in self._own_frames.push(played, start_sample):
            if int(np.abs(frame.astype(np.int32)).max()) <= SILENT_PEAK:
                continue
            if self._own_wake.score(frame) >= self._config.wake_threshold:
                self._own_wake_until = frame_start + len(frame) + self._config.own_speech_window_samples
                self._own_wake.reset()

    def _echo_may_sound(self) -> bool:
        """Something played within the reference window (`_remember_played` keeps that long of peaks)."""
        return max(self._played_peaks, default=0) > 0

    def _remember_played(self, played: Audio | None, period_samples: int) -> bool:
        """Note the period's played peak; whether anything sounded in it."""
        peak = _played_peak(played)
        self._played_peaks.append(peak if peak > SILENT_PEAK else 0)
        while len(self._played_peaks) * period_samples > self._config.reference_window_samples:
            self._played_peaks.popleft()
        return peak > SILENT_PEAK

    def _other_ear(self, audio: Audio | None, start_sample: int) -> list[tuple[int, float]]:
        """The wake word's scores on the mic its grids do not hear, while the assistant's echo may sound (see
        `hear`); nothing otherwise, nor without a canceller (then both mics are the same audio). Started afresh
        whenever echo begins to sound after quiet: its frames never join audio from before a gap."""
        if self._other_wake is None or self._aec is None or audio is None or not self._echo_may_sound():
            self._other_wake_grids = None
            return []
        if self._other_wake_grids is None:
            self._other_wake.reset()
            self._other_wake_grids = WakeGrids(self._other_wake, None, self._config.wake_threshold)
        return self._other_wake_grids.push(audio, start_sample)

    def _remember_voice(self, chunk_start: int, probability: float) -> None:
        """Keep `FAINT_WAKE_HISTORY_SAMPLES` of the voice probabilities before the echo judgement (both mics'
        louder): the pause after a faint wake word is looked for in them (`_words_after`)."""
        self._voice_heard.append((chunk_start, probability))
        while self._voice_heard[0][0] < chunk_start - FAINT_WAKE_HISTORY_SAMPLES:
            self._voice_heard.popleft()

    def _words_after(self, frame_end: int) -> int | None:
        """Where the words after a wake word scored at `frame_end` may begin: the first sample of the last chunk of
        silence before it (None: no pause in the history). The model's score peaks late, often past the words
        that follow the wake word (measured on the real-stream suite: "Hey Jarvis, stop." peaked at the end of
        "stop", 1.2 s after the onset), so the frame's end says little of where the wake word ended; the pause
        after it says more. The probabilities are those before the echo judgement: the zeros it puts in the
        believed voice while the echo sounds would look like pauses inside the wake word."""
        for chunk_start, probability in reversed(self._voice_heard):
            if chunk_start < frame_end and probability < self._config.endpointer.off_threshold:
                return chunk_start
        return None

    def _faint_wake(self, score: float, frame_end: int) -> list[Event]:
        """`WakeHeardFaintly` when the score is at least `faint_wake_threshold`, within an utterance under way, and
        higher than any reported in it, with where the words after the wake word may begin (`_words_after`); the
        spine decides whether it opens the utterance. Measured (scripts/make_command_corpus.py --wake: 16 "Hey
        Jarvis, <question>" and 32 requests and stop phrases without it, over -6..+6 dB of echo): with the wake
        word, the better mic scored under 0.5 in 11, and 0.2-0.44 in 4 of those (0.1 in 2 more); without it,
        never above 0.04. Whisper wrote such a wake word as other words, and a garbled "Hey Jarvis, stop." was
        answered, on a loaded real stream."""
        if not self._endpointer.voiced:
            self._faint_best = 0.0
            return []
        threshold = self._config.faint_wake_threshold
        if threshold <= 0 or score < threshold or score <= self._faint_best or frame_end <= self._own_wake_until:
            return []
        self._faint_best = score
        words_from = self._words_after(frame_end)
        if words_from is None:
            return []
        return [WakeHeardFaintly(self._config.wake_model, round(float(score), 3), frame_end, words_from)]

    def _judge_wake(self, score: float, frame_end: int, other_ear: bool = False) -> list[Event]:
        """`WakeDetected` when the score wins, then what resetting the endpointer as of the wake word's frame
        revealed (a wake word found late: `Endpointer.reset`). `other_ear`: scored on the other mic (the monitor's
        last score is the main grid's)."""
        if not other_ear:
            self.last_wake_score = score
        if frame_end < self._wake_quiet_until:  # a detection's score falls through the faint range after it
            return []
        if score < self._config.wake_threshold:
            return self._faint_wake(score, frame_end)
        self._wake_quiet_until = frame_end + self._config.wake_refractory_samples
        self._wake_grids.reset()
        if self._other_wake_grids is not None:
            self._other_wake_grids.reset()
        own = frame_end <= self._own_wake_until
        # Rounded so the log is stable and readable; the spine compares the rounded score.
        detection = WakeDetected(self._config.wake_model, round(float(score), 3), frame_end, in_own_speech=own)
        if own:  # the assistant saying the wake word must not reset the user's utterance
            return [detection]
        return [detection, *self._endpointer.reset(at_sample=frame_end)]


def _played_peak(played: Audio | None) -> int:
    """The loudest sample of a played period, 0 for none."""
    return int(np.abs(played.astype(np.int32)).max()) if played is not None and len(played) else 0


def hearing_of(engines: Engines, config: Config, aec: EchoCanceller | None, period_samples: int) -> Hearing:
    """Hearing on `engines` (each twin where hearing wants one) as the daemon builds it; `spine bench` times it."""
    return Hearing(
        engines.vad,
        engines.wake,
        hearing_config(config),
        aec,
        engines.own_wake,
        raw_vad=engines.raw_vad,
        period_samples=period_samples,
        offset_wake=engines.offset_wake,
        other_wake=engines.other_wake,
    )
