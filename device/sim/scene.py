"""The scene format: the room's acoustics and what the user says, and when (documented in docs/scenes.md).

A scene is a TOML file with a `[room]` table (with any number of `[[room.delay_jumps]]`), any number of
`[[say]]` and `[[stall]]` entries and an optional `duration_s`.
Other people write scenes, so this format is kept stable: add keys with defaults, never change a meaning.
Times are in seconds of the scene's own sample clock, never wall-clock time.
"""

from __future__ import annotations

import importlib.resources
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from device.errors import UserError
from device.tomlfile import load_dataclass, loads_dataclass, within
from device.tomlfile_lines import KeyLines, KeyPath

# The longest a scene may say anything about, in seconds: a day, as `[sim] max_duration_s` allows at most. A time
# beyond it (or inf, or nan: TOML has both) is refused at its key's line instead of running on while memory grows.
SCENE_TIME_LIMIT_S = 86400.0

# What the assistant did that an `after` utterance waits for: it started speaking, or it fell silent.
Trigger = Literal["speaking", "silent"]


def _out_of_order(key: str, times_s: list[float]) -> str | None:
    """The entries of an array of tables keyed by `at_s` must come in time order (equal times are fine)."""
    for number, (before_s, at_s) in enumerate(itertools.pairwise(times_s), start=2):
        if at_s < before_s:
            return f"`{key}` entries must be in order of `at_s`: entry {number} at {at_s} s comes after {before_s} s"
    return None


@dataclass(frozen=True)
class DelayJump:
    """An xrun's mark on the echo path: a dropped or repeated period moves the echo by that much for good.

    at_s: when, seconds of scene time (at least 0).
    ms: from `at_s` on the echo arrives this many milliseconds later (negative: earlier); at most 100 either way;
        non-zero unless `reported` (a reported xrun may leave the echo where it was).
    reported: the card reports the xrun, as a real card does (an `AudioXrun` in the log, and hearing told at
        once, before it hears the period); false: the echo moves unreported, as a sound server's does under load.
    """

    at_s: float = field(metadata=within(0.0, SCENE_TIME_LIMIT_S))
    ms: float
    reported: bool = False

    def validate(self) -> str | None:
        if not abs(self.ms) <= 100.0 or (self.ms == 0.0 and not self.reported):  # written so that nan fails too
            return f"`ms` must be non-zero and between -100 and 100 (milliseconds; 0 only if `reported`), got {self.ms}"
        return None


@dataclass(frozen=True)
class RoomSpec:
    """The acoustic path from the assistant's speaker back into its microphone, and the room's noise.

    echo_delay_ms: speaker-to-microphone delay (sound flight plus converter latency), milliseconds.
    echo_gain_db: level of the echo relative to the speaker signal, dB (negative: quieter).
    rt60_s: reverberation time, seconds for the room's echo to decay by 60 dB.
    noise_dbfs: RMS level of the room's white noise, dB relative to full scale (32768).
    seed: seed of the random room impulse response and noise; same seed, same samples.
    drift_ppm: the speaker's clock runs at (1 + drift_ppm * 1e-6) times the mic's, parts per million, so the
        echo delay drifts continuously: +100 makes the echo arrive 0.1 ms later each second. 0: one clock.
    delay_jumps: steps of the echo delay (xruns), in order of `at_s`.
    speaker_clip_dbfs: the speaker's soft-clipping knee, dB relative to full scale: the sound entering the room
        is `knee * tanh(x / knee)`, so it never exceeds the knee. None: a linear speaker.
    """

    echo_delay_ms: float = 40.0
    echo_gain_db: float = -30.0
    rt60_s: float = 0.3
    noise_dbfs: float = -60.0
    seed: int = 0
    drift_ppm: float = 0.0
    delay_jumps: tuple[DelayJump, ...] = ()
    speaker_clip_dbfs: float | None = None

    def validate(self) -> str | None:
        if not 0.0 <= self.echo_delay_ms <= 1000.0:
            return f"`echo_delay_ms` must be between 0 and 1000, got {self.echo_delay_ms}"
        if not self.echo_gain_db <= 20.0:  # `not <=`: nan fails too
            return f"`echo_gain_db` must be at most 20 (dB), got {self.echo_gain_db}"
        # Bounded so the impulse response (1.5 x RT60 long) keeps the per-frame cost small.
        if not 0.01 <= self.rt60_s <= 2.0:
            return f"`rt60_s` must be between 0.01 and 2.0, got {self.rt60_s}"
        if not self.noise_dbfs <= 0.0:
            return f"`noise_dbfs` must be at most 0 (full scale), got {self.noise_dbfs}"
        if not -1000.0 <= self.drift_ppm <= 1000.0:
            return f"`drift_ppm` must be between -1000 and 1000, got {self.drift_ppm}"
        if self.speaker_clip_dbfs is not None and not -30.0 <= self.speaker_clip_dbfs <= 0.0:
            return f"`speaker_clip_dbfs` must be between -30 and 0 (dB full scale), got {self.speaker_clip_dbfs}"
        return self._validate_jumps()

    def _validate_jumps(self) -> str | None:
        problem = _out_of_order("delay_jumps", [jump.at_s for jump in self.delay_jumps])
        if problem is not None:
            return problem
        delay_ms = self.echo_delay_ms
        for number, jump in enumerate(self.delay_jumps, start=1):
            delay_ms += jump.ms
            if delay_ms < 0.0:  # the echo cannot arrive before the sound left the speaker
                return (
                    f"`delay_jumps` entry {number} takes the echo delay below 0 "
                    f"({self.echo_delay_ms} ms and the jumps up to it sum to {delay_ms:g} ms)"
                )
        return None


@dataclass(frozen=True)
class Say:
    """One utterance of the scripted user.

    text: what the user says (spoken by espeak-ng).
    voice: espeak-ng voice, e.g. "en-us", "en-gb", "en-us+f3" (`espeak-ng --voices` lists them).
    gain_db: the user's level relative to full-scale espeak-ng output, dB.
    at_s: start time, seconds from the scene start; or instead
    after: start when the assistant next starts "speaking" or falls "silent" (its speaker idle for 0.1 s) after
        the previous utterance ended, plus `delay_s` seconds counted from that moment.
    """

    text: str
    voice: str = "en-us"
    gain_db: float = 0.0
    at_s: float | None = field(default=None, metadata=within(0.0, SCENE_TIME_LIMIT_S))
    after: Trigger | None = None
    delay_s: float = field(default=0.0, metadata=within(0.0, SCENE_TIME_LIMIT_S))

    def validate(self) -> str | None:
        if not self.text.strip():
            return "`text` must not be empty"
        if (self.at_s is None) == (self.after is None):
            return 'give exactly one of `at_s` (seconds from the scene start) or `after` ("speaking" or "silent")'
        if self.at_s is not None and self.delay_s != 0.0:
            return "`delay_s` only applies with `after`; with `at_s`, put the time in `at_s`"
        return None


@dataclass(frozen=True)
class Stall:
    """The FSM thread freezes (a slow step, a page fault, a busy core) while the sound card plays on.

    at_s: when, seconds of scene time (at least 0).
    ms: for how long, milliseconds (more than 0, at most 2000).
    """

    at_s: float = field(metadata=within(0.0, SCENE_TIME_LIMIT_S))
    ms: float

    def validate(self) -> str | None:
        if not 0.0 < self.ms <= 2000.0:
            return f"`ms` must be more than 0 and at most 2000 (milliseconds), got {self.ms}"
        return None


@dataclass(frozen=True)
class Scene:
    """A whole scene: the room, the user's utterances in order, how long to run (None: until done), and the
    stalls of the FSM thread, in order of `at_s`."""

    room: RoomSpec = field(default_factory=RoomSpec)
    say: tuple[Say, ...] = ()
    duration_s: float | None = field(default=None, metadata=within(0.0, SCENE_TIME_LIMIT_S))
    stall: tuple[Stall, ...] = ()

    def validate(self) -> str | None:
        if self.duration_s is not None and self.duration_s <= 0.0:
            return f"`duration_s` must be more than 0, got {self.duration_s}"
        return _out_of_order("stall", [stall.at_s for stall in self.stall])


DEFAULT_SCENE_NAME = "default_scene.toml"


def default_scene_text() -> str:
    """The built-in default scene, as shipped in the package (scenes/default.toml is a copy)."""
    return importlib.resources.files("device").joinpath("data", DEFAULT_SCENE_NAME).read_text(encoding="utf-8")


def load_scene(path: Path | None) -> Scene:
    """Load a scene file, or the built-in default scene when `path` is None; errors are `UserError`s."""
    if path is None:
        scene = loads_dataclass(Scene, default_scene_text(), f"<built-in {DEFAULT_SCENE_NAME}>")
    else:
        scene = load_dataclass(Scene, path)
    out_of_order = _says_out_of_order(scene.say)
    if out_of_order is not None:
        earlier, later = out_of_order
        raise UserError(
            f"`say[{later + 1}].at_s` = {scene.say[later].at_s:g} s comes before `say[{earlier + 1}].at_s` = "
            f"{scene.say[earlier].at_s:g} s ({_quoted(scene.say[later])} after {_quoted(scene.say[earlier])}): "
            "the user says the [[say]] entries one after another; put them in order of `at_s`",
            where=say_line(path, later, "at_s"),
        )
    return scene


def _says_out_of_order(says: tuple[Say, ...]) -> tuple[int, int] | None:
    """The first (earlier entry, later entry) whose `at_s` go backwards. `after` entries start when the
    assistant does something, so only the `at_s` entries are compared: each against the latest before it."""
    latest: tuple[int, float] | None = None
    for index, say in enumerate(says):
        if say.at_s is None:
            continue
        if latest is not None and say.at_s < latest[1]:
            return latest[0], index
        latest = (index, say.at_s)
    return None


def refuse_overlapping_says(scene: Scene, path: Path | None, rate_hz: int) -> None:
    """Two `at_s` entries in a row whose voices would overlap (the first still being said when the second is
    due) are refused, naming both: their lengths are known once espeak-ng has voiced them (it is memoised, so
    the run pays nothing more). An `at_s` entry after an `after` entry depends on the run; if it overlaps,
    summary.json notes it."""
    from device.sim.speech import synthesize

    for index, (first, second) in enumerate(itertools.pairwise(scene.say)):
        if first.at_s is None or second.at_s is None:
            continue
        length_s = len(synthesize(first.text, first.voice, rate_hz=rate_hz, gain_db=first.gain_db)) / rate_hz
        if second.at_s < first.at_s + length_s:
            ends_s = math.ceil((first.at_s + length_s) * 100) / 100  # rounded up: starting there is fine
            raise UserError(
                f"`say[{index + 2}].at_s` = {second.at_s:g} s starts while `say[{index + 1}]` is still being said "
                f"({_quoted(first)} runs from {first.at_s:g} s to {ends_s:g} s): the user says one thing at a time; "
                f"start {_quoted(second)} at {ends_s:g} s or later",
                where=say_line(path, index + 1, "at_s"),
            )


def say_line(path: Path | None, index: int, key: str) -> str:
    """FILE:LINE of `key` in the scene's [[say]] entry `index` (from 0)."""
    return scene_line(path, ("say", index, key))


def scene_line(path: Path | None, key_path: KeyPath) -> str:
    """FILE:LINE of a key in a scene loaded from `path` (None: the built-in one), for a problem found after
    loading; the file was read a moment ago, so it is read again only to name the line."""
    text = default_scene_text() if path is None else path.read_text(encoding="utf-8")
    name = f"<built-in {DEFAULT_SCENE_NAME}>" if path is None else str(path)
    return f"{name}:{KeyLines(text).line_of(key_path)}"


def _quoted(say: Say) -> str:
    text = say.text if len(say.text) <= 30 else say.text[:29] + "…"
    return f'"{text}"'
