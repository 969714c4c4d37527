"""What the FSM thread hands the monitor: steps and level readings in a bounded queue, and live counters.

`MonitorFeed.observe` is a loop observer (device/runtime/loop.py) and `MonitorFeed.period` is called once per
heard period (device/monitor/tap.py); both run on the FSM thread, so both only append to a deque and add to
integers: no lock, no I/O, no encoding (events are frozen, so the monitor's thread encodes them later). The
deque has a bound: when the monitor's thread falls behind, the oldest records go and `dropped_records` counts
them - the FSM thread never waits for a browser.

The counters (`LiveStats`) are written by the FSM thread only and read by the `/metrics` scrape on the
monitor's thread; like `Liveness`, each is a plain attribute (or a dict copied whole under the GIL) that a
reader sees at most one update old.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from device.core import commands as cmd
from device.core import events as ev
from device.core.commands import Command
from device.core.events import Event
from device.monitor.remote import REMOTE_BARGE_IN_TYPES

Audio = npt.NDArray[np.int16]
SILENCE_DBFS = -100.0

BARGE_IN_SIGNALS: dict[type[Event], str] = {ev.SpeechStarted: "voice", ev.WakeDetected: "wake_word"}
"""Which trigger of a cut is which signal of a barge-in (the matrix's rows); remote requests are `remote`."""
SPEAKING_STATES = frozenset({"Speaking", "Paused", "Announcing"})


@dataclass
class AudioHealth:
    """The card's trouble so far: periods it ran late (xruns) and samples it had to fill with silence."""

    xruns: int = 0
    underrun_samples: int = 0
    fsm_rounds: int = 0
    """Rounds of the FSM loop, and the time they spent working (not waiting for the card)."""
    fsm_work_s: float = 0.0
    fsm_work_max_s: float = 0.0
    fsm_rounds_over_budget: int = 0
    """Rounds whose work took longer than one audio period."""
    audio_thread_cpu_s: float = 0.0
    """CPU time of the card's callback thread (PortAudio's), and the times its busy loop was ended by a restart."""
    audio_resyncs: int = 0
    output_latency_s: float = 0.0
    """The stream's output latency as PortAudio reports it: a step higher each time the machine was too busy for
    it (device/audio/stream.py); what a cut takes to be heard, beyond the callback's next period."""
    model_non_finite_outputs: int = 0
    """NaN or infinite scores of the voice and wake models (each read as silence, the model reset)."""


@dataclass(frozen=True)
class StepRecord:
    """One step as the observer saw it, with the wall time it was seen (for transition -> browser latency)."""

    t: int
    event: Event
    previous_state: str
    state: str
    commands: tuple[Command, ...]
    observed_unix_s: float


@dataclass(frozen=True)
class LevelsRecord:
    """Loudest period of the last interval, in dBFS, and the hearing readings at its end."""

    t: int
    mic_dbfs: float
    cleaned_dbfs: float
    speaker_dbfs: float
    vad_probability: float
    wake_score: float
    erle_db: float | None


Record = StepRecord | LevelsRecord


@dataclass
class Histogram:
    """Cumulative bucket counts in seconds, Prometheus style (the last bound is +Inf)."""

    bounds_s: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total_s: float = 0.0
    observations: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds_s) + 1)

    def observe(self, value_s: float) -> None:
        index = next((i for i, bound in enumerate(self.bounds_s) if value_s <= bound), len(self.bounds_s))
        self.counts[index] += 1
        self.total_s += value_s
        self.observations += 1


@dataclass
class LiveStats:
    """Counters for `/metrics`, written by the FSM thread only."""

    state: str = "Idle"
    steps: int = 0
    transitions: dict[tuple[str, str], int] = field(default_factory=dict)
    barge_ins: dict[str, int] = field(default_factory=dict)
    false_barge_ins: int = 0
    missed_barge_ins: int = 0
    leaked_jobs: int = 0
    failed_jobs: int = 0
    realtime_link: dict[str, int] = field(default_factory=dict)
    """Changes of the realtime backend's connection by cause (`RemoteLinkChanged`: connected, a failed connect's
    step, dropped, stalled)."""
    realtime_up: bool | None = None
    erle_db: float | None = None
    voice_gate: str = "none"
    echo_delay_changes: dict[str, int] = field(default_factory=dict)
    """Changes of the echo's delay by cause (`EchoDelayChanged`: found, moved, xrun)."""
    echo_delay_s: float | None = None
    latency_raises: int = 0
    """Reopens of the sound card's stream one latency step up (`AudioLatencyRaised`): the machine was too busy."""
    latency_lowerings: int = 0
    """Reopens one step back down after a quiet spell (`AudioLatencyLowered`)."""
    voice_barge_in_suspended: bool = False
    onset_to_silence: Histogram = field(default_factory=lambda: Histogram((0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0)))
    turn_latency: Histogram = field(default_factory=lambda: Histogram((0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)))


class MonitorFeed:
    def __init__(self, capacity_records: int, levels_interval_samples: int, rate_hz: int) -> None:
        self.records: deque[Record] = deque(maxlen=capacity_records)
        self.dropped_records = 0
        self.stats = LiveStats()
        self.rate_hz = rate_hz
        self.audio_wanted = False
        """Set by the monitor's thread while a browser's audio track plays: only then are periods copied."""
        self.cleaned_audio: deque[Audio] = deque(maxlen=rate_hz // 160)  # about a second of 10 ms periods
        self.played_audio: deque[Audio] = deque(maxlen=rate_hz // 160)
        self.fsm_thread_ns = 0
        """Time the FSM thread spent in the observer and the tap (what the monitor costs the loop)."""
        self._levels_interval = levels_interval_samples
        self._levels_since = 0
        self._peaks = [SILENCE_DBFS, SILENCE_DBFS, SILENCE_DBFS]
        self._cut_onsets: dict[int, int] = {}  # epoch cut by a barge-in -> the onset that caused it
        self._speech_end: int | None = None
        self._last_onset: int | None = None

    # ---- the FSM thread
    def observe(self, now: int, event: Event, state_name: str, commands: tuple[Command, ...]) -> None:
        began_ns = time.perf_counter_ns()
        stats = self.stats
        previous = stats.state
        self._count(now, event, previous, state_name, commands)
        stats.state = state_name
        stats.steps += 1
        self._append(StepRecord(now, event, previous, state_name, commands, time.time()))
        self.fsm_thread_ns += time.perf_counter_ns() - began_ns

    def period(
        self, start: int, mic: Audio, cleaned: Audio, played: Audio, vad: float, wake: float, erle_db: float | None
    ) -> None:
        began_ns = time.perf_counter_ns()
        peaks = self._peaks
        peaks[0] = max(peaks[0], dbfs(mic))
        peaks[1] = max(peaks[1], dbfs(cleaned))
        peaks[2] = max(peaks[2], dbfs(played))
        self.stats.erle_db = erle_db
        if self.audio_wanted:  # copies: the card may reuse its buffers
            self.cleaned_audio.append(cleaned.copy())
            self.played_audio.append(played.copy())
        self._levels_since += len(mic)
        if self._levels_since >= self._levels_interval:
            self._levels_since = 0
            self._append(LevelsRecord(start, peaks[0], peaks[1], peaks[2], vad, wake, erle_db))
            self._peaks = [SILENCE_DBFS, SILENCE_DBFS, SILENCE_DBFS]
        self.fsm_thread_ns += time.perf_counter_ns() - began_ns

    def _append(self, record: Record) -> None:
        if len(self.records) == self.records.maxlen:
            self.dropped_records += 1  # the deque drops the oldest itself; only this thread appends
        self.records.append(record)

    def _count(self, now: int, event: Event, previous: str, state: str, commands: tuple[Command, ...]) -> None:
        stats = self.stats
        if state != previous:
            key = (previous, state)
            stats.transitions[key] = stats.transitions.get(key, 0) + 1
        if previous == "Paused" and state == "Speaking":
            stats.false_barge_ins += 1  # paused on a hint that was not the user: playback resumed
        match event:
            case ev.JobLeaked():
                stats.leaked_jobs += 1
            case ev.EngineFailed():
                stats.failed_jobs += 1
            case ev.RemoteLinkChanged(up, cause, _detail):
                stats.realtime_link[cause] = stats.realtime_link.get(cause, 0) + 1
                stats.realtime_up = up
            case ev.VoiceGateChanged(detector):
                stats.voice_gate = detector
            case ev.EchoDelayChanged(delay_ms, cause):
                stats.echo_delay_changes[cause] = stats.echo_delay_changes.get(cause, 0) + 1
                stats.echo_delay_s = None if delay_ms is None else delay_ms / 1000
            case ev.AudioLatencyRaised():
                stats.latency_raises += 1
            case ev.AudioLatencyLowered():
                stats.latency_lowerings += 1
            case ev.VoiceHint(onset) | ev.SpeechStarted(onset):
                self._last_onset = onset
            case ev.SpeechEnded(end) | ev.SpeechPaused(end):
                self._speech_end = end
            case ev.PlaybackStopped(epoch) if epoch in self._cut_onsets:
                cut_onset = self._cut_onsets.pop(epoch)
                stats.onset_to_silence.observe(max(0, now - cut_onset) / self.rate_hz)
        cut = next((c.epoch for c in commands if isinstance(c, cmd.CutPlayback)), None)
        signal = BARGE_IN_SIGNALS.get(type(event)) or ("remote" if isinstance(event, REMOTE_BARGE_IN_TYPES) else None)
        if previous in SPEAKING_STATES and signal is not None:
            if cut is not None:
                stats.barge_ins[signal] = stats.barge_ins.get(signal, 0) + 1
                barge_onset = event.at_sample if isinstance(event, ev.WakeDetected) else self._last_onset
                self._cut_onsets[cut] = barge_onset if barge_onset is not None and signal != "remote" else now
            elif signal == "voice":
                stats.missed_barge_ins += 1  # confirmed speech over the assistant that did not interrupt it
        for command in commands:
            if isinstance(command, cmd.VoiceBargeIn):
                stats.voice_barge_in_suspended = not command.enabled
            elif isinstance(command, cmd.OpenPlayback) and self._speech_end is not None:
                stats.turn_latency.observe(max(0, now - self._speech_end) / self.rate_hz)
                self._speech_end = None  # one answer per utterance: later sentences are not a new latency

    # ---- the monitor's thread
    def take(self) -> list[Record]:
        """Every record waiting, oldest first (popleft is atomic against the FSM thread's append)."""
        out: list[Record] = []
        records = self.records
        while records:
            try:
                out.append(records.popleft())
            except IndexError:
                break
        return out


def dbfs(audio: Audio) -> float:
    """RMS level of int16 audio relative to full scale; silence is `SILENCE_DBFS`."""
    if len(audio) == 0:
        return SILENCE_DBFS
    mean_square = float(np.dot(audio.astype(np.float32), audio.astype(np.float32))) / len(audio)
    if mean_square <= 0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, round(10 * math.log10(mean_square / (32768.0 * 32768.0)), 1))
