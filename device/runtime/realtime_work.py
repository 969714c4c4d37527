"""The realtime backend's part of the shell: the turn's microphone to the call, and the reply job that plays the
model's voice through the same gated playback as Piper.

The decisions stay in the core. The microphone streams while the spine hears an utterance (`Hearing`: the
state is the decision, `RealtimeMic` only mirrors it), from the utterance's pre-roll on, and stops when the
spine leaves `Hearing`; nothing is asked of the model until the core says `StartReply` (after local speech to
text, so stop phrases, the own-voice guard and memory work as with every backend). The reply job then commits
the audio and asks for the answer, and posts the model's voice as `RemoteAudioReady` stretches (audio in the
`AudioStore`, words attached by `WordClock`): the core opens the epoch, queues, finishes and cuts them exactly as
synthesised speech, so epochs, the cut bound, heard accounting and the echo reference are the same path.

| event on the call                     | the job                                                        |
|---------------------------------------|----------------------------------------------------------------|
| transcript delta                      | words placed on the audio's timeline (`WordClock`)             |
| audio of its response                 | posted in stretches of `STRETCH_SAMPLES` (the first after      |
|                                       | `FIRST_STRETCH_SAMPLES`: a cushion against network jitter)     |
| `response.done` completed/incomplete  | waits for `output_audio_buffer.stopped`, posts the rest, then  |
|                                       | `ReplyFinished`; stays until the epoch has played (see abort)  |
| `response.done` failed, an error      | fails: `EngineFailed` (the core apologises, after a cut)       |
| the call ended (dropped, stalled)     | the link is told (reconnect with back-off); fails, or before   |
| / no call when the turn began         | any audio, with `realtime_fallback = "local"`, answers with    |
|                                       | the local responder (text for Piper)                           |

A typed turn (the monitor's "say": no utterance was heard for it) is sent as text: `conversation.item.create`
with the typed words, then `response.create`; the model answers in its voice as for a spoken turn. A spoken turn
whose utterance could not be streamed (the call was down while the user spoke) is not sent as text: the model
would answer the device's transcript, not the user's voice; it falls back as above.

Barge-in: the job's abort hook (called by the runner on the FSM thread when the core cancels the turn) sends
`response.cancel`, `output_audio_buffer.clear` and, when something played, `conversation.item.truncate` at the
played cursor (the gate's played samples of the turn's epoch, plus the fade the cut still plays), never past the
audio received (`truncate_point_ms`). So the job stays alive (without posting) until its epoch has played out,
or an interruption in the last moments of an answer would leave the model believing it was heard whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from device.core.events import AlarmRequested, RemoteAudioReady, ReplyDelta, ReplyFinished
from device.core.states import Hearing, State
from device.rates import SPINE_RATE_HZ
from device.reply.local import ReplyPiece, TextPiece
from device.reply.realtime_config import CallEnded, ExpectedRace, MalformedEvent, RealtimeError
from device.reply.realtime_link import RealtimeLink
from device.reply.realtime_words import WordClock, learned_scale
from device.runtime.capture import CaptureHistory
from device.runtime.jobs import Job, Output
from device.runtime.work import AudioStore, Costs

if TYPE_CHECKING:
    from device.reply.realtime_client import RealtimeClient

Audio = npt.NDArray[np.int16]

FIRST_STRETCH_SAMPLES = 960
"""60 ms: the model's first audio is posted once this much has come (later stretches keep the speaker fed)."""
STRETCH_SAMPLES = 640
"""40 ms: later stretches of the model's voice (about 25 events a second in the log)."""
POLL_S = 0.01
STOPPED_WAIT_S = 0.4
"""After `output_audio_buffer.stopped`, how long the last frames may still take through the jitter buffer."""
CONNECT_WAIT_S = 2.0
"""At the reply, how long to wait for a call that is being made (the mic was streamed to the current one)."""
PLAYOUT_SLACK_S = 2.0


class RealtimeMic:
    """Mirrors the spine's `Hearing` onto the call's microphone (FSM thread; never blocks)."""

    def __init__(self, link: RealtimeLink) -> None:
        self._link = link
        self._utterance: tuple[int, int] | None = None  # (turn, onset) being streamed or waiting for a call
        self._started = False
        self._backlog: list[Audio] = []

    def heard(self, state: State, cleaned: Audio, start: int, capture: CaptureHistory) -> None:
        """One period of the cleaned microphone, heard in `state`, now at the end of `capture`."""
        if not isinstance(state, Hearing):
            if self._utterance is not None and self._started:
                self._link.end_mic()
            self._utterance, self._started, self._backlog = None, False, []
            return
        utterance = (state.turn, state.onset_sample)
        if utterance != self._utterance:  # a new utterance: its pre-roll and what was heard of it so far
            self._link.heard_turn = state.turn
            if self._link.streamed_turn == state.turn:  # a follow-up in the same turn: not streamed yet
                self._link.streamed_turn = None
            self._utterance, self._started = utterance, False
            self._backlog = [capture.slice(state.from_sample, start + len(cleaned))]
        elif self._started:
            self._link.push_mic(cleaned)
            return
        else:
            self._backlog.append(cleaned)
        if self._link.begin_turn(state.turn):
            for chunk in self._backlog:
                self._link.push_mic(chunk)
            self._started, self._backlog = True, []


@dataclass
class _Shared:
    """What the job's thread and its abort hook (the FSM thread) both see."""

    item_id: str | None = None
    posted_samples: int = 0
    aborted: bool = False


def realtime_reply_job(
    turn: int,
    link: RealtimeLink,
    store: AudioStore,
    played_samples: Callable[[], int],
    fade_samples: int,
    fallback: Callable[[], Iterator[ReplyPiece]] | None,
    costs: Costs,
    reply_timeout_s: float,
    monotonic: Callable[[], float] = time.monotonic,
    prompt: str | None = None,
) -> Job:
    """The reply of `turn` from the realtime call (see the module docstring). `played_samples()` is what the gate
    played of the turn's epoch so far; `fallback` the local responder's pieces, if configured; `prompt` the
    turn's request as text (sent as such when the turn was typed; None: a typed turn is not answered)."""
    shared = _Shared()

    def run() -> Generator[Output, None, None]:
        typed = link.streamed_turn != turn and link.heard_turn != turn
        if typed and prompt is not None:
            client = link.wait_connected(CONNECT_WAIT_S, for_turn=turn)
            why = "the realtime call is down"
        elif link.streamed_turn == turn:
            client = link.wait_connected(CONNECT_WAIT_S)
            why = "the realtime call is down"
        else:
            client, why = None, "the realtime call was not up while the user spoke"
        if client is None:
            yield from _fall_back(turn, why, fallback, costs)
            return
        text = prompt if typed else None
        try:
            yield from _answer(turn, client, link, store, shared, monotonic() + reply_timeout_s, monotonic, text)
        except RealtimeError as error:
            if shared.posted_samples == 0 and fallback is not None:
                yield from _fall_back(turn, str(error), fallback, costs)
                return
            raise
        # Stay (posting nothing) while the answer plays, so a barge-in near its end still truncates it.
        until_s = monotonic() + shared.posted_samples / SPINE_RATE_HZ + PLAYOUT_SLACK_S
        while not shared.aborted and played_samples() < shared.posted_samples and monotonic() < until_s:
            time.sleep(POLL_S)

    def abort() -> None:
        shared.aborted = True
        client = link.client()
        if client is None:
            return
        from device.reply.realtime_client import truncate_point_ms  # loaded already: the link imported it

        item = shared.item_id
        played = min(played_samples() + fade_samples, shared.posted_samples) if played_samples() else 0
        played_ms = played * 1000 / SPINE_RATE_HZ
        point = None if item is None else truncate_point_ms(played_ms, client.received_ms(item))
        client.cancel(point, item if point is not None else None)

    return Job(turn, "reply", run, abort=abort)


def _fall_back(
    turn: int, why: str, fallback: Callable[[], Iterator[ReplyPiece]] | None, costs: Costs
) -> Generator[Output, None, None]:
    """The turn cannot be answered by the model: the local responder answers (text for Piper), or the job fails
    and the core apologises."""
    if fallback is None:
        raise RealtimeError(why)
    first = True
    for piece in fallback():
        if isinstance(piece, TextPiece):
            cost = costs.first_token_samples if first else costs.token_samples
            yield Output(ReplyDelta(turn, piece.text), cost, pace=True)
            first = False
        else:
            yield Output(AlarmRequested(turn, piece.seconds, piece.label), 0)
    yield Output(ReplyFinished(turn), 0)


def _answer(
    turn: int,
    client: RealtimeClient,
    link: RealtimeLink,
    store: AudioStore,
    shared: _Shared,
    deadline_s: float,
    monotonic: Callable[[], float],
    typed: str | None,
) -> Generator[Output, None, None]:
    from device.reply import realtime_events as rt  # the client's module loaded it already

    while client.next_event(0) is not None:  # what an earlier turn left unread is not this turn's news
        pass
    while client.next_audio(0) is not None:
        pass
    if typed is not None:
        client.text_and_respond(typed)
    else:
        client.commit_and_respond()
    words = WordClock(scale=link.scale)
    response: str | None = None
    held: list[Audio] = []  # received, not yet posted
    held_samples = 0
    early: list[tuple[str, Audio]] = []  # audio that came before its response was known
    seq = 0
    done_status: str | None = None
    stopped_at_s: float | None = None

    def stretch(final: bool) -> Output | None:
        nonlocal held, held_samples, seq
        audio = np.concatenate(held) if held else np.zeros(0, np.int16)
        begin = shared.posted_samples
        placed = words.take(None if final else begin + len(audio))
        if not len(audio) and not placed:
            return None
        ends = tuple(min(len(audio), max(0, end - begin)) for _, end in placed)
        store.put(turn, seq, audio)
        event = RemoteAudioReady(turn, seq, " ".join(word for word, _ in placed), len(audio), ends)
        seq += 1
        shared.posted_samples += len(audio)
        held, held_samples = [], 0
        return Output(event, 0)

    while True:
        if shared.aborted:  # the abort hook has sent the cancel: what the call still says is no longer this turn's
            return
        if monotonic() > deadline_s:
            raise RealtimeError("the realtime answer took longer than [reply] reply_timeout_s")
        event = client.next_event(POLL_S)
        if isinstance(event, CallEnded):
            link.fault(event.reason, event.message)
            raise RealtimeError(f"realtime call {event.reason}: {event.message}")
        if isinstance(event, rt.ResponseCreated) and response is None:
            response = event.response.id
            for of, audio in early:
                if of == response:
                    held.append(audio)
                    held_samples += len(audio)
            early = []
        elif isinstance(event, rt.ResponseOutputItemAdded) and event.response_id == response:
            shared.item_id = shared.item_id or event.item.id
        elif isinstance(event, rt.TranscriptDelta) and event.response_id == response:
            words.feed(event.delta)
        elif isinstance(event, rt.TranscriptDone) and event.response_id == response:
            words.finish()
        elif isinstance(event, rt.ResponseDone) and event.response.id == response:
            done_status = event.response.status
            if done_status == "failed":
                raise RealtimeError(f"the model's response failed ({event.response.error_code or 'no code'})")
            words.finish()
        elif isinstance(event, rt.OutputAudioBufferStopped) and event.response_id == response:
            stopped_at_s = monotonic()
        elif isinstance(event, rt.ErrorEvent):
            raise RealtimeError(f"the realtime server refused: {event.error.message} ({event.error.code})")
        elif event is not None and not isinstance(event, ExpectedRace | MalformedEvent):
            pass  # other events (the user's item, content parts) say nothing the turn needs
        while (chunk := client.next_audio(0)) is not None:
            if response is None:
                early.append((chunk.response_id, chunk.samples))
            elif chunk.response_id == response:
                held.append(chunk.samples)
                held_samples += len(chunk.samples)
        need = FIRST_STRETCH_SAMPLES if shared.posted_samples == 0 else STRETCH_SAMPLES
        if held_samples >= need and (out := stretch(final=False)) is not None:
            yield out
        finished = done_status is not None and (
            (stopped_at_s is not None and monotonic() - stopped_at_s > STOPPED_WAIT_S) or done_status == "cancelled"
        )
        if finished:
            if (out := stretch(final=True)) is not None:
                yield out
            if done_status == "completed" and shared.posted_samples:
                link.scale = learned_scale(link.scale, words.text, shared.posted_samples)
            yield Output(ReplyFinished(turn), 0)
            return
