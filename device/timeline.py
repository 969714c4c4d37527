"""A readable timeline of a run, one line per step that matters (used by `spine demo` and `spine replay`).

Streaming text deltas are folded into the line of the step that cut them into sentences, so a long story
reads as its sentences, not as a hundred one-word lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from device.core import commands as cmd
from device.core import events as ev
from device.rates import SPINE_RATE_HZ as RATE_HZ
from device.runtime.eventlog import LoggedStep


def _event_text(event: ev.Event) -> str:
    match event:
        case ev.WakeDetected(model, score, _):
            return f"wake word {model} ({score:.2f})"
        case ev.SpeechStarted():
            return "user speech started"
        case ev.SpeechEnded():
            return "user speech ended"
        case ev.SpeechPaused(end):
            return f"user paused at {end / RATE_HZ:.2f}s"
        case ev.TranscriptReady(turn, text, to_sample):
            return f"transcript [turn {turn}, to {to_sample / RATE_HZ:.2f}s]: {text!r}"
        case ev.TtsChunkReady(turn, seq, _, samples, _):
            return f"speech ready [turn {turn} #{seq}] {samples / RATE_HZ:.2f}s"
        case ev.PlaybackDrained(epoch, played):
            return f"playback {epoch} played out ({played / RATE_HZ:.2f}s)"
        case ev.PlaybackStopped(epoch, played):
            return f"playback {epoch} stopped after {played / RATE_HZ:.2f}s"
        case ev.TimerFired(kind, ref):
            return f"{kind} timer {ref} fired"
        case ev.JobCancelled(turn, job):
            return f"{job} of turn {turn} cancelled"
        case ev.EngineFailed(turn, job, reason):
            return f"{job} of turn {turn} FAILED: {reason}"
        case ev.AudioXrun(underflows, overflows):
            return f"XRUN: speaker ran dry {underflows}x, mic overflowed {overflows}x"
        case ev.AudioLatencyRaised(latency_ms, cause):
            return f"audio {cause}: reopened at {latency_ms:.0f} ms output latency"
        case ev.AudioLatencyLowered(latency_ms, quiet_s):
            return f"audio kept up for {quiet_s:.0f} s: reopened at {latency_ms:.0f} ms output latency"
        case _:
            return type(event).__name__


def _command_text(command: cmd.Command) -> str | None:
    match command:
        case cmd.StartAsr(turn, start, end):
            return f"transcribe {start / RATE_HZ:.2f}-{end / RATE_HZ:.2f}s"
        case cmd.StartReply(turn, prompt, _):
            return f"ask reply for {prompt!r}"
        case cmd.StartTts(turn, seq, text):
            return f"say #{seq} {text!r}"
        case cmd.CutPlayback(epoch):
            return f"CUT playback {epoch}"
        case cmd.CancelTurn(turn):
            return f"CANCEL turn {turn}"
        case cmd.CommitHeard(turn, _, heard, interrupted):
            return f"heard{' (interrupted)' if interrupted else ''}: {heard!r}"
        case cmd.NoteIgnored(reason):
            return f"ignored: {reason}"
        case cmd.OpenPlayback(epoch, turn):
            return f"open playback {epoch}"
        case _:
            return None


def lines(steps: Iterable[LoggedStep]) -> Iterator[str]:
    previous = "Idle"
    for step in steps:
        if isinstance(step.event, ev.ReplyDelta | ev.ReplyFinished) and not step.commands:
            continue  # text still streaming without a complete sentence: nothing to show yet
        if isinstance(step.event, ev.JobCancelled):
            continue
        moved = f"{previous} -> {step.state}" if step.state != previous else step.state
        what = "" if isinstance(step.event, ev.ReplyDelta | ev.ReplyFinished) else _event_text(step.event)
        actions = [text for c in step.commands if (text := _command_text(c)) is not None]
        yield f"{step.t / RATE_HZ:8.2f}s  {moved:<26} {'; '.join(filter(None, [what, *actions]))}"
        previous = step.state
