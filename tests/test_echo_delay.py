"""The echo delay tracker finds where in the mic the played audio is, follows it when it moves (an underrun under
load moves it by tens of milliseconds, with or without an xrun report), and takes nothing from audio the
reference does not explain."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from device.runtime.echo_delay import HOP_SAMPLES, WINDOW_SAMPLES, EchoDelayTracker

RATE_HZ = 16000
PERIOD = 160
Audio = npt.NDArray[np.int16]


def _talk(seconds: float, seed: int) -> npt.NDArray[np.float64]:
    """Speech-like sound: coloured noise in syllables of 120-250 ms with gaps, at about -20 dBFS."""
    rng = np.random.default_rng(seed)
    n = round(seconds * RATE_HZ)
    noise = np.convolve(rng.standard_normal(n), np.hanning(9), mode="same")  # less top end, as a voice has
    envelope = np.zeros(n)
    at = 0
    while at < n:
        syllable = int(rng.integers(1900, 4000))
        envelope[at : at + syllable] = np.hanning(syllable)[: n - at]
        at += syllable + int(rng.integers(300, 2500))
    sound = noise * envelope
    scaled: npt.NDArray[np.float64] = 3000.0 * sound / (np.sqrt(np.mean(sound**2)) + 1e-9)
    return scaled


def _room(played: npt.NDArray[np.float64], delays_samples: list[tuple[int, int]], seed: int) -> Audio:
    """The mic: `played` echoed at -6 dB through a reverberant room (RT60 0.4 s, about as much energy in the
    reverberation as in the direct sound), the delay changing at the given sample indices ((from_sample, delay)
    pairs, in order), plus a quiet room's noise."""
    rng = np.random.default_rng(seed)
    taps = np.arange(3200)
    impulse = rng.standard_normal(3200) * 10 ** (-60 * taps / RATE_HZ / 0.4 / 20) * 0.02
    impulse[0] = 0.5
    reverberant = np.convolve(played, impulse)[: len(played)]
    mic = rng.standard_normal(len(played)) * 10.0
    for index, (start, delay) in enumerate(delays_samples):
        end = delays_samples[index + 1][0] if index + 1 < len(delays_samples) else len(played)
        source = np.arange(start, end) - delay
        inside = source >= 0
        mic[start:end][inside] += reverberant[source[inside]]
    return np.clip(mic, -32768, 32767).astype(np.int16)


def _track(
    tracker: EchoDelayTracker, mic: Audio, played: Audio, forget_at: int | None = None, new_path: bool = False
) -> list[tuple[int, int | None]]:
    """Push period by period; the (sample, delay) after each change of `delay_samples`; `forget_at`: the path
    moved there (`new_path`: the stream was reopened at another latency)."""
    changes: list[tuple[int, int | None]] = []
    last: int | None = None
    for start in range(0, len(mic) - PERIOD + 1, PERIOD):
        if forget_at is not None and start == forget_at:
            tracker.forget(forget_at, new_path=new_path)
        tracker.push(mic[start : start + PERIOD], played[start : start + PERIOD])
        if tracker.delay_samples != last:
            last = tracker.delay_samples
            changes.append((start + PERIOD, last))
    return changes


def test_the_delay_of_a_reverberant_echo_is_found_within_the_first_second_of_playback() -> None:
    played = _talk(4.0, seed=1)
    mic = _room(played, [(0, 2192)], seed=2)  # 137 ms
    changes = _track(EchoDelayTracker(), mic, played.astype(np.int16))
    found_at, delay = changes[0]
    assert delay is not None and abs(delay - 2192) <= 2
    assert found_at <= RATE_HZ  # within the first second
    assert all(abs((d or 0) - 2192) <= 16 for _, d in changes)  # and it stays there


def test_a_move_of_the_echo_is_followed_within_half_a_second_without_being_told() -> None:
    played = _talk(8.0, seed=3)
    moved_at = 4 * RATE_HZ
    mic = _room(played, [(0, 2192), (moved_at, 2192 + 1600)], seed=4)  # 100 ms later, as an underrun does
    tracker = EchoDelayTracker()
    changes = _track(tracker, mic, played.astype(np.int16))
    after = [(at, d) for at, d in changes if at > moved_at]
    assert after, "the move was not seen"
    first_at, first_delay = after[0]
    assert first_delay is not None and abs(first_delay - 3792) <= 2
    assert first_at - moved_at <= RATE_HZ // 2 + HOP_SAMPLES
    assert tracker.moves == 1


def test_after_forget_the_delay_is_unknown_until_audio_after_that_moment_has_shown_it() -> None:
    played = _talk(8.0, seed=5)
    moved_at = 4 * RATE_HZ
    mic = _room(played, [(0, 800), (moved_at, 800 + 480)], seed=6)
    tracker = EchoDelayTracker()
    changes = _track(tracker, mic, played.astype(np.int16), forget_at=moved_at)
    assert (moved_at + PERIOD, None) in changes  # forgotten at once: `lost` until found again
    found = [(at, d) for at, d in changes if at > moved_at and d is not None]
    assert found[0][1] is not None and abs(found[0][1] - 1280) <= 2
    assert found[0][0] >= moved_at + WINDOW_SAMPLES  # only windows wholly after the move count
    assert not tracker.lost


def test_the_path_s_own_latency_is_the_reopened_stream_s_not_the_shorter_one_before() -> None:
    played = _talk(8.0, seed=5)
    reopened_at = 4 * RATE_HZ
    mic = _room(played, [(0, 480), (reopened_at, 2560)], seed=6)  # 30 ms, then a stream reopened at 160 ms
    moved, reopened = EchoDelayTracker(), EchoDelayTracker()
    _track(moved, mic, played.astype(np.int16), forget_at=reopened_at)
    _track(reopened, mic, played.astype(np.int16), forget_at=reopened_at, new_path=True)
    assert moved.delay_samples == reopened.delay_samples and abs((reopened.delay_samples or 0) - 2560) <= 2
    assert moved.shortest_samples is not None and abs(moved.shortest_samples - 480) <= 2  # an xrun: 30 ms stays
    assert reopened.shortest_samples == reopened.longest_samples == reopened.delay_samples  # only the new path


def test_audio_the_reference_does_not_explain_gives_no_delay() -> None:
    played = _talk(10.0, seed=7).astype(np.int16)
    someone_else = _talk(10.0, seed=8).astype(np.int16)  # another talker, the speaker's echo absent
    tracker = EchoDelayTracker()
    assert _track(tracker, someone_else, played) == []
    assert tracker.estimates > 50  # it did look, and found nothing


def test_nothing_is_estimated_while_nothing_plays() -> None:
    silence = np.zeros(5 * RATE_HZ, np.int16)
    tracker = EchoDelayTracker()
    assert _track(tracker, _talk(5.0, seed=9).astype(np.int16), silence) == []
    assert tracker.estimates == 0
