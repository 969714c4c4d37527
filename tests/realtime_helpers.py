"""Shared by the realtime tests: signals, and reading a `RealtimeClient` until something happens (bounded waits
on conditions, never a sleep taken as proof)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from device.reply.realtime_client import RealtimeClient
from device.reply.realtime_config import Notice, RemoteAudio
from device.reply.realtime_events import ServerEvent

Audio = npt.NDArray[np.int16]
E = TypeVar("E")

KEY = "sk-realtime-test-DO-NOT-PRINT-4242"
WAIT_S = 30.0
"""Upper bound for anything to happen on loopback, generous for a loaded machine; tests pass as soon as it does."""


def tone(hz: float, seconds: float, rate_hz: int = 16_000, level: int = 8000) -> Audio:
    t = np.arange(int(seconds * rate_hz)) / rate_hz
    out: Audio = (np.sin(2 * np.pi * hz * t) * level).astype(np.int16)
    return out


def dominant_hz(audio: Audio, rate_hz: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64)))
    return float(np.fft.rfftfreq(len(audio), 1 / rate_hz)[int(np.argmax(spectrum))])


def sound_bursts(audio: Audio, rate_hz: int, window_ms: int = 10) -> int:
    """How many separate stretches of sound the audio holds (gaps of at least 40 ms of near-silence apart)."""
    window = rate_hz * window_ms // 1000
    frames = len(audio) // window
    rms = np.sqrt((audio[: frames * window].astype(np.float64).reshape(frames, window) ** 2).mean(axis=1))
    loud = rms > 0.1 * rms.max()
    bursts, quiet_run, in_burst = 0, 0, False
    for is_loud in loud:
        if is_loud:
            if not in_burst:
                bursts += 1
            in_burst, quiet_run = True, 0
        else:
            quiet_run += 1
            if quiet_run * window_ms >= 40:
                in_burst = False
    return bursts


@dataclass
class Heard:
    """What a client got while it was read: events and notices in order, remote audio, and when each came."""

    started_s: float = field(default_factory=time.monotonic)
    events: list[ServerEvent | Notice] = field(default_factory=list)
    audio: list[RemoteAudio] = field(default_factory=list)
    first_audio_s: float | None = None

    def of_type(self, kind: type[E]) -> list[E]:
        return [event for event in self.events if isinstance(event, kind)]

    def samples(self, response_id: str | None = None) -> Audio:
        chunks = [chunk.samples for chunk in self.audio if response_id is None or chunk.response_id == response_id]
        return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)


def read_until(
    client: RealtimeClient,
    done: Callable[[Heard], bool],
    heard: Heard | None = None,
    timeout_s: float = WAIT_S,
) -> Heard:
    """Read events and audio until `done(heard)` holds; fails the test if it does not within `timeout_s`."""
    heard = heard or Heard()
    until_s = time.monotonic() + timeout_s
    while not done(heard):
        if time.monotonic() > until_s:
            kinds = [type(event).__name__ for event in heard.events]
            raise AssertionError(f"not done within {timeout_s} s; heard {kinds} and {len(heard.audio)} chunks")
        event = client.next_event(0.02)
        if event is not None:
            heard.events.append(event)
        while (chunk := client.next_audio(0)) is not None:
            if heard.first_audio_s is None:
                heard.first_audio_s = time.monotonic()
            heard.audio.append(chunk)
    return heard


def wait_until(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    """Poll `condition` (for state no event announces, such as the client's audio count) until it holds."""
    until_s = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > until_s:
            raise AssertionError(f"not true within {timeout_s} s")
        time.sleep(0.01)


def say(client: RealtimeClient, audio: Audio) -> float:
    """One user turn: stream `audio` (16 kHz) and ask for the answer; returns when the commit went (monotonic s).
    The audio is pushed at once: the microphone track sends it at the real-time pace."""
    client.begin_turn()
    for at in range(0, len(audio), 320):
        client.push_mic(audio[at : at + 320])
    client.commit_and_respond()
    return time.monotonic()
