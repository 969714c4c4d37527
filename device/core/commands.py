"""Commands: imperatives from `step()` to the executor, which carries them out without deciding anything.

Work is always started and cancelled by turn id (invariant 2). Playback is addressed by epoch: one epoch is one
continuous stretch of the assistant's voice; cutting it drops everything queued under it (invariant 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from device.core.events import TimerKind
from device.core.memory import Message


@dataclass(frozen=True)
class StartTimer:
    """Arm a timer that posts `TimerFired(kind, ref)` at `due_sample` (replaces one with the same key)."""

    kind: TimerKind
    ref: int
    due_sample: int


@dataclass(frozen=True)
class CancelTimer:
    """Disarm the timer (kind, ref) if it is armed."""

    kind: TimerKind
    ref: int


@dataclass(frozen=True)
class StartAsr:
    """Transcribe the captured mic audio [from_sample, to_sample) for a turn."""

    turn: int
    from_sample: int
    to_sample: int


@dataclass(frozen=True)
class StartReply:
    """Ask the reply backend to answer `prompt`, given the conversation so far."""

    turn: int
    prompt: str
    history: tuple[Message, ...]


@dataclass(frozen=True)
class StartTts:
    """Synthesise one sentence of a turn's reply; its audio comes back as `TtsChunkReady(turn, seq)`."""

    turn: int
    seq: int
    text: str


@dataclass(frozen=True)
class OpenPlayback:
    """Open a new playback epoch for a turn; only audio queued under this epoch may play now."""

    epoch: int
    turn: int


@dataclass(frozen=True)
class QueuePlayback:
    """Append the synthesised audio (turn, seq) to the playback of `epoch`."""

    epoch: int
    turn: int
    seq: int


@dataclass(frozen=True)
class FinishPlayback:
    """Nothing more will be queued under `epoch`: report `PlaybackDrained` once it has all played."""

    epoch: int


@dataclass(frozen=True)
class CutPlayback:
    """Flush playback: fade out within one period, drop the rest, report `PlaybackStopped`."""

    epoch: int


@dataclass(frozen=True)
class PausePlayback:
    """Fade the epoch out and hold its place: nothing is dropped (a hint that the user speaks)."""

    epoch: int


@dataclass(frozen=True)
class ResumePlayback:
    """Fade the paused epoch back in from exactly where it paused (the hint was not the user)."""

    epoch: int


@dataclass(frozen=True)
class PlayEarcon:
    """Play the earcon `kind` (wake, timeout, mute, unmute, startup) as its own epoch: opened, queued and
    finished at once.

    It belongs to no turn and is never part of a reply. Nothing cuts a chime (the longest is 170 ms); only a
    stop cuts the start-up sound (`CutPlayback` of its epoch)."""

    epoch: int
    kind: str


@dataclass(frozen=True)
class SetMicrophone:
    """Listen to the microphone or not (muted: no model runs on it and none of it is kept)."""

    listening: bool


@dataclass(frozen=True)
class CancelTurn:
    """Cancel generation: every job of `turn` stops and acknowledges with `JobCancelled`."""

    turn: int


@dataclass(frozen=True)
class CommitHeard:
    """Commit what was heard: the assistant's part of `turn` as the user heard it (for logs and summaries)."""

    turn: int
    reply_text: str
    heard_text: str
    interrupted: bool


@dataclass(frozen=True)
class ReopenAudio:
    """Try to open the sound card again; the result comes back as AudioDeviceRestored or AudioDeviceLost."""

    attempt: int


@dataclass(frozen=True)
class VoiceBargeIn:
    """Voice barge-in is suspended (`enabled=False`: the assistant kept hearing itself, only the wake word
    interrupts now) or restored; `reason` says why. A fact for the log and the timeline: the machine itself
    ignores voice while it is suspended, and hearing may stop looking for it."""

    enabled: bool
    reason: str


@dataclass(frozen=True)
class NoteIgnored:
    """Write into the log that the event was ignored, and why (a stale result is dropped as data)."""

    reason: str


Command = (
    StartTimer
    | CancelTimer
    | StartAsr
    | StartReply
    | StartTts
    | OpenPlayback
    | QueuePlayback
    | FinishPlayback
    | CutPlayback
    | PausePlayback
    | ResumePlayback
    | PlayEarcon
    | SetMicrophone
    | CancelTurn
    | CommitHeard
    | ReopenAudio
    | VoiceBargeIn
    | NoteIgnored
)

COMMAND_TYPES: tuple[type[Command], ...] = get_args(Command)
