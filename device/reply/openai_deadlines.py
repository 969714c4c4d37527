"""The deadlines of one streamed reply, on the turn's own clock (pure: the caller passes the time).

A socket timeout bounds one read, not the reply: a server that sends a `: keepalive` comment every 2 s, or
chunks without text, would reset it forever and keep Spine thinking (or silently speaking) indefinitely. So
each deadline here is a point in time fixed by the reply's progress, and only words move it:

  | deadline                  | from                       | until                                        |
  |---------------------------|----------------------------|----------------------------------------------|
  | `first_token_timeout_s`   | the start of the request   | the first text that is not white space        |
  | `first_sentence_timeout_s`| the start of the request   | the first complete sentence (as the core cuts) |
  | `idle_timeout_s`          | the last word              | the next word                                |
  | `reply_timeout_s`         | the start of the request   | the end of the reply                         |

Keep-alive comments, empty chunks and white space move none of them. The stream sets each read's socket
timeout to the time left before the nearest deadline (`nearest`), and checks `passed` after every read, so the
deadlines hold however the server fills the silence.
"""

from __future__ import annotations

from dataclasses import dataclass

from device.core.memory import split_sentences

_SENTENCE_TAIL_CHARS = 4096
"""Text kept to find the first sentence end in: a sentence end lies within the last few characters of what
arrived, and keeping the whole reply for this would be a buffer that grows with the server's output."""


@dataclass(frozen=True)
class Deadline:
    """One deadline: when it passes (on the clock the stream was given) and what to say when it does."""

    at_s: float
    message: str


class ReplyDeadlines:
    """Where a reply stands against its deadlines; fed the reply's text as it arrives, with the time."""

    def __init__(
        self,
        started_at_s: float,
        first_token_timeout_s: float,
        first_sentence_timeout_s: float,
        idle_timeout_s: float,
        reply_timeout_s: float,
    ) -> None:
        self._started_at_s = started_at_s
        self._first_token_timeout_s = first_token_timeout_s
        self._first_sentence_timeout_s = first_sentence_timeout_s
        self._idle_timeout_s = idle_timeout_s
        self._reply_timeout_s = reply_timeout_s
        self._last_word_at_s: float | None = None
        self._sentence_seen = False
        self._tail = ""  # the latest text, kept only until the first sentence ends

    @property
    def words_arrived(self) -> bool:
        return self._last_word_at_s is not None

    def on_text(self, text: str, now_s: float) -> None:
        """Some text of the reply arrived at `now_s`; white space alone is no word (but may end a sentence)."""
        if text.strip():
            self._last_word_at_s = now_s
        if not self._sentence_seen:
            self._tail += text
            self._find_sentence()

    def _find_sentence(self) -> None:
        sentences, _ = split_sentences(self._tail, 0)
        if sentences:
            self._sentence_seen, self._tail = True, ""
        elif len(self._tail) > _SENTENCE_TAIL_CHARS:
            self._tail = self._tail[-_SENTENCE_TAIL_CHARS // 2 :]

    def nearest(self) -> Deadline:
        """The deadline that passes first from here."""
        started = self._started_at_s
        whole = Deadline(
            started + self._reply_timeout_s,
            f"took longer than {self._reply_timeout_s:g} s in all ([reply] reply_timeout_s)",
        )
        pending = [whole]
        if self._last_word_at_s is None:
            pending.append(
                Deadline(
                    started + self._first_token_timeout_s,
                    f"sent no word for {self._first_token_timeout_s:g} s after the request "
                    "([reply] first_token_timeout_s)",
                )
            )
        else:
            pending.append(
                Deadline(
                    self._last_word_at_s + self._idle_timeout_s,
                    f"sent no word for {self._idle_timeout_s:g} s mid-reply ([reply] idle_timeout_s)",
                )
            )
        if not self._sentence_seen:
            pending.append(
                Deadline(
                    started + self._first_sentence_timeout_s,
                    f"finished no sentence within {self._first_sentence_timeout_s:g} s of the request "
                    "([reply] first_sentence_timeout_s)",
                )
            )
        return min(pending, key=lambda deadline: deadline.at_s)

    def passed(self, now_s: float) -> Deadline | None:
        """The deadline that has passed by `now_s`, or None while every one is still ahead."""
        deadline = self.nearest()
        return deadline if now_s >= deadline.at_s else None

    def left_s(self, now_s: float) -> float:
        """Time left before the nearest deadline (0 once it has passed)."""
        return max(0.0, self.nearest().at_s - now_s)
