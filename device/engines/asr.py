"""Speech to text with whisper.cpp (through pywhispercpp), tuned for short voice-assistant utterances.

Measured on this model (tiny.en, 2 threads, x86, 20 utterances of espeak-ng and of Piper speech, 1-3 s each):

- Whisper's encoder always covers a 30 s window (1500 frames, 50 per second). Encoding only the first 512
  frames (`audio_ctx`, a 10.24 s window) cuts the time per utterance from ~650 ms to ~220 ms with the same
  word error rate (espeak 7-10 %, Piper 4-5 %, against 10-11 % and 3 % with the full window; the
  differences are one or two words out of 126).
- Sizing `audio_ctx` to each utterance instead (its length + a margin) is faster still, but it is unstable:
  depending on the margin some utterances loop ("Stop. Stop. Stop. ..." for 1.5 s), and whisper.cpp then
  gives different text for the same audio depending on the `audio_ctx` of the *previous* call (its buffers
  carry state across calls when the context size changes). So one model keeps one fixed `audio_ctx`.
- Longer audio does not fit the short window (the text after 10 s is lost or looped), so it goes to a
  full-window model that is loaded for that call only (~80 ms to load; it would hold ~150 MB if kept).

Decoding is greedy at temperature 0 with the temperature fallback off: the fallback samples at random, which
would make the same audio give different text. Non-speech tokens are suppressed, and the bracketed tags
whisper still emits for silence or noise ("[BLANK_AUDIO]", "(music)") are removed. Digital silence is not
decoded at all: whisper says "you" for it (measured for 0.2-3 s of zeros).

Command pass. A stop phrase said over the assistant's reply reaches whisper with echo residue and with its
start eaten by the canceller's double-talk suppression ("Stop." read "Top." or "Tom.", "Never mind." "never
hide."). Audio of at most `COMMAND_MAX_SAMPLES` whose free transcript is not a command is decoded a second time
with `COMMAND_CONTEXT` and the commands as whisper's prompt, and that reading wins only if it is a command and
nothing else and whisper is at least as confident of it (geometric mean of the token probabilities) as of the
free reading. Measured with
scripts/make_command_corpus.py (30 stop phrases and 36 short requests by six espeak-ng voices over a Piper or
espeak-ng reply, echo -6..+6 dB relative to the user, AEC3 cold and warm; tiny.en, 1 thread) and today's stop
matcher: stop phrases heard as a stop 8/30 -> 20/30, requests never a stop 36/36 -> 36/36 (without the
confidence rule one request, "What's the game?", became "Stop."); on a held-out corpus (seed 10) 4/30 -> 22/30
and 36/36 -> 35/36 (one request was read "Be quiet."); CPU time per short utterance 288 -> 600 ms
median, 393 -> 857 ms at most. The rest is lost before whisper, in cold or loud-echo cases: the raw microphone
(no canceller) gives 1/30, so the canceller is needed, and what it leaves of those words is no longer a stop.
"""

from __future__ import annotations

import os

# whisper.cpp's OpenMP threads spin-wait between parallel regions by default, burning whole cores while the
# rest of the daemon (audio, VAD, TTS) needs them. libgomp reads this once, when pywhispercpp loads it, so
# it is set before the imports below (ruff allows environment changes above imports).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import _pywhispercpp  # type: ignore[import-not-found]  # the compiled binding ships no stubs
import numpy as np
import numpy.typing as npt
from pywhispercpp.model import Model

from device.engines import model_load_error, require_model_file
from device.rates import SPINE_RATE_HZ

Audio = npt.NDArray[np.int16]

SHORT_AUDIO_CTX = 512
"""Encoder frames (50 per second) for short utterances: a 10.24 s window."""
SHORT_MAX_SAMPLES = 9 * SPINE_RATE_HZ
"""Longest audio sent to the short window; leaves 1.24 s of it after the speech (8.9 s measured clean)."""
MIN_SAMPLES = SPINE_RATE_HZ // 10
"""whisper.cpp refuses input shorter than 100 ms."""
SILENCE_DBFS = -55.0
"""Audio whose loudest 10 ms is quieter than this holds no words (a mic's noise floor is around -60 dBFS)."""
COMMAND_MAX_SAMPLES = round(2.5 * SPINE_RATE_HZ)
"""Longest audio that gets the command pass: "Hey Jarvis, stop." (~1.5 s) plus the daemon's 0.15 s preroll and
0.3 s early-transcription pause is ~2 s; a real request is mostly longer and never pays the second pass."""
COMMANDS = ("Stop.", "Cancel.", "Never mind.", "Be quiet.", "Hey Jarvis, stop.")
"""The short commands the command pass listens for, written as whisper should write them."""
COMMAND_CONTEXT = "The user interrupts the assistant:"
"""Said before the commands in the command pass's prompt. Measured: framing them as an interruption hears more of
them (20 of 30 against 14 with the bare list; 19-21 with three other framings), and no request more as one."""
COMMAND_MAX_TOKENS = 12
"""Tokens the command pass may write: a command is 2-7; more is a loop the prompt provoked ("Stop. Stop. ...")."""

_GGML_LOG_LEVEL_ERROR = 4
_FRAME_SAMPLES = SPINE_RATE_HZ // 100
_INT16_SCALE = 32768.0
# Whisper's non-speech annotations: [BLANK_AUDIO], (music), (upbeat music), *laughs*, and music notes.
_NON_SPEECH = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|[♪♫]")
_SPACES = re.compile(r"\s+")
_LETTER_LOOP = re.compile(r"\b(\w)(?:-\1){3,}\b-?", re.IGNORECASE)
"""A letter stuttered back to back at least four times ("J-j-j-j-j-..."): greedy decoding stuck in a loop, not
speech. Seen on a loaded real stream: "Hey Jarvis. What time is it?" over the echo came back as "J-j-j-" repeated
to the token bound, and was answered. A stutter people write ("I-I think") is shorter."""
_WAKE_WORDS = frozenset({"hey", "jarvis"})
_WORD = re.compile(r"[a-z0-9']+")
_SENTENCE = re.compile(r"[^.!?]+[.!?]*")


class WhisperAsr:
    """`transcribe(audio)`: the text of one utterance of 16 kHz int16 audio ("" if there is none)."""

    def __init__(self, model_path: Path, threads: int = 2, commands: tuple[str, ...] = COMMANDS) -> None:
        self._path = require_model_file(model_path, "ASR")
        self._threads = threads
        self._short = self._load(SHORT_AUDIO_CTX)
        self._commands = frozenset(_command_words(command) for command in commands)
        self._command_prompt = " ".join((COMMAND_CONTEXT, *commands))

    def transcribe(self, audio: Audio) -> str:
        """The words in `audio`, stripped; "" for audio under 0.1 s or with only silence/noise tags.

        Deterministic: the same audio gives the same text, whatever was transcribed before.
        """
        if audio.dtype != np.int16 or audio.ndim != 1:
            raise ValueError(f"expected 1-D int16 audio, got {audio.ndim}-D {audio.dtype}")
        if len(audio) < MIN_SAMPLES or _loudest_frame_dbfs(audio) < SILENCE_DBFS:
            return ""
        samples = audio.astype(np.float32) / _INT16_SCALE
        if len(audio) <= SHORT_MAX_SAMPLES:
            text, confidence = _decode(self._short, samples, "", 0)
            # No words at all (a chime, a breath): the command pass is not asked to find one. Primed with the
            # commands, whisper writes "Stop." for the wake chime at 0 dB coupling (tests/test_earcons.py).
            heard_words = any(character.isalnum() for character in text)
            if not self._commands or not heard_words or len(audio) > COMMAND_MAX_SAMPLES or self.is_command(text):
                return text
            # A second pass told to expect a command. Echo residue and the canceller's double-talk suppression
            # take the start of a word ("Stop." came out "Top." or "Tom.", "Cancel." "cancel" at 0.16), and with
            # the commands as context whisper often hears the command again. It replaces the free transcript only
            # when it says nothing but a command and whisper is at least as sure of it as of the free reading:
            # the prompt also pulls real requests towards a command ("What's the game?" became "Stop." at 0.18,
            # against 0.29 for the free reading), and then the free reading was the surer one.
            command, command_confidence = _decode(self._short, samples, self._command_prompt, COMMAND_MAX_TOKENS)
            command = _collapse_repeats(command)
            return command if self.is_command(command) and command_confidence >= confidence else text
        # Rare (a voice command is a few seconds): pay the load instead of keeping a second model resident.
        return _decode(self._load(0), samples, "", 0)[0]

    def is_command(self, text: str) -> bool:
        """Whether `text` says one of the commands and nothing else (case, punctuation and repeats aside)."""
        return _command_words(text) in self._commands

    def _load(self, audio_ctx: int) -> Model:
        with _whisper_logs() as errors:
            model = Model(
                str(self._path),
                n_threads=self._threads,
                audio_ctx=audio_ctx,
                language="en",
                print_progress=False,
                print_realtime=False,
                temperature=0.0,
                temperature_inc=0.0,
                suppress_nst=True,
            )
        # A failed load still returns a context object (a null one that crashes on first use); the only
        # sign of failure is whisper.cpp's error log.
        if errors:
            raise model_load_error(self._path, "ASR", " ".join(errors))
        return model


def _decode(model: Model, samples: npt.NDArray[np.float32], prompt: str, max_tokens: int) -> tuple[str, float]:
    """The text of `samples`, and whisper's confidence in it: the mean over segments of the geometric mean of
    the token probabilities (0.0 for no text)."""
    # Every call sets the prompt and the token bound: pywhispercpp keeps the parameters of the previous call.
    segments = model.transcribe(samples, initial_prompt=prompt, max_tokens=max_tokens, extract_probability=True)
    text = " ".join(segment.text for segment in segments)
    text = _SPACES.sub(" ", _LETTER_LOOP.sub(" ", _NON_SPEECH.sub(" ", text))).strip()
    # Measured on a chime with nothing else: whisper wrote a lone U+FFFD (a byte of a split character). A text
    # without a letter or digit says nothing, and answering it would be answering noise.
    if not any(c.isalnum() for c in text):
        return "", 0.0
    probabilities = [float(segment.probability) for segment in segments if not math.isnan(segment.probability)]
    return text, sum(probabilities) / len(probabilities) if probabilities else 0.0


def _command_words(text: str) -> str:
    """The words of `text`, lower case, without a leading wake phrase: "Hey, Jarvis. Stop!" -> "stop"."""
    words = _WORD.findall(text.lower())
    while words and words[0] in _WAKE_WORDS:
        words.pop(0)
    return " ".join(words)


def _collapse_repeats(text: str) -> str:
    """`text` with a sentence repeated back to back written once: "Stop. Stop. Stop." -> "Stop."."""
    sentences = _SENTENCE.findall(text)
    kept = [s for i, s in enumerate(sentences) if i == 0 or _command_words(s) != _command_words(sentences[i - 1])]
    return " ".join(s.strip() for s in kept)


def _loudest_frame_dbfs(audio: Audio) -> float:
    frames = max(1, len(audio) // _FRAME_SAMPLES)
    framed = audio[: frames * _FRAME_SAMPLES].astype(np.float64).reshape(frames, -1)
    loudest_rms = float(np.sqrt((framed**2).mean(axis=1)).max())
    return 20 * float(np.log10(max(loudest_rms, 1.0) / _INT16_SCALE))


@contextmanager
def _whisper_logs() -> Iterator[list[str]]:
    """Collects whisper.cpp's error lines and drops the rest (model loading prints ~30 lines to stderr).

    A log callback rather than pywhispercpp's own stderr redirection, which swaps the process-wide fd 2 and
    would swallow other threads' logs meanwhile. The default logger is restored afterwards: a Python callback
    left installed is called without the GIL when the model is freed at interpreter exit, and aborts.
    """
    errors: list[str] = []

    def collect(level: int, text: str, *_: object) -> None:
        if level == _GGML_LOG_LEVEL_ERROR:
            errors.append(text.strip())

    _pywhispercpp.whisper_log_set(collect)
    try:
        yield errors
    finally:
        _pywhispercpp.whisper_log_set(None)
