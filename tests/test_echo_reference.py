"""The played reference tells the assistant's echo from the user: measured on espeak-ng speech through the
simulated room, with and without the delay known, from a cold start."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from device.engines.earcon import earcon
from device.runtime.echo_reference import CHUNK_SAMPLES, ReferenceEchoModel
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


def judge_all(
    played: npt.NDArray[np.int16], mic: npt.NDArray[np.int16], delay_ms: float | None
) -> list[tuple[int, bool, bool]]:
    """(chunk start, someone else, calibrated) for every voice-detector chunk, as hearing calls the model."""
    model = ReferenceEchoModel(PERIOD)
    model.set_delay_ms(delay_ms)
    out: list[tuple[int, bool, bool]] = []
    chunk_end = CHUNK_SAMPLES
    for start in range(0, len(played), PERIOD):
        model.push_played(played[start : start + PERIOD])
        while chunk_end <= start + PERIOD:
            verdict = model.judge(mic[chunk_end - CHUNK_SAMPLES : chunk_end])
            out.append((chunk_end - CHUNK_SAMPLES, verdict.someone_else, verdict.calibrated))
            chunk_end += CHUNK_SAMPLES
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
    chunk_end = CHUNK_SAMPLES
    for start in range(0, len(played), PERIOD):
        model.push_played(played[start : start + PERIOD])
        while chunk_end <= start + PERIOD:
            model.judge(mic[chunk_end - CHUNK_SAMPLES : chunk_end])
            chunk_end += CHUNK_SAMPLES
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
