"""The echo canceller on realistic signals: espeak-ng speech played through the simulated room's echo path.

The assistant's speech is the reference; the microphone hears its echo (delayed, reverberated, attenuated) plus the
room's noise and, in the double-talk test, a user with another voice. Measured numbers are printed (`pytest -s`).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from device.engines.aec import (
    CONVERGE_COHERENCE,
    DIVERGE_COHERENCE,
    FRAME_SAMPLES,
    OUTPUT_DELAY_SAMPLES,
    EchoCanceller,
)
from device.rates import SPINE_RATE_HZ
from device.sim.room import EchoPath, RoomNoise
from device.sim.scene import RoomSpec
from device.sim.speech import synthesize

Audio = npt.NDArray[np.int16]
Signal = npt.NDArray[np.float32]

_REPO = Path(__file__).resolve().parents[1]

# About 8 s of speech: AEC3's initial state takes the first 2.5 s of it, the rest is what is measured.
ASSISTANT_TEXT = (
    "Hello, I am your assistant. The weather today is sunny with a light breeze from the west. "
    "Tomorrow it will rain in the afternoon, so take an umbrella."
)
UNRELATED_TEXT = "Seven bright kites drifted over the quiet harbour while the fishermen mended their nets and sang."
COUNTING_TEXT = "One two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen."
USER_TEXT = "Stop, please tell me about the train times instead."
USER_VOICE = "en-gb"

PERIOD_SAMPLES = 2 * FRAME_SAMPLES  # 20 ms periods: several frames per call, as the audio callback delivers them
SETTLE_S = 2.0  # the start of the signal left out of measured ERLE, as AEC3 learns the echo path


@dataclass(frozen=True)
class Run:
    """One pass of a canceller over a signal, with the estimate after every period."""

    cleaned: Audio
    erle_db: list[float]
    converged: list[bool]
    period_end_samples: list[int]


def assistant_speech() -> Audio:
    speech = synthesize(ASSISTANT_TEXT)
    return speech[: speech.size // FRAME_SAMPLES * FRAME_SAMPLES]


def to_int16(signal: Signal) -> Audio:
    return np.clip(np.round(signal), -32768, 32767).astype(np.int16)


def room_echo(speaker: Audio, room: RoomSpec) -> Signal:
    """What the microphone hears of `speaker`, plus the room's noise, streamed in frames as the card does."""
    path = EchoPath(room, SPINE_RATE_HZ)
    noise = RoomNoise(room.noise_dbfs, room.seed)
    frames = [
        path.process(speaker[start : start + FRAME_SAMPLES]) + noise.next(FRAME_SAMPLES)
        for start in range(0, speaker.size, FRAME_SAMPLES)
    ]
    return np.concatenate(frames)


def cancel(
    canceller: EchoCanceller,
    mic: Audio,
    reference: Audio,
    near_end_quiet: npt.NDArray[np.bool_] | None = None,
    period_samples: int = PERIOD_SAMPLES,
) -> Run:
    cleaned: list[Audio] = []
    erle_db: list[float] = []
    converged: list[bool] = []
    ends: list[int] = []
    for start in range(0, mic.size, period_samples):
        end = start + period_samples
        quiet = True if near_end_quiet is None else bool(near_end_quiet[start:end].all())
        cleaned.append(canceller.process(mic[start:end], reference[start:end], near_end_quiet=quiet))
        erle_db.append(canceller.erle_db)
        converged.append(canceller.converged)
        ends.append(end)
    return Run(np.concatenate(cleaned), erle_db, converged, ends)


def energy(signal: npt.NDArray[np.generic]) -> float:
    as_float = signal.astype(np.float64)
    return float(np.dot(as_float, as_float))


def ratio_db(numerator: npt.NDArray[np.generic], denominator: npt.NDArray[np.generic]) -> float:
    return 10.0 * float(np.log10(energy(numerator) / max(energy(denominator), 1.0)))


def correlation(a: npt.NDArray[np.generic], b: npt.NDArray[np.generic]) -> float:
    return float(np.dot(a.astype(np.float64), b.astype(np.float64)) / np.sqrt(energy(a) * energy(b)))


def echo_room(delay_ms: float) -> RoomSpec:
    """A loud echo: -6 dB, so that 20 dB of ERLE is well above the -60 dBFS noise (echo-to-noise ~32 dB)."""
    return RoomSpec(echo_delay_ms=delay_ms, echo_gain_db=-6.0, rt60_s=0.3, noise_dbfs=-60.0, seed=1)


def speech_onset_samples(speech: Audio) -> int:
    return int(np.argmax(np.abs(speech) > 100))


@pytest.mark.parametrize("delay_ms", [20.0, 150.0, 300.0])
def test_a_delayed_reference_is_cancelled(delay_ms: float) -> None:
    reference = assistant_speech()
    mic = to_int16(room_echo(reference, echo_room(delay_ms)))
    canceller = EchoCanceller()

    run = cancel(canceller, mic, reference)

    settled = round(SETTLE_S * SPINE_RATE_HZ)
    erle_db = ratio_db(mic[settled:], run.cleaned[settled:])
    assert canceller.converged_at_frame is not None
    converged_after_s = (canceller.converged_at_frame * FRAME_SAMPLES - speech_onset_samples(reference)) / SPINE_RATE_HZ
    print(
        f"\ndelay {delay_ms:.0f} ms: ERLE {erle_db:.1f} dB after {SETTLE_S} s, estimate {canceller.erle_db:.1f} dB, "
        f"converged {converged_after_s:.2f} s after the speech started, coherence {canceller.echo_coherence:.2f} "
        f"at {canceller.echo_delay_ms} ms, {canceller.cost_per_frame_us:.0f} us per frame"
    )
    assert erle_db >= 20.0
    assert canceller.echo_coherence >= CONVERGE_COHERENCE
    assert canceller.echo_delay_ms == pytest.approx(delay_ms, abs=2.0)
    # Measured ~3.9 s: the 3 s AEC3 initial state (counted in active reference, which has pauses) + 0.3 s above
    # 10 dB. Generous, as the pauses of the speech and the delay move it.
    assert converged_after_s <= 6.0
    assert canceller.converged
    assert canceller.frames_processed == reference.size // FRAME_SAMPLES
    assert canceller.cost_per_frame_us > 0.0


def test_a_quiet_echo_as_in_the_default_room_still_converges() -> None:
    """The demo's room: -30 dB echo over -60 dBFS noise. The ERLE is capped by the echo-to-noise ratio (~10 dB)."""
    reference = assistant_speech()
    mic = to_int16(room_echo(reference, RoomSpec()))
    canceller = EchoCanceller()

    run = cancel(canceller, mic, reference)

    settled = round(SETTLE_S * SPINE_RATE_HZ)
    print(
        f"\ndefault room: ERLE {ratio_db(mic[settled:], run.cleaned[settled:]):.1f} dB over all frames, estimate "
        f"{canceller.erle_db:.1f} dB (frames above the mic floor), converged at frame {canceller.converged_at_frame}"
    )
    assert canceller.converged


def test_not_converged_before_a_reference_and_the_estimate_tracks_the_measured_erle() -> None:
    reference = assistant_speech()
    silence_samples = SPINE_RATE_HZ  # one second of room noise and a user speaking, nothing played
    user = synthesize(USER_TEXT, USER_VOICE)[:silence_samples].astype(np.float32)
    before = to_int16(RoomNoise(-60.0, seed=2).next(silence_samples) + np.pad(user, (0, silence_samples - user.size)))
    canceller = EchoCanceller()

    quiet_run = cancel(canceller, before, np.zeros_like(before))

    assert not any(quiet_run.converged)
    assert canceller.erle_db == 0.0  # nothing counted: no evidence either way

    mic = to_int16(room_echo(reference, echo_room(150.0)))
    run = cancel(canceller, mic, reference)

    last_second = slice(-SPINE_RATE_HZ, None)
    measured_db = ratio_db(mic[last_second], run.cleaned[last_second])
    print(f"\nERLE measured over the last second {measured_db:.1f} dB, estimate {canceller.erle_db:.1f} dB")
    assert canceller.converged
    assert canceller.erle_db == pytest.approx(measured_db, abs=3.0)


def test_double_talk_keeps_the_users_voice_and_the_estimate() -> None:
    reference = assistant_speech()
    room = echo_room(150.0)
    echo = room_echo(reference, room)
    # The user starts after the initial state, 12 dB below their default level: the echo is louder than the user.
    user_start = round(4.5 * SPINE_RATE_HZ)
    user_speech = synthesize(USER_TEXT, USER_VOICE, gain_db=-12.0).astype(np.float32)
    user_speech = user_speech[: reference.size - user_start]
    user = np.zeros(reference.size, dtype=np.float32)
    user[user_start : user_start + user_speech.size] = user_speech
    talk = slice(user_start, user_start + user_speech.size)
    mic = to_int16(echo + user)
    # What the APM makes of the user alone (high-pass filter, its 8 ms delay): the yardstick for the cleaned mic.
    user_alone = to_int16(user + RoomNoise(room.noise_dbfs, seed=2).next(user.size))
    user_processed = cancel(EchoCanceller(), user_alone, np.zeros_like(reference)).cleaned
    # The caller's belief that the user speaks, with 100 ms of slack either side.
    near_end_quiet = np.ones(reference.size, dtype=np.bool_)
    near_end_quiet[user_start - SPINE_RATE_HZ // 10 : talk.stop + SPINE_RATE_HZ // 10] = False

    flagged_canceller = EchoCanceller()
    flagged = cancel(flagged_canceller, mic, reference, near_end_quiet)
    unflagged = cancel(EchoCanceller(), mic, reference)

    delayed_talk = slice(talk.start + OUTPUT_DELAY_SAMPLES, talk.stop + OUTPUT_DELAY_SAMPLES)
    kept = user_processed[delayed_talk].astype(np.float64)
    cleaned_talk = flagged.cleaned[delayed_talk].astype(np.float64)
    user_gain_db = 20.0 * float(np.log10(np.dot(cleaned_talk, kept) / np.dot(kept, kept)))
    cleaned_correlation = correlation(cleaned_talk, kept)
    raw_correlation = correlation(mic[talk], user[talk])

    def during_talk(run: Run) -> list[float]:
        return [erle for erle, end in zip(run.erle_db, run.period_end_samples, strict=True) if talk.start < end]

    before_db = [
        erle for erle, end in zip(flagged.erle_db, flagged.period_end_samples, strict=True) if end <= talk.start
    ]
    print(
        f"\ndouble talk, echo {ratio_db(echo[talk], user[talk]):.1f} dB louder than the user: user's voice "
        f"{user_gain_db:.1f} dB through the canceller; correlation with the user {cleaned_correlation:.2f} cleaned, "
        f"{raw_correlation:.2f} raw mic; ERLE estimate {before_db[-1]:.1f} dB before, down to "
        f"{min(during_talk(flagged)):.1f} dB flagged, {min(during_talk(unflagged)):.1f} dB unflagged"
    )
    # Measured -7 dB: AEC3 attenuates the user while a louder echo plays, but keeps them clearly audible.
    assert user_gain_db >= -12.0
    # The raw mic is dominated by the echo (~0.48); the cleaned mic is dominated by the user (~0.71).
    assert cleaned_correlation >= raw_correlation + 0.1
    # Flagged double talk leaves the estimate where it was; unflagged, the user's voice reads as a collapse.
    assert min(during_talk(flagged)) >= before_db[-1] - 3.0
    assert flagged_canceller.converged
    assert min(during_talk(unflagged)) <= before_db[-1] - 10.0


# With the counting text, AEC3 goes on muting the mic in bursts after its initial state (the ERLE estimate reaches
# ~40 dB): only the coherence check keeps `converged` False there.
@pytest.mark.parametrize(
    ("text", "voice"), [(UNRELATED_TEXT, "en-us+m3"), (COUNTING_TEXT, "en-us+m3")], ids=["kites", "counting"]
)
def test_an_unrelated_reference_never_converges(text: str, voice: str) -> None:
    reference = assistant_speech()
    mic = to_int16(room_echo(reference, echo_room(150.0)))
    unrelated = np.resize(synthesize(text, voice), reference.size)
    canceller = EchoCanceller()

    run = cancel(canceller, mic, unrelated)

    initial_state = slice(round(0.5 * SPINE_RATE_HZ), round(2.0 * SPINE_RATE_HZ))
    after = slice(round(4.0 * SPINE_RATE_HZ), None)
    initial_db = ratio_db(mic[initial_state], run.cleaned[initial_state])
    after_db = ratio_db(mic[after], run.cleaned[after])
    print(
        f"\nunrelated reference ({text[:20]}...): mic reduced {initial_db:.1f} dB in AEC3's initial state, "
        f"{after_db:.1f} dB after; ERLE estimate up to {max(run.erle_db):.1f} dB, "
        f"coherence {canceller.echo_coherence:.3f}"
    )
    # AEC3's suppressor mutes the mic in its initial state although nothing matches: why the ERLE skips it.
    assert initial_db >= 10.0, "AEC3's initial state changed: revisit AEC3_INITIAL_STATE_S"
    assert not any(run.converged)
    assert canceller.converged_at_frame is None
    assert canceller.echo_coherence < DIVERGE_COHERENCE


def test_an_echo_path_change_diverges_then_converges_again() -> None:
    """The echo delay jumps from 20 to 300 ms mid-sentence (the device moved, or the sound card's latency changed)."""
    speech = assistant_speech()
    mic = to_int16(np.concatenate((room_echo(speech, echo_room(20.0)), room_echo(speech, echo_room(300.0)))))
    reference = np.concatenate((speech, speech))
    canceller = EchoCanceller()

    run = cancel(canceller, mic, reference)

    flips_s = [
        (end / SPINE_RATE_HZ, now)
        for end, before, now in zip(run.period_end_samples[1:], run.converged[:-1], run.converged[1:], strict=True)
        if now != before
    ]
    change_s = speech.size / SPINE_RATE_HZ
    print(
        f"\necho path change at {change_s:.2f} s: converged changes {flips_s}, delay now {canceller.echo_delay_ms} ms"
    )
    # Measured: True at 3.9 s, False 1.7 s after the change (AEC3 leaks the echo while it relocks), True again 3.2 s
    # after it.
    assert [now for _, now in flips_s] == [True, False, True]
    assert flips_s[1][0] > change_s
    assert canceller.converged_at_frame is not None and canceller.converged_at_frame * FRAME_SAMPLES < speech.size
    assert canceller.echo_delay_ms == pytest.approx(300.0, abs=2.0)


def test_a_reference_later_than_its_echo_never_converges() -> None:
    """A reference fed 200 ms after the speaker played it: the echo comes first, and no canceller can use it."""
    speaker = assistant_speech()
    mic = to_int16(room_echo(speaker, echo_room(20.0)))
    late_samples = round(0.2 * SPINE_RATE_HZ)
    late_reference = np.concatenate((np.zeros(late_samples, dtype=np.int16), speaker[:-late_samples]))
    canceller = EchoCanceller()

    run = cancel(canceller, mic, late_reference)

    after = slice(round(4.0 * SPINE_RATE_HZ), None)
    print(
        f"\nreference 200 ms late: mic reduced {ratio_db(mic[after], run.cleaned[after]):.1f} dB after 4 s, "
        f"coherence {canceller.echo_coherence:.3f}"
    )
    assert not any(run.converged)
    assert canceller.echo_coherence < DIVERGE_COHERENCE


@pytest.mark.parametrize(
    ("mic_samples", "reference_samples"),
    [(159, 159), (161, 161), (0, 0), (320, 160), (160, 320)],
)
def test_wrong_lengths_raise(mic_samples: int, reference_samples: int) -> None:
    canceller = EchoCanceller()
    with pytest.raises(ValueError, match="samples"):
        canceller.process(np.zeros(mic_samples, dtype=np.int16), np.zeros(reference_samples, dtype=np.int16))
    assert canceller.frames_processed == 0


def test_wrong_types_and_thresholds_raise() -> None:
    canceller = EchoCanceller()
    with pytest.raises(ValueError, match="int16"):
        canceller.process(np.zeros(160, dtype=np.float32), np.zeros(160, dtype=np.float32))
    with pytest.raises(ValueError, match="1-D"):
        canceller.process(np.zeros((2, 160), dtype=np.int16), np.zeros((2, 160), dtype=np.int16))
    with pytest.raises(ValueError, match="diverge_erle_db"):
        EchoCanceller(converge_erle_db=5.0, diverge_erle_db=6.0)
    with pytest.raises(ValueError, match="positive"):
        EchoCanceller(converge_frames=0)


def test_the_output_lags_the_input_by_the_documented_delay() -> None:
    noise = (np.random.default_rng(0).standard_normal(SPINE_RATE_HZ) * 3000.0).astype(np.int16)
    cleaned = cancel(EchoCanceller(), noise, np.zeros_like(noise)).cleaned
    start, stop = 2000, 14000
    window = cleaned[start:stop].astype(np.float64)
    scores = [abs(float(np.dot(window, noise[start - lag : stop - lag]))) for lag in range(300)]
    assert int(np.argmax(scores)) == OUTPUT_DELAY_SAMPLES


def test_reset_starts_over() -> None:
    reference = assistant_speech()
    mic = to_int16(room_echo(reference, echo_room(20.0)))
    canceller = EchoCanceller()
    cancel(canceller, mic, reference)
    assert canceller.converged

    canceller.reset()

    assert (canceller.converged, canceller.converged_at_frame, canceller.erle_db) == (False, None, 0.0)
    assert (canceller.frames_processed, canceller.cost_per_frame_us) == (0, 0.0)
    assert np.array_equal(cancel(canceller, mic, reference).cleaned, cancel(EchoCanceller(), mic, reference).cleaned)


def _determinism_input() -> tuple[Audio, Audio]:
    reference = assistant_speech()[: 5 * SPINE_RATE_HZ]
    return to_int16(room_echo(reference, echo_room(150.0))), reference


def test_identical_input_gives_identical_output() -> None:
    mic, reference = _determinism_input()
    first, second = EchoCanceller(), EchoCanceller()
    first_out: list[Audio] = []
    second_out: list[Audio] = []
    # Interleaved, so any state shared between instances (in livekit's FFI server) would show.
    for start in range(0, mic.size, PERIOD_SAMPLES):
        end = start + PERIOD_SAMPLES
        first_out.append(first.process(mic[start:end], reference[start:end]))
        second_out.append(second.process(mic[start:end], reference[start:end]))
        assert (first.erle_db, first.echo_coherence) == (second.erle_db, second.echo_coherence)
    assert np.array_equal(np.concatenate(first_out), np.concatenate(second_out))
    # The period length does not matter either: only 10 ms frames reach the APM.
    long_periods = cancel(EchoCanceller(), mic, reference, period_samples=100 * FRAME_SAMPLES).cleaned
    assert np.array_equal(long_periods, np.concatenate(first_out))


_CHILD = """
import hashlib
from tests.test_aec import EchoCanceller, _determinism_input, cancel
mic, reference = _determinism_input()
print(hashlib.sha256(cancel(EchoCanceller(), mic, reference).cleaned.tobytes()).hexdigest())
"""


@pytest.mark.slow
def test_identical_input_gives_identical_output_across_processes() -> None:
    mic, reference = _determinism_input()
    here = hashlib.sha256(cancel(EchoCanceller(), mic, reference).cleaned.tobytes()).hexdigest()
    result = subprocess.run(
        [sys.executable, "-c", _CHILD], cwd=_REPO, capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == here


@pytest.mark.parametrize("jump_ms", [10.0, -10.0, 20.0])
def test_a_delay_jump_of_one_xrun_is_seen_within_a_second_and_nothing_before_it(jump_ms: float) -> None:
    """A dropped or repeated period moves the echo by 10 ms: the canceller stops claiming convergence within
    one coherence block or two (it used to keep claiming it for tens of seconds on a real stream)."""
    from device.sim.scene import DelayJump

    speech = np.concatenate([assistant_speech()] * 3)
    jump_s = 2 * assistant_speech().size / SPINE_RATE_HZ
    room = RoomSpec(
        echo_delay_ms=60.0, echo_gain_db=-6.0, rt60_s=0.3, noise_dbfs=-60.0, seed=4,
        delay_jumps=(DelayJump(jump_s, jump_ms),),
    )  # fmt: skip
    mic = to_int16(room_echo(speech, room))
    canceller = EchoCanceller()
    run = cancel(canceller, mic, speech)
    ends_s = np.array(run.period_end_samples) / SPINE_RATE_HZ
    converged = np.array(run.converged)
    assert converged[ends_s < jump_s].any(), "never converged before the jump"
    first = float(ends_s[np.flatnonzero(converged)[0]])
    assert converged[(ends_s >= first) & (ends_s < jump_s)].all(), "diverged before the jump"
    lost = ends_s[(ends_s >= jump_s) & ~converged]
    assert lost.size, "the jump was never noticed"
    print(f"\n{jump_ms:+.0f} ms jump at {jump_s:.2f} s noticed after {lost[0] - jump_s:.2f} s")
    assert lost[0] - jump_s <= 1.0
    assert canceller.path_changes >= 1
