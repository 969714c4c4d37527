"""The jobs Spine runs, built from the engines: speech to text, the reply stream, text to speech.

Each job computes, reports its results as events (audio goes to the `AudioStore`, keyed by (turn, seq)), and
states the modelled cost of each result, which the virtual clock uses. On the wall clock only the local
responder's words wait out their cost (`pace`): there the cost stands in for a model's token rate, while a
remote model's words come at the model's own pace and are passed on as they arrive.
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
    def run() -> Generator[Output, None, None]:
        speech = tts.synthesize(text)
        store.put(turn, seq, speech.audio)
        samples = len(speech.audio)
        cost = costs.tts_fixed_samples + round(costs.tts_rtf * samples)
        yield Output(TtsChunkReady(turn, seq, text, samples, speech.word_end_samples), cost)

    return Job(turn, "tts", run)
