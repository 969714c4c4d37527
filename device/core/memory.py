"""Conversation memory and the pure text helpers around it: sentence cutting and heard-text accounting."""

from __future__ import annotations

import difflib
import math
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


def sounded_words(chunks: tuple[SpokenChunk, ...], played_samples: int) -> tuple[str, ...]:
    """The words of which at least one sample was handed to the device within the first `played_samples`.

    The guard against answering itself needs what the microphone may have caught, so a word cut inside the
    fade counts here (it does not count as heard: `heard_text`)."""
    words: list[str] = []
    offset = 0
    for chunk in chunks:
        start = 0
        for word, end in zip(chunk.text.split(), chunk.word_end_samples, strict=True):
            if offset + start >= played_samples:
                return tuple(words)
            words.append(word)
            start = end
        offset += chunk.samples
    return tuple(words)


def plain_words(text: str) -> tuple[str, ...]:
    """Lower-case words without punctuation, as whisper and the reply text can both be compared: "It's 9:41,"
    and "its 941" are the same words."""
    return tuple(re.sub(r"[^a-z0-9 ]+", "", text.lower().replace("-", " ")).split())


# Words that may come with a stop phrase without changing what it asks ("okay, stop it please", "stop the timer"
# while it rings). Naming what to stop ("the timer", "the alarm", "talking") keeps it a stop: a stop never asks
# for an answer. A timer still counting down is not cancelled by it (no skill does that yet).
_STOP_FILLERS = frozenset(
    {"okay", "ok", "oh", "please", "just", "now", "it", "that", "thats", "this", "hey", "no", "right", "all"}
    | {"the", "timer", "timers", "alarm", "alarms", "ringing", "talking", "your", "you"}
)


def _wake_words_at_start(words: tuple[str, ...], wake_phrase: str) -> int:
    """How many leading words are the wake phrase as whisper writes it: whole ("hey jarvis"), with its first
    words dropped ("jarvis"), or slightly misspelt ("hey jervis"); 0 if it does not open the transcript."""
    wake = plain_words(wake_phrase)
    for skip in range(len(wake)):  # the whole phrase first, then without its first word(s)
        tail = wake[skip:]
        if len(words) >= len(tail) and all(_sounds_alike(w, t) for w, t in zip(words, tail, strict=False)):
            return len(tail)
    return 0


def _sounds_alike(heard: str, word: str) -> bool:
    """One letter off at most (jervis, jarvus), or the same word: enough for a name whisper often misspells."""
    if heard == word:
        return True
    if abs(len(heard) - len(word)) > 1 or len(word) < 4:
        return False
    return difflib.SequenceMatcher(None, heard, word).ratio() >= 0.75


def is_stop_phrase(transcript: str, phrases: tuple[str, ...], wake_phrase: str = "hey jarvis") -> bool:
    """Whether the transcript only asks to stop: the wake phrase stripped from its start, then one stop phrase
    or several ("Stop. Stop."), give or take fillers, case and punctuation. "What time is it" never is."""
    words = plain_words(transcript)
    return _only_stop_words(words[_wake_words_at_start(words, wake_phrase) :], phrases)


def ends_in_stop_phrase(transcript: str, phrases: tuple[str, ...], wake_phrase: str = "hey jarvis") -> bool:
    """Whether the transcript's last words (after the wake phrase, fillers aside) are a stop phrase ("..., we
    stop."), whatever comes before them."""
    words = words_without_fillers(transcript, wake_phrase)
    parsed = tuple(plain_words(p) for p in phrases)
    return any(p and len(words) >= len(p) and _only_phrases(words[-len(p) :], (p,)) for p in parsed)


def last_clause_is_stop_phrase(transcript: str, phrases: tuple[str, ...]) -> bool:
    """Whether the transcript has more than one clause and its last (after the last comma, full stop, question
    or exclamation mark) says only a stop phrase, fillers aside: "You need to be honest, stop." is how whisper
    wrote "Hey Jarvis, stop." over a loud echo on a loaded real stream (six words: too long for the short rule),
    and "Okay, I said, stop." is how people say it. Without the comma ("tell me why they had to stop") it is not."""
    clauses = [c for c in re.split(r"[,.;:!?]+", transcript) if plain_words(c)]
    return len(clauses) >= 2 and _only_stop_words(plain_words(clauses[-1]), phrases)


def _only_stop_words(words: tuple[str, ...], phrases: tuple[str, ...]) -> bool:
    """Whether `words`, fillers aside, are one stop phrase or several, and not nothing."""
    kept = tuple(w for w in words if w not in _STOP_FILLERS)
    return bool(kept) and _only_phrases(kept, tuple(plain_words(p) for p in phrases))


def words_without_fillers(transcript: str, wake_phrase: str = "hey jarvis") -> tuple[str, ...]:
    """The plain words after a leading wake phrase, without the fillers a stop is said with ("okay", "now"...)."""
    return tuple(w for w in words_after_wake(transcript, wake_phrase) if w not in _STOP_FILLERS)


def words_after_wake(transcript: str, wake_phrase: str = "hey jarvis") -> tuple[str, ...]:
    """The plain words of a transcript after a leading wake phrase ("Hey, Jarvis. What time?" -> what, time)."""
    words = plain_words(transcript)
    return words[_wake_words_at_start(words, wake_phrase) :]


def _only_phrases(words: tuple[str, ...], phrases: tuple[tuple[str, ...], ...]) -> bool:
    """Whether `words` is made of stop phrases end to end (a tiny parse: phrases are one to three words). A word
    may be one letter off ("Top." is how whisper wrote "Stop." over loud echo in 2 of 3 corpus cases): the
    words around it must still be stop phrases or fillers, so "top of the list" is no stop."""
    if not words:
        return True
    return any(
        p
        and len(words) >= len(p)
        and all(_sounds_alike(w, q) for w, q in zip(words, p, strict=False))
        and _only_phrases(words[len(p) :], phrases)
        for p in phrases
    )


def own_words_match(transcript: str, played: tuple[str, ...], *, min_fraction: float, one_word_tail: int) -> bool:
    """Whether the transcript is the assistant's own recent words: most of its words (`min_fraction`) appear, in
    order, among `played` (the last words the speaker played, oldest first).

    One word proves little ("yes", "okay"), so a one-word transcript matches only one of the last
    `one_word_tail` played words: the echo whisper picks up is of the words just before the speaker stopped.
    """
    window = tuple(w for text in played for w in plain_words(text))
    words = _joined_as_played(plain_words(transcript), frozenset(window))
    if not words or not window:
        return False
    if len(words) == 1:
        return words[0] in window[-one_word_tail:]
    return _common_in_order(words, window) >= math.ceil(min_fraction * len(words))


def _joined_as_played(words: tuple[str, ...], played: frozenset[str]) -> tuple[str, ...]:
    """Two neighbouring words that make one played word, as one: whisper often splits a compound it hears over
    echo ("clock maker" for the "clockmaker" the assistant said, seen on a real stream, where the split made its
    own echo look like a new request and it answered itself)."""
    joined: list[str] = []
    index = 0
    while index < len(words):
        if index + 1 < len(words) and words[index] + words[index + 1] in played:
            joined.append(words[index] + words[index + 1])
            index += 2
        else:
            joined.append(words[index])
            index += 1
    return tuple(joined)


def _common_in_order(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    """The length of the longest common subsequence of two word lists (both are at most a few dozen words)."""
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal = 0
        for j, y in enumerate(b, start=1):
            diagonal, row[j] = row[j], diagonal + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]
