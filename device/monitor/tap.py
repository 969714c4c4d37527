"""The audio side as the FSM thread sees it, with the monitor's tap on each heard period.

The loop observer sees steps, not audio; the meters and tracks need each period's mic, cleaned mic and played
samples. Wrapping the `AudioSide` gives them without touching the loop: `periods()` is a generator, and the
code after its `yield` runs when the FSM thread asks for the next period - after it heard this one - so the
daemon's `last_cleaned` and hearing's last readings are this period's. Everything else is passed through.
"""

from __future__ import annotations

from collections.abc import Iterator

from device.core.events import Event
from device.core.states import State
from device.monitor.feed import MonitorFeed
from device.runtime.daemon import Daemon
from device.runtime.fsm_thread import AudioSide, Period


class MonitoredAudioSide:
    def __init__(self, audio: AudioSide, daemon: Daemon, feed: MonitorFeed) -> None:
        self._audio = audio
        self._daemon = daemon
        self._feed = feed

    def periods(self) -> Iterator[Period]:
        daemon, feed = self._daemon, self._feed
        for period in self._audio.periods():
            yield period
            hearing = daemon.hearing
            erle_db = round(daemon.aec.erle_db, 1) if daemon.aec is not None else None
            feed.period(
                period.start_sample, period.mic, daemon.last_cleaned, period.played,
                hearing.last_vad_probability, hearing.last_wake_score, erle_db,
            )  # fmt: skip

    def early_reports(self) -> list[Event]:
        return self._audio.early_reports()

    def reports(self) -> list[Event]:
        return self._audio.reports()

    def requests(self) -> list[Event]:
        return self._audio.requests()

    def pump(self) -> None:
        self._audio.pump()

    def health(self, state: State) -> Event | None:
        return self._audio.health(state)

    def playout_samples(self) -> int | None:
        return self._audio.playout_samples()

    def close(self) -> None:
        self._audio.close()
