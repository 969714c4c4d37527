"""Conversation memory and the pure text helpers around it: sentence cutting and heard-text accounting."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Message:
    """One entry of the conversation. An assistant entry holds only what the user heard."""

    role: Literal["user", "assistant"]
    text: str
    interrupted: bool = False


@dataclass(frozen=True)
class SpokenChunk:
    """A synthesised sentence as queued for playback: its words and when each has been fully spoken."""

    seq: int
    text: str
    samples: int
    word_end_samples: tuple[int, ...]


# A sentence ends at . ! ? (optionally followed by closing quotes/brackets) when white space follows: the white
# space proves the backend has moved on, so "3.5" or "e.g." mid-stream are not cut too early.
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s+")


def split_sentences(text: str, start: int) -> tuple[tuple[str, ...], int]:
    """Complete sentences in `text[start:]`, and the offset after the last one (the rest is still growing)."""
    sentences: list[str] = []
    cursor = start
    for match in _SENTENCE_END.finditer(text, start):
        sentence = normalise_space(text[cursor : match.end()])
        if sentence:
            sentences.append(sentence)
        cursor = match.end()
    return tuple(sentences), cursor


_CLAUSE_END = re.compile(r"[,;:]\s+")


def first_clause(text: str, start: int, min_words: int) -> tuple[str, int] | None:
    """The first clause of at least `min_words` words in `text[start:]` that ends in , ; or : followed by
    white space, and the offset after it; None if there is none yet."""
    for match in _CLAUSE_END.finditer(text, start):
        clause = normalise_space(text[start : match.end()])
        if len(clause.split()) >= min_words:
            return clause, match.end()
    return None


def normalise_space(text: str) -> str:
    return " ".join(text.split())


def spoken_text(chunks: tuple[SpokenChunk, ...]) -> str:
    return normalise_space(" ".join(chunk.text for chunk in chunks))


def heard_text(chunks: tuple[SpokenChunk, ...], played_samples: int) -> str:
    """The words fully played within the first `played_samples` of an epoch made of `chunks` in order.

    A word counts as heard only when its last sample was handed to the device: a word cut inside the fade is
    not heard, so memory never holds a word the user did not hear (invariant 5).
    """
    words: list[str] = []
    offset = 0
    for chunk in chunks:
        for word, end in zip(chunk.text.split(), chunk.word_end_samples, strict=True):
            if offset + end > played_samples:
                return " ".join(words)
            words.append(word)
        offset += chunk.samples
    return " ".join(words)


# Words that may come with a stop phrase without changing what it asks ("okay, stop it please").
_STOP_FILLERS = frozenset({"okay", "ok", "oh", "please", "just", "now", "it", "that", "thats", "hey", "jarvis"})


def is_stop_phrase(transcript: str, phrases: tuple[str, ...]) -> bool:
    """Whether the transcript says only a stop phrase, give or take fillers, case and punctuation."""
    words = re.sub(r"[^a-z ]+", "", transcript.lower().replace("-", " ")).split()
    kept = " ".join(w for w in words if w not in _STOP_FILLERS)
    return bool(kept) and kept in phrases
