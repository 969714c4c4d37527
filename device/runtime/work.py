"""The jobs Spine runs, built from the engines: speech to text, the reply stream, text to speech.

Each job computes, reports its results as events (audio goes to the `AudioStore`, keyed by (turn, seq)), and
states the modelled cost of each result, which the virtual clock uses. On the wall clock only the local
responder's words wait out their cost (`pace`): there the cost stands in for a model's token rate, while a
remote model's words come at the model's own pace and are passed on as they arrive.

A sentence longer than `MAX_TTS_PIECE_CHARS` is synthesised in pieces cut at word boundaries and joined into one
chunk (audio end to end, word ends offset), so no text is lost and the heard accounting stays exact, while no
single synthesis gets more text than the bound (a voice's memory grows with its input: one 1 MB sentence once
took the process to 6.3 GB). The reply itself is bounded where it enters (device/reply/openai_stream.py), so
the joined audio is bounded too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt

from device.core.events import AlarmRequested, ReplyDelta, ReplyFinished, TranscriptReady, TtsChunkReady
from device.core.memory import Message
from device.reply import RemoteStream
from device.reply import Responder as Responder  # re-exported: the executor's parameter type
from device.reply.local import ReplyPiece, TextPiece
from device.runtime.jobs import Job, Output

Audio = npt.NDArray[np.int16]

MAX_TTS_PIECE_CHARS = 400
"""The most text given to the synthesiser at once, in characters: a long spoken sentence (about 25 s of
speech). Longer sentences are synthesised in pieces; a word longer than this (no voice can say it) is cut."""


class Transcriber(Protocol):
    def transcribe(self, audio: Audio) -> str: ...


class Speech(Protocol):
    @property
    def audio(self) -> Audio: ...
    @property
    def word_end_samples(self) -> tuple[int, ...]: ...


class Synthesiser(Protocol):
    def synthesize(self, text: str) -> Speech: ...


@dataclass(frozen=True)
class Costs:
    """Modelled job costs in samples (virtual clock only)."""

    asr_fixed_samples: int
    asr_rtf: float
    tts_fixed_samples: int
    tts_rtf: float
    first_token_samples: int
    token_samples: int


class AudioStore:
    """Synthesised audio waiting to be queued for playback. Written by the TTS worker, read by the executor."""

    def __init__(self) -> None:
        self._audio: dict[tuple[int, int], Audio] = {}
        self._lock = threading.Lock()

    def put(self, turn: int, seq: int, audio: Audio) -> None:
        with self._lock:
            self._audio[(turn, seq)] = audio

    def take(self, turn: int, seq: int) -> Audio | None:
        with self._lock:
            return self._audio.pop((turn, seq), None)

    def drop_turn(self, turn: int) -> None:
        with self._lock:
            for key in [k for k in self._audio if k[0] == turn]:
                del self._audio[key]


def asr_job(turn: int, audio: Audio, to_sample: int, asr: Transcriber, costs: Costs) -> Job:
    """Transcribe `audio`, the turn's mic up to `to_sample` (which the transcript names, so the spine can tell
    an early transcription that the user spoke on past from the one it waits for)."""

    def run() -> Generator[Output, None, None]:
        text = asr.transcribe(audio)
        cost = costs.asr_fixed_samples + round(costs.asr_rtf * len(audio))
        yield Output(TranscriptReady(turn, text, to_sample), cost)

    return Job(turn, "asr", run)


def reply_job(
    turn: int, prompt: str, history: tuple[Message, ...], respond: Responder, now: datetime, costs: Costs
) -> Job:
    """Stream the reply for `turn`. The stream is opened here (no I/O yet, see `Responder`), so a remote one
    can be closed by the cancelling thread (`Job.abort`) even while the worker is blocked reading it."""
    try:
        pieces = respond(prompt, history, now)
    except Exception as error:  # failing to even open is an EngineFailed for the spine, not a crash of the FSM
        return Job(turn, "reply", _failing(error))
    remote = isinstance(pieces, RemoteStream)

    def run() -> Generator[Output, None, None]:
        try:
            first = True
            for piece in pieces:
                cost = costs.first_token_samples if first else costs.token_samples
                first = False
                if isinstance(piece, TextPiece):
                    yield Output(ReplyDelta(turn, piece.text), cost, pace=not remote)
                else:
                    yield Output(AlarmRequested(turn, piece.seconds, piece.label), 0)
            yield Output(ReplyFinished(turn), 0)
        finally:
            _close(pieces)  # closing this generator does not close the stream it loops over

    return Job(turn, "reply", run, abort=pieces.close if isinstance(pieces, RemoteStream) else None)


def _failing(error: Exception) -> Callable[[], Generator[Output, None, None]]:
    def run() -> Generator[Output, None, None]:
        raise error
        yield  # unreachable: makes `run` a generator, as every job's is

    return run


def _close(pieces: Iterator[ReplyPiece]) -> None:
    if isinstance(pieces, RemoteStream | Generator):
        pieces.close()


def tts_job(turn: int, seq: int, text: str, tts: Synthesiser, store: AudioStore, costs: Costs) -> Job:
    """A sentence to synthesise. A voice that can be stopped mid-sentence (Piper's `begin_job`) is, by the job's
    abort hook, so a cancelled answer's synthesis ends at once and is acknowledged, not reported leaked."""
    stops: list[Callable[[], None]] = []
    aborted = threading.Event()

    def run() -> Generator[Output, None, None]:
        begin_job = getattr(tts, "begin_job", None)
        if begin_job is not None:
            stops.append(begin_job())
        if aborted.is_set():  # cancelled before its stop was known: nothing to synthesise
            return
        spoken, audio, word_end_samples = synthesize_in_pieces(tts, text)
        store.put(turn, seq, audio)
        samples = len(audio)
        cost = costs.tts_fixed_samples + round(costs.tts_rtf * samples)
        yield Output(TtsChunkReady(turn, seq, spoken, samples, word_end_samples), cost)

    def abort() -> None:
        aborted.set()
        for stop in list(stops):
            stop()

    return Job(turn, "tts", run, abort=abort)


def synthesize_in_pieces(tts: Synthesiser, text: str) -> tuple[str, Audio, tuple[int, ...]]:
    """`text` spoken (what was given to the voice, the audio, each word's end), at most `MAX_TTS_PIECE_CHARS` at
    a time. The text comes back as given unless a word had to be cut; then its pieces are words of their own,
    so the word ends still match the words one for one."""
    pieces = text_pieces(text, MAX_TTS_PIECE_CHARS)
    if len(pieces) <= 1:  # it fits (or is only white space)
        speech = tts.synthesize(text)
        return text, speech.audio, speech.word_end_samples
    audio: list[Audio] = []
    ends: list[int] = []
    offset = 0
    for piece in pieces:
        speech = tts.synthesize(piece)
        audio.append(speech.audio)
        ends.extend(offset + end for end in speech.word_end_samples)
        offset += len(speech.audio)
    return " ".join(pieces), np.concatenate(audio), tuple(ends)


def text_pieces(text: str, max_chars: int) -> list[str]:
    """`text` in pieces of at most `max_chars`, cut between words (a longer word is cut where the bound
    falls); one piece, `text` itself, when it fits."""
    if len(text) <= max_chars:
        return [text]
    pieces: list[str] = []
    current = ""
    for word in text.split():
        while len(word) > max_chars:  # no voice says it whole anyway
            if current:
                pieces.append(current)
                current = ""
            pieces.append(word[:max_chars])
            word = word[max_chars:]
        if current and len(current) + 1 + len(word) > max_chars:
            pieces.append(current)
            current = ""
        current = f"{current} {word}" if current else word
    if current:
        pieces.append(current)
    return pieces
