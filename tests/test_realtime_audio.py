"""Audio on the realtime call's tracks, without a network: the paced track's bursts (what each frame carries, the
drain, the tail, idling, clearing), the rate changes, the decoded-frame downmix, the truncation point, and the
test peer's tone voice (its words where it says they are)."""

from __future__ import annotations

import asyncio
import fractions
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
import soxr
from aiortc.mediastreams import MediaStreamError

from device.engines.tts import PiperTts
from device.reply.realtime_audio import (
    FRAME_SAMPLES,
    RESAMPLE_QUALITY,
    FramePieces,
    PacedTrack,
    ResampleStream,
    mono_48k,
)
from device.reply.realtime_client import truncate_point_ms
from device.reply.realtime_config import RTC_RATE_HZ
from device.testing.realtime_peer_voice import PiperVoice, ToneVoice


def stepping_clock(step_s: float = 0.02) -> Callable[[], float]:
    """A clock that has always just reached the next frame's time: the track never needs to wait."""
    now = [0.0]

    def clock() -> float:
        now[0] += step_s
        return now[0]

    return clock


def run(test: Callable[[], object]) -> None:
    asyncio.run(test())  # type: ignore[arg-type]  # each test passes a coroutine function


def tone(hz: float, seconds: float, rate_hz: int) -> np.ndarray[tuple[int], np.dtype[np.int16]]:
    t = np.arange(int(seconds * rate_hz)) / rate_hz
    return (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16)


def dominant_hz(audio: np.ndarray[tuple[int], np.dtype[np.int16]], rate_hz: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64)))
    return float(np.fft.rfftfreq(len(audio), 1 / rate_hz)[int(np.argmax(spectrum))])


def test_a_burst_sends_what_was_fed_then_its_tail_then_idles() -> None:
    async def test() -> None:
        seen: list[FramePieces] = []
        drained_after: list[int] = []
        track = PacedTrack(tail_frames=5, on_frame=seen.append, clock=stepping_clock())
        audio = np.arange(FRAME_SAMPLES * 5 // 2, dtype=np.int16)
        track.feed(audio, "answer")
        track.start()
        track.drain(lambda: drained_after.append(len(seen)))
        frames = [await track.recv() for _ in range(8)]
        assert track.idle
        assert seen[:3] == [[("answer", 960)], [("answer", 960)], [("answer", 480), (None, 480)]]
        assert seen[3:] == [[(None, 960)]] * 5  # the tail pushes the last audio out of the receiver's buffer
        assert drained_after == [3]  # told once the audio went out, before the tail
        sent = np.concatenate([frame.to_ndarray().reshape(-1) for frame in frames])
        assert np.array_equal(sent[: len(audio)], audio)
        assert not sent[len(audio) :].any()
        assert [frame.pts for frame in frames] == [index * FRAME_SAMPLES for index in range(8)]
        assert {(frame.sample_rate, frame.layout.name, frame.format.name) for frame in frames} == {
            (RTC_RATE_HZ, "mono", "s16")
        }

    run(test)


def test_an_idle_track_sends_nothing_until_started() -> None:
    async def test() -> None:
        track = PacedTrack(clock=stepping_clock())
        track.feed(np.ones(FRAME_SAMPLES, np.int16))
        waiting = asyncio.ensure_future(track.recv())
        for _ in range(20):
            await asyncio.sleep(0)  # let it run as far as it can
        assert not waiting.done()
        track.start()
        frame = await asyncio.wait_for(waiting, 5.0)
        assert frame.to_ndarray().reshape(-1).tolist() == [1] * FRAME_SAMPLES

    run(test)


def test_a_running_burst_pads_with_silence_and_counts_the_underrun() -> None:
    async def test() -> None:
        track = PacedTrack(clock=stepping_clock())
        track.start()
        frame = await track.recv()
        assert not frame.to_ndarray().any()
        assert track.underrun_frames == 1
        assert not track.idle

    run(test)


def test_clear_drops_what_was_not_sent_and_ends_the_burst() -> None:
    async def test() -> None:
        seen: list[FramePieces] = []
        track = PacedTrack(tail_frames=2, on_frame=seen.append, clock=stepping_clock())
        track.feed(np.ones(FRAME_SAMPLES * 3, np.int16), "a")
        track.start()
        await track.recv()
        assert track.clear() == [("a", FRAME_SAMPLES * 2)]
        for _ in range(2):
            await track.recv()
        assert track.idle
        assert seen == [[("a", 960)], [(None, 960)], [(None, 960)]]
        drained: list[bool] = []
        track.drain(lambda: drained.append(True))  # idle: told at once
        assert drained == [True]

    run(test)


def test_a_stopped_track_ends_a_waiting_recv() -> None:
    async def test() -> None:
        track = PacedTrack(clock=stepping_clock())
        waiting = asyncio.ensure_future(track.recv())
        await asyncio.sleep(0)
        track.stop()
        with pytest.raises(MediaStreamError):
            await asyncio.wait_for(waiting, 5.0)

    run(test)


def test_the_resample_stream_has_no_seams_between_chunks() -> None:
    source = tone(440, 1.0, 16_000)
    up = ResampleStream(16_000, RTC_RATE_HZ)
    chunked = np.concatenate([up.feed(source[at : at + 160]) for at in range(0, len(source), 160)] + [up.finish()])
    whole = soxr.resample(source, 16_000, RTC_RATE_HZ, quality=RESAMPLE_QUALITY).astype(np.int16)
    assert abs(len(chunked) - len(whole)) <= 2
    shared = min(len(chunked), len(whole))
    assert np.abs(chunked[:shared].astype(int) - whole[:shared]).max() <= 2
    down = ResampleStream(RTC_RATE_HZ, 16_000)
    back = np.concatenate([down.feed(chunked[at : at + 960]) for at in range(0, len(chunked), 960)] + [down.finish()])
    assert abs(len(back) - len(source)) <= 2
    assert dominant_hz(back, 16_000) == pytest.approx(440, abs=2)


def test_finish_starts_a_fresh_stretch() -> None:
    up = ResampleStream(16_000, RTC_RATE_HZ)
    up.feed(tone(440, 0.1, 16_000))
    up.finish()
    assert len(up.feed(np.zeros(160, np.int16))) <= 480  # a new stream: no leftover of the last stretch


def audio_frame(
    samples: np.ndarray[tuple[int, int], np.dtype[np.int16]], layout: str, fmt: str, rate_hz: int
) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(samples, format=fmt, layout=layout)
    frame.sample_rate = rate_hz
    frame.time_base = fractions.Fraction(1, rate_hz)
    return frame


def test_a_decoded_stereo_frame_becomes_48k_mono() -> None:
    left, right = np.full(960, 1000, np.int16), np.full(960, 3000, np.int16)
    packed = np.stack([left, right], axis=1).reshape(1, -1)  # s16 stereo is interleaved
    assert mono_48k(audio_frame(packed, "stereo", "s16", RTC_RATE_HZ)).tolist() == [2000] * 960
    planar = np.stack([left, right])
    assert mono_48k(audio_frame(planar, "stereo", "s16p", RTC_RATE_HZ)).tolist() == [2000] * 960
    other_rate = mono_48k(audio_frame(np.full((1, 441), 500, np.int16), "mono", "s16", 44_100))
    assert abs(len(other_rate) - 480) <= 2


def test_a_frame_in_another_sample_format_is_refused() -> None:
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 960), np.float32), format="flt", layout="mono")
    frame.sample_rate = RTC_RATE_HZ
    with pytest.raises(ValueError, match="expected s16"):
        mono_48k(frame)


@pytest.mark.parametrize(
    ("played_ms", "received_ms", "point"),
    [
        (0, 5000, None),  # nothing played: nothing to truncate
        (-20, 5000, None),
        (0.4, 5000, None),  # less than a millisecond is nothing
        (300.7, 5000, 300),
        (900, 400, 400),  # never past the audio received: the server would refuse
        (100, 0, None),
        (2480, 2480, 2480),
    ],
)
def test_the_truncation_point_is_what_was_played_within_what_was_received(
    played_ms: float, received_ms: float, point: int | None
) -> None:
    assert truncate_point_ms(played_ms, received_ms) == point


def test_the_tone_voice_puts_each_word_where_it_says() -> None:
    voice = ToneVoice()
    spoken = voice.render("One two three. Four")
    assert spoken.words == ("One", "two", "three.", "Four")
    assert "".join(spoken.deltas()) == spoken.text == "One two three. Four"
    per_ms = RTC_RATE_HZ // 1000
    for start, end in zip(spoken.word_start_ms, spoken.word_end_ms, strict=True):
        word = spoken.audio[round(start * per_ms) : round(end * per_ms)]
        assert np.abs(word).max() > 0.2 * 32767  # the word sounds
    for end, next_start in zip(spoken.word_end_ms, spoken.word_start_ms[1:], strict=False):
        assert next_start - end >= voice.gap_ms - 1
        assert not spoken.audio[round(end * per_ms) : round(next_start * per_ms)].any()  # the gap is silent
    assert spoken.word_start_ms[3] - spoken.word_end_ms[2] == pytest.approx(voice.sentence_gap_ms, abs=0.1)
    assert spoken.word_end_ms[2] - spoken.word_start_ms[2] == pytest.approx(5 * voice.ms_per_letter, abs=0.1)
    assert spoken.duration_ms >= spoken.word_end_ms[-1]
    assert np.array_equal(voice.render("One two three. Four").audio, spoken.audio)  # deterministic


def test_words_within_a_cut_are_the_ones_wholly_before_it() -> None:
    spoken = ToneVoice().render("alpha beta gamma")
    assert spoken.words_within(0) == ()
    assert spoken.words_within(spoken.word_end_ms[0] - 1) == ()
    assert spoken.words_within(spoken.word_end_ms[0]) == ("alpha",)
    assert spoken.words_within(spoken.word_start_ms[2] + 1) == ("alpha", "beta")
    assert spoken.words_within(spoken.duration_ms) == ("alpha", "beta", "gamma")


@pytest.mark.slow
def test_the_piper_voice_speaks_at_48k_with_its_word_ends(models_dir: Path) -> None:
    model = models_dir / "tts" / "en_US-joe-medium.onnx"
    voice = PiperVoice(PiperTts(model, model.with_name(model.name + ".json"), deterministic=True))
    spoken = voice.render("Hello there. How are you?")
    assert spoken.words == ("Hello", "there.", "How", "are", "you?")
    assert spoken.audio.dtype == np.int16 and 1000 < spoken.duration_ms < 4000
    assert spoken.word_start_ms[0] == 0.0 and spoken.word_start_ms[1:] == spoken.word_end_ms[:-1]
    assert list(spoken.word_end_ms) == sorted(spoken.word_end_ms) and spoken.word_end_ms[-1] <= spoken.duration_ms
    assert spoken.words_within(spoken.word_end_ms[1]) == ("Hello", "there.")
