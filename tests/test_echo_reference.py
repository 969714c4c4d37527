"""The played reference tells the assistant's echo from the user: measured on espeak-ng speech through the
simulated room, with and without the delay known, from a cold start."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pytest

from device.engines.earcon import earcon
from device.runtime import echo_reference
from device.runtime.echo_reference import (
    CHUNK_SAMPLES,
    DECAY_DB_PER_MS,
    DECAY_STEEPEST_DB_PER_MS,
    ReferenceEchoModel,
)
from device.sim.room import EchoPath, RoomNoise
from device.sim.scene import RoomSpec
from device.sim.speech import synthesize

RATE = 16000
PERIOD = 160
Floats = npt.NDArray[np.float32]

ASSISTANT = (
    "Once upon a time, in a small village at the edge of a great forest, there lived a clockmaker named Ada. "
    "Every morning she opened her shop and wound every clock on the wall, one by one."
)


def assistant_speech(seconds: float) -> npt.NDArray[np.int16]:
    audio = synthesize(ASSISTANT, "en-us+m3", rate_hz=RATE, gain_db=-3.0)
    return np.resize(audio, int(seconds * RATE)).astype(np.int16)


def echo_of(played: npt.NDArray[np.int16], room: RoomSpec) -> Floats:
    path = EchoPath(room, RATE)
    return np.concatenate([path.process(played[i : i + PERIOD]) for i in range(0, len(played), PERIOD)])


def chunk_ends(model: ReferenceEchoModel, played: npt.NDArray[np.int16]) -> Iterator[int]:
    """Play `played` to the model a period at a time, as hearing does; yield the end of each voice-detector chunk
    as soon as its last period has been pushed (the caller judges the mic chunk ending there)."""
    chunk_end = CHUNK_SAMPLES
    for start in range(0, len(played), PERIOD):
        model.push_played(played[start : start + PERIOD])
        while chunk_end <= start + PERIOD:
            yield chunk_end
            chunk_end += CHUNK_SAMPLES


def judge_all(
    played: npt.NDArray[np.int16], mic: npt.NDArray[np.int16], delay_ms: float | None
) -> list[tuple[int, bool, bool]]:
    """(chunk start, someone else, calibrated) for every voice-detector chunk, as hearing calls the model."""
    model = ReferenceEchoModel(PERIOD)
    model.set_delay_ms(delay_ms)
    out: list[tuple[int, bool, bool]] = []
    for chunk_end in chunk_ends(model, played):
        verdict = model.judge(mic[chunk_end - CHUNK_SAMPLES : chunk_end], played_since=model.played_samples - chunk_end)
        out.append((chunk_end - CHUNK_SAMPLES, verdict.someone_else, verdict.calibrated))
    return out


def room_mic(echo: Floats, user: Floats, seed: int) -> npt.NDArray[np.int16]:
    noise = RoomNoise(-60.0, seed).next(len(echo))
    mic: npt.NDArray[np.int16] = np.clip(np.rint(echo + user + noise), -32768, 32767).astype(np.int16)
    return mic


ROOMS = [
    RoomSpec(echo_delay_ms=40, echo_gain_db=-20, rt60_s=0.3, seed=1),
    RoomSpec(echo_delay_ms=120, echo_gain_db=-6, rt60_s=0.5, seed=2),
    RoomSpec(echo_delay_ms=250, echo_gain_db=0, rt60_s=0.6, seed=3),
]


@pytest.mark.parametrize("room", ROOMS, ids=lambda r: f"d{r.echo_delay_ms:g}_g{r.echo_gain_db:g}")
@pytest.mark.parametrize("delay_known", [True, False])
def test_the_echo_alone_is_never_someone_else(room: RoomSpec, delay_known: bool) -> None:
    played = assistant_speech(20.0)
    echo = echo_of(played, room)
    verdicts = judge_all(
        played, room_mic(echo, np.zeros_like(echo), room.seed), room.echo_delay_ms if delay_known else None
    )
    assert any(calibrated for _, _, calibrated in verdicts), "never calibrated on 20 s of echo"
    false = [start / RATE for start, someone_else, _ in verdicts if someone_else]
    assert false == [], false


@pytest.mark.parametrize("room", ROOMS, ids=lambda r: f"d{r.echo_delay_ms:g}_g{r.echo_gain_db:g}")
@pytest.mark.parametrize(("text", "voice"), [("Stop.", "en-us"), ("Never mind.", "en-gb"), ("Cancel.", "en-us+f3")])
def test_a_user_as_loud_as_the_echo_is_someone_else_within_200_ms(room: RoomSpec, text: str, voice: str) -> None:
    played = assistant_speech(8.0)
    echo = echo_of(played, room)
    onset = 3 * RATE
    word = synthesize(text, voice, rate_hz=RATE).astype(np.float64)
    word_energy = np.mean(word[np.abs(word) > 0.01 * np.abs(word).max()] ** 2)
    echo_energy = np.mean(echo[onset - RATE // 2 : onset + len(word)].astype(np.float64) ** 2)
    user = np.zeros_like(echo)
    user[onset : onset + len(word)] = word * np.sqrt(echo_energy / word_energy)  # the user as loud as the echo
    verdicts = judge_all(played, room_mic(echo, user, room.seed), room.echo_delay_ms)
    found = [start for start, someone_else, _ in verdicts if someone_else and start + CHUNK_SAMPLES > onset]
    assert found, "the user was not found"
    assert (found[0] + CHUNK_SAMPLES - onset) / RATE <= 0.2, (found[0] + CHUNK_SAMPLES - onset) / RATE
    assert not [s for s, someone_else, _ in verdicts if someone_else and s + CHUNK_SAMPLES <= onset]


def test_nothing_over_playback_is_someone_else_before_the_coupling_is_measured() -> None:
    room = ROOMS[1]
    played = assistant_speech(3.0)
    echo = echo_of(played, room)
    user = np.zeros_like(echo)
    word = synthesize("Stop.", "en-us", rate_hz=RATE)
    user[RATE // 8 : RATE // 8 + len(word)] = word  # a loud user in the very first words of the first answer
    verdicts = judge_all(played, room_mic(echo, user, 5), None)
    early = [(s, someone_else) for s, someone_else, calibrated in verdicts if not calibrated]
    assert early, "calibrated before any echo could have been measured"
    assert not any(someone_else for _, someone_else in early)


def test_silence_and_a_quiet_room_predict_no_echo() -> None:
    model = ReferenceEchoModel(PERIOD)
    for _ in range(100):
        model.push_played(np.zeros(PERIOD, np.int16))
    verdict = model.judge((RoomNoise(-60.0, 1).next(CHUNK_SAMPLES)).astype(np.int16))
    assert not verdict.echo_possible and not verdict.someone_else


def found_delay_after(played: npt.NDArray[np.int16], mic: npt.NDArray[np.int16]) -> float | None:
    """The delay the model found on its own (no canceller telling it) after hearing all of `played`."""
    model = ReferenceEchoModel(PERIOD)
    for chunk_end in chunk_ends(model, played):
        model.judge(mic[chunk_end - CHUNK_SAMPLES : chunk_end], played_since=model.played_samples - chunk_end)
    return model.found_delay_ms


@pytest.mark.parametrize(
    "room",
    [*ROOMS, RoomSpec(echo_delay_ms=20, echo_gain_db=-12, rt60_s=0.6, seed=4), RoomSpec(echo_delay_ms=400, seed=5)],
    ids=lambda r: f"d{r.echo_delay_ms:g}_rt{r.rt60_s:g}",
)
def test_the_start_up_sound_tells_the_echo_delay_never_late(room: RoomSpec) -> None:
    # Late is the dangerous side: a prediction that starts after the echo reads the echo as the user.
    played = earcon("startup")
    delay_ms = found_delay_after(played, room_mic(echo_of(played, room), np.zeros(len(played), np.float32), room.seed))
    assert delay_ms is not None, "no delay found on the start-up sound"
    assert room.echo_delay_ms - 40 <= delay_ms <= room.echo_delay_ms + 10, delay_ms


def test_no_delay_is_found_when_the_mic_hears_something_else() -> None:
    played = assistant_speech(6.0)
    other = synthesize("Hey Jarvis. What is the weather like tomorrow in the mountains?", "en-gb", rate_hz=RATE)
    mic = room_mic(np.resize(other, len(played)).astype(np.float32), np.zeros(len(played), np.float32), 7)
    assert found_delay_after(played, mic) is None


def decay_after_start_up_sound(
    room: RoomSpec, user: npt.NDArray[np.float64] | None = None, story_s: float = 0.0
) -> tuple[float, bool, list[float]]:
    """The start-up sound, a second of quiet, then `story_s` of the assistant's speech and two seconds of quiet in
    `room` (the delay known, as the tracker tells it within half a second), with `user` talking from the start: the
    decay the model took (dB per ms), whether it was measured, and when during the story (s) a chunk was someone
    else."""
    startup = earcon("startup")
    story_at = len(startup) + RATE
    quiet = np.zeros(RATE, np.int16)
    played = np.concatenate([startup, quiet, assistant_speech(story_s), quiet, quiet])
    echo = echo_of(played, room)
    talk = np.zeros(len(played)) if user is None else np.resize(user, len(played))
    model = ReferenceEchoModel(PERIOD)
    model.set_delay_ms(room.echo_delay_ms)
    mic = room_mic(echo, talk.astype(np.float32), room.seed)
    someone_else = []
    for chunk_end in chunk_ends(model, played):
        # In the quiet after the sound a chunk of noise can be unexplained (hearing asks for voice as well).
        verdict = model.judge(mic[chunk_end - CHUNK_SAMPLES : chunk_end], played_since=model.played_samples - chunk_end)
        if verdict.someone_else and story_at < chunk_end <= story_at + story_s * RATE:
            someone_else.append((chunk_end - story_at) / RATE)
    return model.decay_db_per_ms, model.measured_decay, someone_else


# Up to RT60 0.6 s, the safest candidate's room (a 1 s RT60 hall still rings past it: a limit).
@pytest.mark.parametrize("rt60_s", [0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
@pytest.mark.parametrize("seed", [1, 2])
def test_the_decay_measured_on_the_first_sounds_never_makes_the_echo_someone_else(rt60_s: float, seed: int) -> None:
    # Steeper than the room is the dangerous side: the reverberation of a loud syllable is then taken for the user.
    room = RoomSpec(echo_delay_ms=60, echo_gain_db=0, rt60_s=rt60_s, seed=seed)
    decay_db_per_ms, measured, someone_else = decay_after_start_up_sound(room, story_s=12.0)
    assert measured, "neither the start-up sound's echo nor the story's decided"
    assert someone_else == [], (decay_db_per_ms, someone_else)
    if rt60_s <= 0.2:  # a dry room (or a digital loop, as a sound server's null sink): the steepest
        assert decay_db_per_ms == DECAY_STEEPEST_DB_PER_MS
    if rt60_s >= 0.5:  # a reverberant one: the safest
        assert decay_db_per_ms == DECAY_DB_PER_MS


@pytest.mark.parametrize("rt60_s", [0.05, 0.2, 0.4])
def test_a_user_talking_over_the_first_sounds_makes_the_decay_no_steeper(rt60_s: float) -> None:
    room = RoomSpec(echo_delay_ms=60, echo_gain_db=0, rt60_s=rt60_s, seed=3)
    alone, _, _ = decay_after_start_up_sound(room, story_s=4.0)
    word = synthesize("Hey Jarvis, what time is it?", "en-gb", rate_hz=RATE).astype(np.float64)
    with_user, _, _ = decay_after_start_up_sound(room, np.concatenate([np.zeros(RATE // 2), word]), story_s=4.0)
    assert with_user <= alone


def test_a_quiet_start_up_sound_decides_nothing_and_keeps_the_safe_decay() -> None:
    room = RoomSpec(echo_delay_ms=60, echo_gain_db=-45, rt60_s=0.1, seed=4)  # its echo barely above the noise
    assert decay_after_start_up_sound(room)[:2] == (DECAY_DB_PER_MS, False)


def first_found_s(
    played: npt.NDArray[np.int16], mic: npt.NDArray[np.int16], delay_ms: float, story_at: int, onset: int, end: int
) -> float | None:
    """How long after `onset` the model first found someone else before `end` (None: never); the echo of the
    story before the onset must never be someone else."""
    model = ReferenceEchoModel(PERIOD)
    model.set_delay_ms(delay_ms)
    for chunk_end in chunk_ends(model, played):
        chunk = mic[chunk_end - CHUNK_SAMPLES : chunk_end]
        if (
            model.judge(chunk, played_since=model.played_samples - chunk_end).someone_else
            and story_at < chunk_end < end
        ):
            assert chunk_end > onset, "the echo alone was taken for someone else"
            return (chunk_end - onset) / RATE
    return None


def test_in_a_dry_room_the_measured_decay_finds_users_the_reverberant_one_misses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The case the measurement is for (a PulseAudio null sink at 0 dB is a dry loop): a user 6 dB under the echo is
    # masked by the tail a reverberant decay predicts after every loud syllable.
    startup = earcon("startup")
    story_at = len(startup) + RATE
    played = np.concatenate([startup, np.zeros(RATE, np.int16), assistant_speech(6.0)])
    found: dict[str, list[float | None]] = {"measured": [], "reverberant": []}
    for seed in (1, 2):
        room = RoomSpec(echo_delay_ms=30, echo_gain_db=0, rt60_s=0.01, seed=seed)
        echo = echo_of(played, room)
        for text in ("Stop.", "Cancel.", "Never mind."):
            onset = story_at + int((1.5 + seed * 0.7) * RATE)
            word = synthesize(text, "en-us", rate_hz=RATE).astype(np.float64)
            echo_rms = float(np.sqrt(np.mean(echo[onset - RATE : onset + RATE].astype(np.float64) ** 2)))
            word_rms = float(np.sqrt(np.mean(word[np.abs(word) > 0.01 * np.abs(word).max()] ** 2)))
            user = np.zeros(len(played))
            user[onset : onset + len(word)] = word * echo_rms / word_rms * 10 ** (-6 / 20)
            mic = room_mic(echo, user.astype(np.float32), room.seed)
            with monkeypatch.context() as reverberant:
                found["measured"].append(first_found_s(played, mic, 30, story_at, onset, onset + len(word)))
                # The judge before the measurement: one candidate, the reverberant decay.
                reverberant.setattr(echo_reference, "DECAY_CANDIDATES_DB_PER_MS", (DECAY_DB_PER_MS,))
                found["reverberant"].append(first_found_s(played, mic, 30, story_at, onset, onset + len(word)))
    assert all(s is not None and s <= 0.45 for s in found["measured"]), found
    assert all(r is None or (m is not None and r >= m) for m, r in zip(*found.values(), strict=True)), found
    assert sum(r is None for r in found["reverberant"]) >= 2, found  # when written: 3 of 6 missed


@pytest.mark.parametrize("path_trusted", [True, False])
def test_the_coupling_learns_nothing_while_the_path_is_not_trusted(path_trusted: bool) -> None:
    # After an xrun the echo is not where the model predicts it (measured under load through a sound server: it
    # moved by up to 870 ms, or the played audio never reached the room): learning from that spread the coupling
    # by 5-11 dB, so every band's margin grew to 15-33 dB and a user 3 dB under the echo stood out in none.
    room = ROOMS[1]
    moved = RoomSpec(echo_delay_ms=room.echo_delay_ms + 300, echo_gain_db=room.echo_gain_db, rt60_s=room.rt60_s)
    played = assistant_speech(14.0)
    mic = room_mic(echo_of(played, room), np.zeros(len(played), np.float32), room.seed)
    after = room_mic(echo_of(played, moved), np.zeros(len(played), np.float32), room.seed)
    model = ReferenceEchoModel(PERIOD)
    model.set_delay_ms(room.echo_delay_ms)  # still told the old delay: the tracker has not seen the move yet
    moved_from = 12 * RATE // CHUNK_SAMPLES * CHUNK_SAMPLES
    before = model.coupling_db
    for chunk_end in chunk_ends(model, played):
        if chunk_end == moved_from:
            before = model.coupling_db
        source = after if chunk_end > moved_from else mic
        model.judge(
            source[chunk_end - CHUNK_SAMPLES : chunk_end],
            path_trusted or chunk_end <= moved_from,
            played_since=model.played_samples - chunk_end,
        )
    spread = float(np.max(np.abs(model.coupling_db - before)))
    assert spread > 0.5 if path_trusted else spread == 0.0, spread
