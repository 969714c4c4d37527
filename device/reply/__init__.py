"""Reply backends: they stream the answer's text; the spine decides what is spoken.

The two types every backend and the reply job share live here, so the runtime depends on this vocabulary and
not on any one backend (`backend.make_responder` picks the backend from the config).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from datetime import datetime

from device.core.memory import Message
from device.reply.local import ReplyPiece, TextPiece

Responder = Callable[[str, tuple[Message, ...], datetime], Iterator[ReplyPiece]]
"""(prompt, history as remembered, local time) -> the reply's pieces, streamed.

Calling a responder must not block: the FSM thread calls it when it starts the reply job, so that whoever
cancels the turn holds the stream before anything waits. The work (and any I/O) happens while iterating, on
the reply worker's thread."""


class RemoteStream(abc.ABC):
    """A reply streamed by a remote model. The reply job relies on two promises:

    * its pieces arrive at the model's own pace, so nothing paces them again on the wall clock (only the local
      responder's words are paced: there the pace stands in for a model's token rate);
    * `close()` may be called from any thread, any number of times, and stops the stream at once, even while
      another thread is blocked reading it; that reader's `next()` then ends quietly (StopIteration).
    """

    def __iter__(self) -> Iterator[TextPiece]:
        return self

    @abc.abstractmethod
    def __next__(self) -> TextPiece: ...

    @abc.abstractmethod
    def close(self) -> None: ...
