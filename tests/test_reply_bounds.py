"""Every buffer fed by the chat server is bounded (issue 11, case 3): one SSE line, the reply per turn, and the
text given to the voice at once. A 1 MB sentence from the fake server on loopback must not reach the reply
events or the synthesiser whole; the lengths that reach them are asserted (not the process's memory).
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
import pytest

from device.core.events import EngineFailed, Event, ReplyDelta, ReplyFinished, TtsChunkReady
from device.reply.openai import OpenAIConfig, OpenAIResponder, ReplyBackendError, SseLines
from device.reply.openai_sse import MAX_SSE_LINE_BYTES
from device.reply.openai_stream import MAX_REPLY_CHARS, cut_at_word_boundary
from device.runtime.job_threads import ThreadRunner
from device.runtime.work import MAX_TTS_PIECE_CHARS, AudioStore, Costs, reply_job, text_pieces, tts_job
from device.testing.fake_llm import FakeLlmConfig, FakeLlmServer

WAIT_S = 10.0
RATE_HZ = 16000
NO_COSTS = Costs(0, 0.0, 0, 0.0, 0, 0)
ONE_MB_SENTENCE = "and " * 250_000  # 1 MB of words and never a full stop
FLOOD = FakeLlmConfig(first_token_delay_s=0.0, tokens_per_s=1e9)


@pytest.fixture
def server() -> Iterator[FakeLlmServer]:
    with FakeLlmServer(FLOOD) as running:
        yield running


def responder(server: FakeLlmServer) -> OpenAIResponder:
    return OpenAIResponder(OpenAIConfig(base_url=server.base_url, model="m"))


def test_a_1_mb_sentence_streamed_as_words_ends_at_the_reply_bound_on_a_word_boundary(server: FakeLlmServer) -> None:
    server.config = replace(FLOOD, reply=ONE_MB_SENTENCE)
    inbox: queue.SimpleQueue[Event] = queue.SimpleQueue()
    runner = ThreadRunner(inbox.put, RATE_HZ)
    try:
        runner.start(reply_job(1, "hello", (), responder(server), datetime(2026, 1, 1), NO_COSTS), 0)
        events = [inbox.get(timeout=WAIT_S)]
        while not isinstance(events[-1], ReplyFinished | EngineFailed):
            events.append(inbox.get(timeout=WAIT_S))
    finally:
        runner.stop()
    assert events[-1] == ReplyFinished(1)  # ends as if finished: what was said stays said
    said = "".join(event.text for event in events if isinstance(event, ReplyDelta))
    assert MAX_REPLY_CHARS - len("and ") < len(said) <= MAX_REPLY_CHARS
    assert said == ONE_MB_SENTENCE[: len(said)] and said.endswith("and ")  # whole words only
    assert server.wait(lambda: server.disconnects == 1 and server.open_streams == 0, WAIT_S)  # hung up on it


def test_a_1_mb_sentence_in_one_line_fails_the_stream_at_the_line_bound(server: FakeLlmServer) -> None:
    server.config = replace(FLOOD, reply="x" * 1_000_000)  # one token: one SSE line of a megabyte
    received: list[str] = []
    with pytest.raises(ReplyBackendError) as caught:
        for piece in responder(server).open("hello", ()):
            received.append(piece.text)
    message = str(caught.value)
    assert f"a stream line longer than {MAX_SSE_LINE_BYTES} bytes" in message and "'data: {" in message
    assert len(message) < 1000 and received == []


def test_sse_lines_refuse_a_line_past_the_bound_whether_it_has_ended_or_not() -> None:
    line = b"data: " + b"y" * MAX_SSE_LINE_BYTES
    with pytest.raises(ReplyBackendError, match="longer than"):
        SseLines().feed(line)  # no end yet: still growing past the bound
    with pytest.raises(ReplyBackendError, match="longer than"):
        SseLines().feed(line + b"\n\n")  # ended within one read
    fits = b"data: " + b"y" * (MAX_SSE_LINE_BYTES - 6)
    assert SseLines().feed(fits + b"\n\n") == ["y" * (MAX_SSE_LINE_BYTES - 6)]


def test_reply_bound_never_cuts_a_word_unless_the_reply_is_one_word() -> None:
    assert cut_at_word_boundary("alpha beta gamma", 12, mid_word_ok=False) == "alpha beta "
    assert cut_at_word_boundary("alpha beta gamma", 11, mid_word_ok=False) == "alpha beta "
    assert cut_at_word_boundary("alphabet", 5, mid_word_ok=False) == ""
    assert cut_at_word_boundary("alphabet", 5, mid_word_ok=True) == "alpha"


@dataclass(frozen=True)
class FakeSpeech:
    audio: np.ndarray[tuple[int], np.dtype[np.int16]]
    word_end_samples: tuple[int, ...]


class CountingVoice:
    """A synthesiser that records what it was given: 100 samples per word."""

    def __init__(self) -> None:
        self.given: list[str] = []

    def synthesize(self, text: str) -> FakeSpeech:
        self.given.append(text)
        words = len(text.split())
        return FakeSpeech(np.zeros(100 * words, np.int16), tuple(100 * (i + 1) for i in range(words)))


def test_a_sentence_as_long_as_a_whole_reply_is_synthesised_in_bounded_pieces_and_heard_exactly() -> None:
    sentence = " ".join(f"w{i % 1000}" for i in range(MAX_REPLY_CHARS // 4))  # ~4000 characters, no stop
    voice, store = CountingVoice(), AudioStore()
    (output,) = list(tts_job(1, 0, sentence, voice, store, NO_COSTS).run())
    assert len(voice.given) > 1 and all(len(piece) <= MAX_TTS_PIECE_CHARS for piece in voice.given)
    assert " ".join(voice.given) == sentence  # cut between words: nothing lost, nothing split
    chunk = output.event
    assert isinstance(chunk, TtsChunkReady) and chunk.text == sentence
    words = len(sentence.split())
    assert chunk.samples == 100 * words and chunk.word_end_samples == tuple(100 * (i + 1) for i in range(words))
    audio = store.take(1, 0)
    assert audio is not None and len(audio) == chunk.samples


def test_a_sentence_that_fits_goes_to_the_voice_as_it_is() -> None:
    voice = CountingVoice()
    list(tts_job(1, 0, "Hello there.", voice, AudioStore(), NO_COSTS).run())
    assert voice.given == ["Hello there."]


def test_a_word_longer_than_a_piece_is_cut_into_words_of_its_own() -> None:
    assert text_pieces("a " + "z" * 25 + " b", 10) == ["a", "z" * 10, "z" * 10, "z" * 5 + " b"]
    voice = CountingVoice()
    (output,) = list(tts_job(1, 0, "q" * 900, voice, AudioStore(), NO_COSTS).run())
    assert [len(piece) for piece in voice.given] == [400, 400, 100]
    chunk = output.event
    assert isinstance(chunk, TtsChunkReady) and len(chunk.text.split()) == len(chunk.word_end_samples) == 3
