"""The virtual sound card: the speaker's output goes through the room back into the mic, mixed with the user.

It is the ground truth of a run: it knows when each scripted utterance really starts and ends, and which
playback epoch every speaker sample came from, so cutoff, stale audio and barge-in latency are measured
exactly rather than inferred from the log.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from device.sim.playback import PlaybackGate
from device.sim.room import EchoPath, RoomNoise
from device.sim.scene import Say, Scene
from device.sim.speech import synthesize

Audio = npt.NDArray[np.int16]

SILENT_HOLD_S = 0.1
"""The speaker idle this long has fallen silent; shorter is a gap between two commands of one step. Below every
`delay_s` a scene uses after "silent" (0.5 s and up), so utterances still start `delay_s` after the silence began."""


@dataclass(frozen=True)
class Utterance:
    """One scripted utterance as it really happened, in samples."""

    text: str
    voice: str
    start_sample: int
    end_sample: int


class ScenePlayer:
    """Decides when each scripted utterance starts, from absolute times or from what the assistant does.

    `after = "speaking"` / `"silent"` waits for the first such assistant event after the previous utterance
    ended (for the first utterance: after the scene started), then `delay_s` more, counted from the event.
    Falling silent means the speaker stayed idle for `SILENT_HOLD_S`: a cut followed by the apology a period
    later is one stretch of speech to a listener (on the wall clock the card can run between the two commands).
    """

    def __init__(self, scene: Scene, rate_hz: int) -> None:
        self._rate_hz = rate_hz
        self._says = scene.say
        self._audio = [synthesize(say.text, say.voice, rate_hz=rate_hz, gain_db=say.gain_db) for say in scene.say]
        self._next = 0
        self._due: int | None = None
        self._armed_from = 0  # assistant events before this sample do not trigger the next utterance
        self.started: list[Utterance] = []

    def done(self, now: int) -> bool:
        """Every utterance has been said to its end."""
        return self._next >= len(self._says) and all(u.end_sample <= now for u in self.started)

    def observe(self, now: int, speaking_started: bool, silent_since: int | None) -> None:
        """Called once per period with what the assistant did: whether it started speaking in this period, and
        since which sample it has been silent if that has lasted `SILENT_HOLD_S`. Schedules the next utterance."""
        if self._next >= len(self._says) or self._due is not None:
            return
        say = self._says[self._next]
        if say.at_s is not None:
            self._due = round(say.at_s * self._rate_hz)
        elif say.after == "speaking" and speaking_started and now >= self._armed_from:
            self._due = now + round(say.delay_s * self._rate_hz)
        elif say.after == "silent" and silent_since is not None and silent_since >= self._armed_from:
            self._due = silent_since + round(say.delay_s * self._rate_hz)

    def frame(self, start: int, n: int) -> npt.NDArray[np.float32]:
        """The user's voice at the mic for samples [start, start + n)."""
        if self._due is not None and self._due < start + n:
            self._begin(max(self._due, start))
        out = np.zeros(n, np.float32)
        # Utterances start in script order, so the i-th started one is the i-th scripted one.
        for audio, utterance in zip(self._audio, self.started, strict=False):
            lo, hi = max(start, utterance.start_sample), min(start + n, utterance.end_sample)
            if lo < hi:
                out[lo - start : hi - start] += audio[lo - utterance.start_sample : hi - utterance.start_sample]
        return out

    def _begin(self, at: int) -> None:
        say: Say = self._says[self._next]
        audio = self._audio[self._next]
        utterance = Utterance(say.text, say.voice, at, at + len(audio))
        self.started.append(utterance)
        self._next += 1
        self._due = None
        self._armed_from = utterance.end_sample


class VirtualCard:
    """One period at a time: speaker frame from the gate, mic frame = user + echo + noise."""

    def __init__(self, gate: PlaybackGate, scene: Scene, rate_hz: int, capacity_samples: int) -> None:
        self._gate = gate
        self.echo_path = EchoPath(scene.room, rate_hz)
        self._noise = RoomNoise(scene.room.noise_dbfs, scene.room.seed)
        self.player = ScenePlayer(scene, rate_hz)
        self.mic = np.zeros(capacity_samples, np.int16)
        self.speaker = np.zeros(capacity_samples, np.int16)
        self.epochs = np.zeros(capacity_samples, np.int32)
        # The mic's two sources kept apart: the ground truth for echo-to-user levels and ERLE.
        self.user = np.zeros(capacity_samples, np.float32)
        self.echo = np.zeros(capacity_samples, np.float32)
        self.written = 0
        self._seen_epochs: set[int] = set()
        self._was_busy = False
        self._idle_since: int | None = None  # the sample the speaker last went idle, None while it plays
        self._silent_hold_samples = round(SILENT_HOLD_S * rate_hz)

    def tick(self, start: int, n: int) -> tuple[Audio, Audio]:
        """One period: returns (what the mic heard, what the speaker played)."""
        frame = self._gate.pull(n)
        user = self.player.frame(start, n)
        echo = self.echo_path.process(frame.audio)
        mic: Audio = np.clip(np.rint(user + echo + self._noise.next(n)), -32768, 32767).astype(np.int16)
        self._record(start, n, mic, frame.audio, frame.epochs)
        self.user[start : start + n] = user
        self.echo[start : start + n] = echo
        new_epochs = set(np.unique(frame.epochs[frame.epochs > 0]).tolist()) - self._seen_epochs
        self._seen_epochs |= new_epochs
        busy = self._gate.busy()
        now = start + n
        if busy:
            self._idle_since = None
        elif self._was_busy:
            self._idle_since = now
        held = self._idle_since is not None and now - self._idle_since >= self._silent_hold_samples
        self.player.observe(now, speaking_started=bool(new_epochs), silent_since=self._idle_since if held else None)
        self._was_busy = busy
        return mic, frame.audio

    def _record(self, start: int, n: int, mic: Audio, speaker: Audio, epochs: npt.NDArray[np.int32]) -> None:
        if start + n > len(self.mic):  # grow geometrically; a long scene should not be cut short
            size = max(2 * len(self.mic), start + n)
            for name in ("mic", "speaker", "epochs", "user", "echo"):
                old = getattr(self, name)
                grown = np.zeros(size, old.dtype)
                grown[: len(old)] = old
                setattr(self, name, grown)
        self.mic[start : start + n] = mic
        self.speaker[start : start + n] = speaker
        self.epochs[start : start + n] = epochs
        self.written = start + n
