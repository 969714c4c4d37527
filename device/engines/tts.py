"""Text to speech with Piper, resampled to the device rate, with an estimate of when each word has been said.

Word timing. Piper 1.8 can report per-phoneme sample counts (`include_alignments=True`), but only for a voice
model with an extra duration output. en_US-joe-medium has none; Piper can patch it in memory, but that needs
the `onnx` package (`piper-tts[alignment]`), which Spine does not install (measured with it: alignments work
for this voice, loading takes 0.8 s instead of 0.4 s, and espeak-ng merges words such as "in the" into one
phoneme word, so phonemes would still need mapping back to the written words). So the word ends are an
estimate, per sentence:

1. find the speech span: drop leading and trailing 10 ms frames more than 40 dB below the loudest frame
   (Piper pads each sentence with a short silence, mostly at the end);
2. split the span over the words in proportion to their length in letters, plus one for the gap after each
   word (digits count three letters: "42" is said "forty-two").

Each word's end therefore includes the pause after it, which errs towards "not yet heard". Measured against
Piper's own alignments (132 words, 20 sentences): 76 ms late on average, median error 79 ms, 5 % of the
words more than 50 ms early, worst 294 ms (a word lasts ~300 ms).

Sentences. The text is split into sentences at words ending in ".", "!" or "?" (espeak-ng, which Piper uses,
splits at the same places, and an abbreviation such as "Dr." splits both), and each sentence is synthesised
on its own, so each `SpokenText` knows exactly which words it holds. Measured on x86: ~0.4 s to load, 30-110
ms per sentence of 1-3 s (about 0.05 of real time).

Threads. Piper's own loader gives ONNX Runtime its defaults: one intra-op worker per core, spin-waiting between
parallel regions. Spinning burns a core that the FSM thread needs while the story plays (hearing runs beside
synthesis), so the session is built here with the same workers and no spinning. Measured on this 2-core x86,
a 4.1 s sentence: 324 -> 289 ms wall and 645 -> 524 ms of CPU idle; with `stress-ng --cpu 2` beside it, 783 ->
707 ms wall and 782 -> 646 ms of CPU. The computation is the same, so the audio is the same bytes.

Stopping. A cancelled answer must stop synthesising at once: a sentence is one ONNX Runtime run of 0.1-1 s (2-3
times that on a busy machine), and a job still inside it half a second after its cancel is reported leaked (the
real-stream hour: 6 in an hour beside other work, all of them synthesis). `begin_job` returns the job's stop: it
sets ONNX Runtime's terminate flag on the run in progress (which then raises in the worker) and refuses the job's
later runs, from any thread (`_Stops`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from math import ceil
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from piper import PiperVoice, SynthesisConfig
from piper.config import PiperConfig

from device.engines import model_load_error, require_model_file
from device.engines.providers import CPU, ProviderSpec, move_session, spec_names
from device.engines.resample import resample_int16
from device.rates import SPINE_RATE_HZ

Audio = npt.NDArray[np.int16]

_SENTENCE_ENDS = (".", "!", "?")
_CLOSING_MARKS = "\"')]}\u2019\u201d"
_FRAME_SAMPLES = SPINE_RATE_HZ // 100
_SILENCE_BELOW_PEAK_DB = 40.0
_DIGIT_LETTERS = 3
_GAP_LETTERS = 1
WARM_UP_TEXT = "Ready."
"""Said once at load, to no one, so that the first answer after start is not the one to pay for a cold voice. Its
first sentence starts espeak-ng (its data and the voice's dictionary) in C with the GIL held, which the audio
callback needs every period: measured here with a 1 ms ticker thread, the longest stall of a first sentence was
17-23 ms in 2 runs of 4 and 4-7 ms in the others (3-5 ms for later sentences); and ONNX Runtime's first run takes
twice as long as later ones (181-209 ms against 87-100 ms for a 4 s sentence, both cores busy). Unwarmed, the
real-stream suite's first session reported an xrun 38-61 ms after its first `StartTts` in 3 runs of 3: hearing lost
the echo's delay just as the story began, and a "Stop." said 0.3 s into it went unheard each time (the path's
settling after an xrun: device/runtime/hearing.py). Costs ~60 ms of start-up, before the stream opens."""


@dataclass(frozen=True, eq=False)  # eq=False: the generated __eq__ cannot compare numpy arrays
class SpokenText:
    """Audio for some words, and the sample by which each word has been fully spoken."""

    audio: Audio
    """16 kHz mono int16."""
    words: tuple[str, ...]
    """The text's words as written (split at whitespace, punctuation kept)."""
    word_end_samples: tuple[int, ...]
    """For each word, the index into `audio` by which it has been said; non-decreasing, at most len(audio)."""

    @property
    def text(self) -> str:
        return " ".join(self.words)


class SynthesisStopped(Exception):
    """The job's synthesis was stopped (its turn was cancelled)."""


class _Stops:
    """The runs in progress per worker thread, and the threads whose job was stopped (see the module)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, ort.RunOptions] = {}
        self._stopped: set[int] = set()

    def begin(self, thread: int) -> None:
        with self._lock:
            self._stopped.discard(thread)

    def stop(self, thread: int) -> None:
        with self._lock:
            self._stopped.add(thread)
            options = self._running.get(thread)
            if options is not None:
                options.terminate = True  # ONNX Runtime ends the run at its next operator and raises

    def running(self) -> int:
        with self._lock:
            return len(self._running)

    def run(self, session: ort.InferenceSession, output_names: Any, feed: dict[str, Any]) -> Any:
        thread, options = threading.get_ident(), ort.RunOptions()
        with self._lock:
            if thread in self._stopped:
                raise SynthesisStopped("synthesis stopped: the turn was cancelled")
            self._running[thread] = options
        try:
            return session.run(output_names, feed, options)
        finally:
            with self._lock:
                self._running.pop(thread, None)


class _StoppableSession:
    """The voice's session as Piper sees it: its runs go through `_Stops`; everything else is the session's."""

    def __init__(self, session: ort.InferenceSession, stops: _Stops) -> None:
        self._session, self._stops = session, stops

    def run(self, output_names: Any, input_feed: dict[str, Any], run_options: Any = None) -> Any:
        return self._stops.run(self._session, output_names, input_feed)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def _load_voice(model_path: Path, config_path: Path, stops: _Stops) -> PiperVoice:
    """The voice as `PiperVoice.load` makes it on the CPU, but for its session's options (see the module) and its
    runs, which `stops` can end."""
    config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(model_path), sess_options=options, providers=[CPU])
    return PiperVoice(session=_StoppableSession(session, stops), config=config)


class PiperTts:
    """`synthesize(text)`: all of it at once; `synthesize_chunks(text)`: sentence by sentence."""

    sample_rate_hz = SPINE_RATE_HZ

    def __init__(
        self,
        model_path: Path,
        config_path: Path,
        deterministic: bool = False,
        providers: Sequence[ProviderSpec] = (CPU,),
    ) -> None:
        """`providers`: the ONNX Runtime execution providers (device/engines/providers.py). Piper loads the voice
        on the CPU (its `use_cuda` would mean CUDA alone), then the session moves to them: on a GPU the voice
        loads twice, ~0.4 s more at start.

        `deterministic`: turn off the voice's sampled noise (VITS draws it from an unseeded generator, so the
        same text gives slightly different audio and length each process; `onnxruntime.set_seed` does not
        reach it). With noise_scale = noise_w = 0 the audio is the same bytes every time - the virtual clock
        needs that for reproducible runs; the voice is a little flatter."""
        require_model_file(model_path, "TTS voice")
        require_model_file(config_path, "TTS voice config")
        self._stops = _Stops()
        try:
            self._voice = _load_voice(model_path, config_path, self._stops)
        except json.JSONDecodeError as err:
            raise model_load_error(config_path, "TTS voice config", err) from err
        except Exception as err:  # ONNX Runtime's load errors share no base class beyond Exception
            raise model_load_error(f"{model_path} with {config_path}", "TTS voice", err) from err
        if spec_names(providers) != (CPU,):
            move_session(self._voice.session, providers)
        self._voice_rate_hz: int = self._voice.config.sample_rate
        self._synthesis = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0) if deterministic else None
        self.synthesize(WARM_UP_TEXT)  # see WARM_UP_TEXT: the one cold stall, here and not in the first answer

    def session_providers(self) -> dict[str, tuple[str, ...]]:
        """The execution providers its ONNX Runtime session registered, best first."""
        return {"Piper voice": tuple(self._voice.session.get_providers())}

    def begin_job(self) -> Callable[[], None]:
        """Called on the worker thread as a synthesis job starts; returns the job's stop, callable from any thread:
        the sentence being synthesised ends at once (it raises on the worker) and no other of the job starts."""
        thread = threading.get_ident()
        self._stops.begin(thread)
        return lambda: self._stops.stop(thread)

    def synthesize(self, text: str) -> SpokenText:
        """The whole text: every sentence's audio concatenated, word ends offset accordingly."""
        audio: list[Audio] = []
        words: list[str] = []
        ends: list[int] = []
        offset = 0
        for sentence in self.synthesize_chunks(text):
            audio.append(sentence.audio)
            words.extend(sentence.words)
            ends.extend(offset + end for end in sentence.word_end_samples)
            offset += len(sentence.audio)
        joined = np.concatenate(audio) if audio else np.zeros(0, dtype=np.int16)
        return _spoken(joined, tuple(words), tuple(ends))

    def synthesize_chunks(self, text: str) -> Generator[SpokenText, None, None]:
        """One `SpokenText` per sentence, synthesised only when asked for: close the generator to stop early.

        A sentence with nothing to say (say "...") still yields its words, with no audio.
        """
        for words in split_sentences(text):
            chunks = [chunk.audio_int16_array for chunk in self._voice.synthesize(" ".join(words), self._synthesis)]
            voice_audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
            audio = resample_int16(voice_audio, self._voice_rate_hz, SPINE_RATE_HZ)
            yield _spoken(audio, words, estimate_word_ends(audio, words))


def split_sentences(text: str) -> list[tuple[str, ...]]:
    """The words of `text` grouped into sentences, each ending at a word ending in ".", "!" or "?"."""
    sentences: list[tuple[str, ...]] = []
    current: list[str] = []
    for word in text.split():
        current.append(word)
        if word.rstrip(_CLOSING_MARKS).endswith(_SENTENCE_ENDS):
            sentences.append(tuple(current))
            current = []
    if current:
        sentences.append(tuple(current))
    return sentences


def estimate_word_ends(audio: Audio, words: tuple[str, ...]) -> tuple[int, ...]:
    """Where each word ends in `audio` (one sentence): its speech span split by letter counts (see above)."""
    start, end = _speech_span(audio)
    weights = np.array([_letters(word) + _GAP_LETTERS for word in words], dtype=np.float64)
    if len(weights) == 0:
        return ()
    cumulative = np.cumsum(weights) / weights.sum()
    # ceil: a word's end is never placed before the estimate; the last word ends exactly at the span's end.
    return tuple(min(end, start + ceil((end - start) * float(fraction))) for fraction in cumulative)


def _speech_span(audio: Audio) -> tuple[int, int]:
    """[start, end) of the audio between leading and trailing near-silence; all of it if it is all quiet."""
    frames = len(audio) // _FRAME_SAMPLES
    if frames == 0:
        return 0, len(audio)
    framed = audio[: frames * _FRAME_SAMPLES].astype(np.float64).reshape(frames, _FRAME_SAMPLES)
    rms = np.sqrt((framed**2).mean(axis=1))
    peak = float(rms.max())
    if peak == 0.0:
        return 0, len(audio)
    loud = np.flatnonzero(rms >= peak * 10 ** (-_SILENCE_BELOW_PEAK_DB / 20))
    start = int(loud[0]) * _FRAME_SAMPLES
    # Past the last loud frame, the partial frame at the end of the audio is trailing silence too.
    end = len(audio) if loud[-1] == frames - 1 else (int(loud[-1]) + 1) * _FRAME_SAMPLES
    return start, end


def _letters(word: str) -> int:
    spoken = sum(1 for ch in word if ch.isalpha()) + _DIGIT_LETTERS * sum(1 for ch in word if ch.isdigit())
    return max(spoken, 1)


def _spoken(audio: Audio, words: tuple[str, ...], ends: tuple[int, ...]) -> SpokenText:
    audio.flags.writeable = False  # shared between the TTS worker and playback: nobody may change it
    return SpokenText(audio=audio, words=words, word_end_samples=ends)
