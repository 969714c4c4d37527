"""The engine adapters against the real model files (Piper's voice is the test speaker for the other three)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipy.signal import resample_poly

from device.core.memory import SpokenChunk, heard_text
from device.engines.asr import SHORT_MAX_SAMPLES, WhisperAsr
from device.engines.resample import resample_int16
from device.engines.tts import PiperTts, SpokenText, split_sentences
from device.engines.vad import SileroVad
from device.engines.wakeword import WakeWordDetector
from device.errors import UserError

Audio = npt.NDArray[np.int16]
RATE_HZ = 16000


def words_of(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def word_errors(expected: list[str], heard: list[str]) -> int:
    """Word-level edit distance (substitutions, insertions, deletions)."""
    row = list(range(len(heard) + 1))
    for i, want in enumerate(expected, start=1):
        previous, row[0] = row[:], i
        for j, got in enumerate(heard, start=1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (want != got))
    return row[-1]


def frames(audio: Audio, size: int) -> Iterator[Audio]:
    padded = np.concatenate([audio, np.zeros(-len(audio) % size, dtype=np.int16)])
    yield from padded.reshape(-1, size)


def with_silence(audio: Audio, seconds: float = 1.0) -> Audio:
    silence = np.zeros(round(seconds * RATE_HZ), dtype=np.int16)
    return np.concatenate([silence, audio, silence])


# --- fixtures: each model loads once per module ---


@pytest.fixture(scope="module")
def tts(models_dir: Path) -> PiperTts:
    return PiperTts(models_dir / "tts/en_US-joe-medium.onnx", models_dir / "tts/en_US-joe-medium.onnx.json")


@pytest.fixture(scope="module")
def asr(models_dir: Path) -> WhisperAsr:
    return WhisperAsr(models_dir / "asr/ggml-tiny.en.bin", threads=2)


@pytest.fixture(scope="module")
def vad(models_dir: Path) -> SileroVad:
    return SileroVad(models_dir / "vad/silero_vad.onnx")


@pytest.fixture(scope="module")
def wake(models_dir: Path) -> WakeWordDetector:
    return WakeWordDetector(
        models_dir / "wakeword/melspectrogram.onnx",
        models_dir / "wakeword/embedding_model.onnx",
        models_dir / "wakeword/hey_jarvis_v0.1.onnx",
    )


@pytest.fixture(scope="module")
def request_speech(tts: PiperTts) -> SpokenText:
    return tts.synthesize("Hey Jarvis. What time is it?")


# --- resampling ---


def test_resampling_keeps_a_tones_frequency_and_the_duration() -> None:
    from_hz, seconds = 22050, 1.0
    t = np.arange(round(from_hz * seconds)) / from_hz
    tone = (10000 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.int16)

    out = resample_int16(tone, from_hz, RATE_HZ)

    assert out.dtype == np.int16
    assert len(out) == RATE_HZ
    spectrum = np.abs(np.fft.rfft(out.astype(np.float64)))
    peak_hz = np.argmax(spectrum) * RATE_HZ / len(out)
    assert peak_hz == pytest.approx(1000.0, abs=1.0)


def test_resampling_clips_the_filters_overshoot_instead_of_wrapping_around() -> None:
    square = np.tile(np.array([32767] * 11 + [-32768] * 11, dtype=np.int16), 200)
    unclipped = resample_poly(square.astype(np.float64), 320, 441)

    out = resample_int16(square, 22050, RATE_HZ)

    assert np.any(unclipped > 32767) and np.any(unclipped < -32768)  # the filter rings past full scale
    assert np.all(out[unclipped > 32767] == 32767)
    assert np.all(out[unclipped < -32768] == -32768)


def test_resampling_rejects_float_audio() -> None:
    with pytest.raises(ValueError):
        resample_int16(np.zeros(100, dtype=np.float32), 22050, RATE_HZ)


# --- text to speech, and back ---


def test_sentences_split_at_terminal_punctuation_keeping_the_words_as_written() -> None:
    assert split_sentences('Hey Jarvis. "What time is it?" Now!  later') == [
        ("Hey", "Jarvis."),
        ('"What', "time", "is", 'it?"'),
        ("Now!",),
        ("later",),
    ]


@pytest.mark.slow
def test_tts_speech_round_trips_through_asr(request_speech: SpokenText, asr: WhisperAsr) -> None:
    heard = words_of(asr.transcribe(request_speech.audio))
    # Piper's synthesis is random (VITS noise): in 2 runs of 60, tiny.en heard this "Hey" as "A".
    assert word_errors(["hey", "jarvis", "what", "time", "is", "it"], heard) <= 1, heard
    assert "jarvis" in heard


@pytest.mark.slow
def test_word_ends_are_one_per_word_in_order_and_within_the_audio(request_speech: SpokenText) -> None:
    speech = request_speech
    assert speech.audio.dtype == np.int16
    assert speech.words == ("Hey", "Jarvis.", "What", "time", "is", "it?")
    assert len(speech.word_end_samples) == len(speech.words)
    assert list(speech.word_end_samples) == sorted(speech.word_end_samples)
    assert speech.word_end_samples[0] > 0 and speech.word_end_samples[-1] <= len(speech.audio)
    # What the core makes of it (the one place heard text is computed): nothing at 0, every word at the end.
    chunk = SpokenChunk(0, speech.text, len(speech.audio), speech.word_end_samples)
    assert heard_text((chunk,), 0) == ""
    assert heard_text((chunk,), len(speech.audio)) == " ".join(speech.words)


@pytest.mark.slow
def test_word_ends_fall_where_the_words_are_heard(tts: PiperTts, asr: WhisperAsr) -> None:
    speech = tts.synthesize("Turn off the lights in the kitchen please.")
    # The audio up to the estimated end of "lights" holds "lights" and not "kitchen" (2 words later).
    cut = speech.word_end_samples[speech.words.index("lights")]
    heard = words_of(asr.transcribe(speech.audio[:cut]))
    assert "lights" in heard and "kitchen" not in heard, heard


@pytest.mark.slow
def test_chunks_are_sentences_and_can_be_abandoned(tts: PiperTts) -> None:
    text = "Hey Jarvis. What time is it? It is late."
    whole = tts.synthesize(text)
    chunks = tts.synthesize_chunks(text)
    first = next(chunks)
    chunks.close()  # the caller stops early: no more synthesis

    assert first.words == ("Hey", "Jarvis.")
    assert whole.words[:2] == first.words
    assert len(first.audio) < len(whole.audio)
    assert tts.sample_rate_hz == RATE_HZ


@pytest.mark.slow
def test_empty_text_says_nothing(tts: PiperTts) -> None:
    speech = tts.synthesize("   ")
    assert (len(speech.audio), speech.words, speech.word_end_samples) == (0, (), ())


# --- wake word ---


def max_wake_score(wake: WakeWordDetector, audio: Audio) -> float:
    return max(wake.score(frame) for frame in frames(audio, WakeWordDetector.FRAME_SAMPLES))


@pytest.mark.slow
def test_wake_word_fires_on_the_wake_phrase_only(tts: PiperTts, wake: WakeWordDetector) -> None:
    wake.reset()
    assert max_wake_score(wake, with_silence(tts.synthesize("Hey Jarvis.").audio)) > 0.5
    wake.reset()
    assert max_wake_score(wake, with_silence(tts.synthesize("What time is it?").audio)) < 0.2


@pytest.mark.slow
def test_wake_word_reset_forgets_a_detection_and_repeats_exactly(tts: PiperTts, wake: WakeWordDetector) -> None:
    audio = with_silence(tts.synthesize("Hey Jarvis.").audio)
    wake.reset()
    first = [wake.score(frame) for frame in frames(audio, WakeWordDetector.FRAME_SAMPLES)]
    wake.reset()
    assert max_wake_score(wake, np.zeros(RATE_HZ, dtype=np.int16)) < 0.2
    wake.reset()
    again = [wake.score(frame) for frame in frames(audio, WakeWordDetector.FRAME_SAMPLES)]
    assert again == first


@pytest.mark.slow
def test_wake_word_rejects_a_wrong_frame_size(wake: WakeWordDetector) -> None:
    with pytest.raises(ValueError):
        wake.score(np.zeros(WakeWordDetector.FRAME_SAMPLES - 1, dtype=np.int16))


# --- voice activity ---


@pytest.mark.slow
def test_vad_hears_speech_and_not_silence(request_speech: SpokenText, vad: SileroVad) -> None:
    vad.reset()
    speech = [vad.probability(chunk) for chunk in frames(request_speech.audio, SileroVad.CHUNK_SAMPLES)]
    vad.reset()
    silence = [vad.probability(chunk) for chunk in frames(np.zeros(RATE_HZ, dtype=np.int16), vad.CHUNK_SAMPLES)]
    assert max(speech) > 0.5
    assert max(silence) < 0.2


@pytest.mark.slow
def test_vad_rejects_a_wrong_chunk_size(vad: SileroVad) -> None:
    with pytest.raises(ValueError):
        vad.probability(np.zeros(480, dtype=np.int16))


# --- speech to text ---


@pytest.mark.slow
def test_asr_returns_nothing_for_too_little_audio_or_silence(asr: WhisperAsr) -> None:
    assert asr.transcribe(np.zeros(round(0.05 * RATE_HZ), dtype=np.int16)) == ""
    # Whisper says "you" for digital silence; it is not decoded at all.
    assert asr.transcribe(np.zeros(RATE_HZ, dtype=np.int16)) == ""


@pytest.mark.slow
def test_asr_gives_the_same_text_for_the_same_audio(tts: PiperTts, asr: WhisperAsr) -> None:
    audio = tts.synthesize("Remind me to call my mother at six o'clock.").audio
    first = asr.transcribe(audio)
    assert asr.transcribe(audio) == first
    asr.transcribe(tts.synthesize("Stop.").audio)  # whatever came before does not matter
    assert asr.transcribe(audio) == first


@pytest.mark.slow
def test_asr_transcribes_audio_longer_than_the_short_window(tts: PiperTts, asr: WhisperAsr) -> None:
    text = (
        "Set a timer for ten minutes. What is the weather like in Paris tomorrow? "
        "Turn off the lights in the kitchen please. Remind me to call my mother at six o'clock."
    )
    audio = with_silence(tts.synthesize(text).audio, seconds=0.5)
    assert len(audio) > SHORT_MAX_SAMPLES
    heard = words_of(asr.transcribe(audio))
    # Beyond the short window the words were lost or looped: all four requests must be there, once.
    for word in ("timer", "weather", "kitchen", "mother"):
        assert heard.count(word) == 1, heard


# --- load errors ---


def test_missing_model_files_name_the_file_and_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nope.onnx"
    loaders: list[Callable[[], object]] = [
        lambda: SileroVad(missing),
        lambda: WakeWordDetector(missing, missing, missing),
        lambda: WhisperAsr(tmp_path / "nope.bin"),
        lambda: PiperTts(missing, tmp_path / "nope.onnx.json"),
    ]
    for load in loaders:
        with pytest.raises(UserError, match="spine models fetch") as caught:
            load()
        assert str(tmp_path) in str(caught.value)


def test_corrupt_model_files_name_the_file_and_the_fix(tmp_path: Path) -> None:
    garbage = tmp_path / "corrupt.bin"
    garbage.write_bytes(bytes(range(256)) * 64)
    config = tmp_path / "voice.onnx.json"
    config.write_text("{not json")
    # whisper.cpp would hand back a context that crashes the process on first use.
    loaders: list[Callable[[], object]] = [
        lambda: SileroVad(garbage),
        lambda: WakeWordDetector(garbage, garbage, garbage),
        lambda: WhisperAsr(garbage),
        lambda: PiperTts(garbage, config),
    ]
    for load in loaders:
        with pytest.raises(UserError, match="spine models fetch") as caught:
            load()
        assert str(tmp_path) in str(caught.value)


@pytest.mark.slow
def test_the_voice_starts_espeak_while_loading_not_in_the_first_answer(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Starting espeak-ng holds the GIL for up to ~20 ms (device/engines/tts.py, WARM_UP_TEXT): the audio callback
    # must not wait on it in the first answer after start, so loading the voice does it.
    import piper.voice as piper_voice
    from piper.phonemize_espeak import ESPEAK_DATA_DIR, EspeakPhonemizer

    starts: list[str] = []

    class CountedPhonemizer(EspeakPhonemizer):
        def __init__(self, espeak_data_dir: str | Path = ESPEAK_DATA_DIR) -> None:
            starts.append(str(espeak_data_dir))
            super().__init__(espeak_data_dir)

    monkeypatch.setattr(piper_voice, "_ESPEAK_PHONEMIZER", None)  # as in a fresh process
    monkeypatch.setattr(piper_voice, "EspeakPhonemizer", CountedPhonemizer)
    tts = PiperTts(models_dir / "tts/en_US-joe-medium.onnx", models_dir / "tts/en_US-joe-medium.onnx.json")
    assert len(starts) == 1
    assert tts.synthesize("Once upon a time.").words == ("Once", "upon", "a", "time.")
    assert len(starts) == 1  # the first answer found it started


@pytest.mark.slow
def test_a_vad_state_gone_nan_is_read_as_silence_once_and_the_stream_starts_again(
    request_speech: SpokenText, vad: SileroVad
) -> None:
    vad.reset()
    before = vad.non_finite_outputs
    vad._state[:] = np.nan  # garbage in the recurrent state: the real model answers NaN from then on
    assert vad.probability(np.zeros(vad.CHUNK_SAMPLES, dtype=np.int16)) == 0.0
    assert vad.non_finite_outputs == before + 1
    speech = [vad.probability(chunk) for chunk in frames(request_speech.audio, SileroVad.CHUNK_SAMPLES)]
    assert max(speech) > 0.5 and vad.non_finite_outputs == before + 1  # not deaf: it hears the next words


@pytest.mark.slow
def test_a_wake_window_gone_nan_is_forgotten_and_the_wake_word_is_heard_after_it(
    tts: PiperTts, wake: WakeWordDetector
) -> None:
    wake.reset()
    before = wake.non_finite_outputs
    wake._model.preprocessor.feature_buffer[:] = np.nan
    # openWakeWord scores 0.0 for its first 5 frames after a reset, NaN from the 6th while NaN fills the window.
    scores = [wake.score(f) for f in frames(np.zeros(WakeWordDetector.FRAME_SAMPLES * 12, dtype=np.int16), 1280)]
    assert all(0.0 <= score < 0.2 for score in scores)  # never NaN: NaN compares false, and would hide a detection
    assert wake.non_finite_outputs == before + 1  # reset at the first NaN: the window holds noise again
    assert max_wake_score(wake, with_silence(tts.synthesize("Hey Jarvis.").audio)) > 0.5


LONG = (
    " ".join(["Once upon a time a clockmaker lived at the edge of a great forest, and every day he walked"] * 4) + "."
)


@pytest.mark.slow
def test_a_stopped_synthesis_ends_mid_sentence_and_the_threads_next_job_speaks(tts: PiperTts) -> None:
    began = time.perf_counter()
    whole = tts.synthesize(LONG)
    whole_s = time.perf_counter() - began
    outcomes: list[BaseException | SpokenText] = []
    stops: list[Callable[[], None]] = []
    running, next_job = threading.Event(), threading.Event()

    def worker() -> None:  # one worker thread, two jobs: the first stopped, the second not
        for text in (LONG, "Hello."):
            stops.append(tts.begin_job())
            running.set()
            try:
                outcomes.append(tts.synthesize(text))
            except Exception as error:  # whichever ONNX Runtime raises: the test reads that it ended
                outcomes.append(error)
            next_job.wait(10)

    thread = threading.Thread(target=worker)
    thread.start()
    assert running.wait(5)
    threading.Event().wait(0.02)  # into the run (a stop before it refuses it, also an end)
    stopped_at = time.perf_counter()
    stops[0]()
    wait = threading.Event()
    while not outcomes and time.perf_counter() - stopped_at < whole_s + 5:
        wait.wait(0.01)  # a real ONNX Runtime run on a real thread: this waits on it, it does not pace the test
    assert outcomes and isinstance(outcomes[0], Exception)
    assert time.perf_counter() - stopped_at < whole_s / 2  # it did not run to the end of the sentence
    next_job.set()
    thread.join(timeout=10)
    assert len(outcomes) == 2 and isinstance(outcomes[1], SpokenText) and len(outcomes[1].audio) > 0
    assert tts._stops.running() == 0 and len(whole.audio) > 0
