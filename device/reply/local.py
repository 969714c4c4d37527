"""The built-in local responder: answers like a streaming LLM would, with a few useful skills.

Skills, matched in this order (first match wins):
  | asks for                                  | answers                                                 |
  |-------------------------------------------|---------------------------------------------------------|
  | a timer ("set a timer for 10 seconds")    | confirms, and asks the spine to ring it (AlarmRequested) |
  | the time ("what time is it")              | the time of day                                          |
  | the date ("what day / what's the date")   | the date                                                 |
  | a story ("tell me a story")               | a long story, so interrupting it can be tried            |
  | anything else                             | "I heard: ..." - honest about what it understood         |

The text is streamed word by word (a word and its following space is one token), so sentence cutting and
speak-while-thinking are exercised exactly as with a remote model.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from device.core.memory import Message

_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40, "forty-five": 45, "fifty": 50,
    "sixty": 60, "ninety": 90,
}  # fmt: skip
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600}

_TIMER = re.compile(r"\btimer\b.*?\bfor\s+(\S+)\s+(second|minute|hour)s?\b|\b(\S+)\s+(second|minute|hour)s?\s+timer\b")
_TIME = re.compile(r"\bwhat(?:'s| is)?\s+(?:the\s+)?time\b|\btime is it\b")
_DATE = re.compile(r"\bwhat(?:'s| is)?\s+(?:the\s+|today's\s+)?date\b|\bwhat day\b")
_STORY = re.compile(r"\bstory\b")

STORY = (
    "Once upon a time, in a small village at the edge of a great forest, there lived a clockmaker named Ada. "
    "Every morning she opened her shop and wound every clock on the wall, one by one. "
    "The clocks ticked together like a choir, and the villagers set their days by them. "
    "One winter, a traveller came in from the snow carrying a clock that had stopped. "
    "He said it had belonged to his grandmother, and that it had not ticked for forty years. "
    "Ada turned it over in her hands and listened to it for a long while. "
    "Then she opened its back and found, curled among the gears, a tiny sleeping mouse. "
    "The mouse woke, blinked at the light, and ran out across the workbench. "
    "The clock began to tick at once, as if it had only been waiting for the room to be warm. "
    "The traveller laughed until he cried, and stayed in the village until the spring. "
    "And from then on, whenever a clock stopped, the villagers looked for a mouse first. "
    "That is the end of the story."
)


@dataclass(frozen=True)
class TextPiece:
    text: str


@dataclass(frozen=True)
class TimerPiece:
    seconds: int
    label: str


ReplyPiece = TextPiece | TimerPiece


def respond(prompt: str, history: tuple[Message, ...], now: datetime) -> Iterator[ReplyPiece]:
    """Stream the answer to `prompt` as pieces; `now` is the local time of day (injected, never read here)."""
    text = prompt.lower().strip()
    timer = _parse_timer(text)
    if timer is not None:
        seconds, label = timer
        yield TimerPiece(seconds, label)
        yield from _words(f"Okay, a {label} timer, starting now.")
    elif _TIME.search(text):
        yield from _words(f"It's {_clock(now)}.")
    elif _DATE.search(text):
        yield from _words(f"Today is {now.strftime('%A, %B')} {now.day}, {now.year}.")
    elif _STORY.search(text):
        yield from _words(STORY)
    else:
        yield from _words(f"I heard: {prompt.strip().rstrip('.?!')}. I can tell the time, set timers, or tell a story.")


def _words(text: str) -> Iterator[TextPiece]:
    for match in re.finditer(r"\S+\s*", text):
        yield TextPiece(match.group(0))


def _clock(now: datetime) -> str:
    hour = now.hour % 12 or 12
    return f"{hour}:{now.minute:02d} {'AM' if now.hour < 12 else 'PM'}"


def _parse_timer(text: str) -> tuple[int, str] | None:
    match = _TIMER.search(text)
    if match is None:
        return None
    amount_word, unit = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
    amount = int(amount_word) if amount_word.isdigit() else _NUMBER_WORDS.get(amount_word)
    if amount is None or amount <= 0:
        return None
    seconds = amount * _UNIT_SECONDS[unit]
    return seconds, f"{amount} {unit}"
