"""Settings of the sound path: the sound card (`[audio]`), the echo canceller (`[aec]`) and the chimes (`[earcons]`).

Part of the settings' one home (device/config.py); a leaf like it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from device.tomlfile import example, within


@dataclass(frozen=True)
class AudioConfig:
    period_ms: int = field(default=10, metadata=within(5, 40))
    """One audio period, in milliseconds: the sound card's callback and the spine's audio step run once per
    period. A multiple of 10 with the echo canceller on (it works in 10 ms frames)."""
    fade_ms: float = 4.0
    """Fade-out applied when playback is cut (no click), in milliseconds: 0.5 up to `period_ms` (it must fit in
    one period)."""
    switch_interval_ms: float = field(default=1.0, metadata=within(0.1, 100.0))
    """Python's thread switch interval while running (sys.setswitchinterval), in milliseconds: how long a busy
    Python thread may keep the audio callback waiting for the GIL. 1 ms measured best (`spine bench audio`)."""
    card_rate_hz: int | None = field(default=None, metadata={**within(8000, 192000), **example(48000)})
    """The sound card's sample rate, in Hz. Unset: 16000 (Spine's own rate) when both devices take it, else a
    rate both take; Spine resamples between the card's rate and its own on its own thread, never in the
    callback."""
    input_device: str | None = field(default=None, metadata=example("USB"))
    """Microphone: a device index or part of its name (`spine devices` lists them); unset: the system's."""
    output_device: str | None = field(default=None, metadata=example("USB"))
    """Speaker: a device index or part of its name; unset: the system's."""
    reopen_first_s: float = field(default=1.0, metadata=within(0.1, 60.0))
    """When the sound card goes away (unplugged, the sound server restarted), wait this long, in seconds, before
    the first attempt to reopen it; the wait doubles with each attempt..."""
    reopen_max_s: float = field(default=30.0, metadata=within(0.1, 3600.0))
    """...up to this long, in seconds (at least `reopen_first_s`)."""
    realtime_priority: int = field(default=10, metadata=within(0, 99))
    """SCHED_FIFO priority the sound card's callback thread asks for (1-99; 0: do not ask). Real-time priority
    keeps other processes from delaying the callback (an xrun). Refused (no `LimitRTPRIO=` in the unit, or an
    rtprio limit for a user), spine says so once and runs at normal priority."""

    @property
    def device_rate_hz(self) -> int | None:
        """The old name of `card_rate_hz`, still read by device/run.py."""
        return self.card_rate_hz

    def validate(self) -> str | None:
        if not 0.5 <= self.fade_ms <= self.period_ms:
            return f"`fade_ms` must be 0.5..period_ms ({self.period_ms}), got {self.fade_ms}"
        if self.reopen_max_s < self.reopen_first_s:
            return f"`reopen_max_s` must be at least `reopen_first_s` ({self.reopen_first_s}), got {self.reopen_max_s}"
        return None


@dataclass(frozen=True)
class AecConfig:
    enabled: bool = True
    """Cancel the speaker's echo from the mic (WebRTC AEC3). Off: voice over playback is still told from the
    assistant's own echo by the played reference (`device/runtime/echo_reference.py`), but the voice detector
    then hears the raw mic, so a user much quieter than the echo is not heard."""
    converge_erle_db: float = field(default=10.0, metadata=within(3.0, 40.0))
    """Speech may interrupt playback once the canceller removes this much echo, in dB (measured, not assumed)."""


@dataclass(frozen=True)
class EarconsConfig:
    enabled: bool = True
    """Chime when the wake word is accepted, when nothing was said after it, and on mute/unmute."""
    level_dbfs: float = field(default=-14.0, metadata=within(-60.0, 0.0))
    """Peak level of the chimes, in dB below full scale (speech peaks near -3 dBFS)."""
    startup: bool = True
    """Play the 1.2 s start-up sound once at start: the echo canceller and the echo model learn the room from
    it, so the user can talk over the first answer from its first syllable. Off: they learn it from the
    first half second or so of the first answer, which cannot be interrupted by voice until then."""
