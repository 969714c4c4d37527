"""After the echo canceller finds the echo path moved, hearing judges the echo at every delay it can have for a
while (`PATH_SETTLE_SAMPLES`), not around the delay the canceller just measured: one block's new lag is not yet
a trusted delay, and on a real stream at 0 dB a false hint followed a path change by 0.18 s."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from device.runtime.hearing import PATH_SETTLE_SAMPLES, XRUN_LATE_ECHO_SAMPLES, Audio, Hearing
from device.sim.speech import synthesize
from tests.hearing_fakes import CONFIG, PeakWake, RmsVoice


@dataclass
class MeasuredCanceller:
    """What hearing reads of a canceller, set by the test: its measured delay and its count of path changes."""

    echo_delay_ms: float | None = 40.0
    path_changes: int = 0
    converged: bool = True
    erle_db: float = 30.0

    def process(self, mic: Audio, reference: Audio, *, near_end_quiet: bool = True) -> Audio:
        return mic


def test_the_measured_delay_is_trusted_until_the_path_moves_then_every_delay_for_the_settling_time() -> None:
    canceller = MeasuredCanceller()
    hearing = Hearing(RmsVoice(), PeakWake(), CONFIG, canceller)
    assert hearing.trusted_delay_ms(0) == 40.0
    canceller.path_changes, canceller.echo_delay_ms = 1, 140.0  # the stream restarted: the echo came 100 ms later
    moved_at = 32000
    assert hearing.trusted_delay_ms(moved_at) is None
    assert hearing.trusted_delay_ms(moved_at + PATH_SETTLE_SAMPLES - 1) is None
    assert hearing.trusted_delay_ms(moved_at + PATH_SETTLE_SAMPLES) == 140.0
    # A second move restarts the settling time from its own moment.
    canceller.path_changes = 2
    assert hearing.trusted_delay_ms(moved_at + 2 * PATH_SETTLE_SAMPLES) is None
    assert hearing.trusted_delay_ms(moved_at + 3 * PATH_SETTLE_SAMPLES) == 140.0


def test_a_canceller_that_lost_its_convergence_has_its_delay_ignored_until_it_converges_again() -> None:
    canceller = MeasuredCanceller(converged=False)
    hearing = Hearing(RmsVoice(), PeakWake(), CONFIG, canceller)
    assert hearing.trusted_delay_ms(0) == 40.0  # not yet converged: the delay found on the start-up sound is used
    canceller.converged = True
    assert hearing.trusted_delay_ms(160) == 40.0
    canceller.converged = False  # diverged: the path moved and the canceller has not found it again
    assert hearing.trusted_delay_ms(320) is None
    canceller.converged = True
    assert hearing.trusted_delay_ms(480) == 40.0


def test_hearing_without_a_canceller_never_knows_the_delay() -> None:
    hearing = Hearing(RmsVoice(), PeakWake(), CONFIG)
    assert hearing.trusted_delay_ms(0) is None
    period = np.zeros(160, np.int16)
    assert hearing.hear(period, 0, period, raw=period) == []


def test_an_xrun_reported_by_the_card_widens_the_judgement_from_its_moment_for_the_settling_time() -> None:
    canceller = MeasuredCanceller()
    hearing = Hearing(RmsVoice(), PeakWake(), CONFIG, canceller)
    hearing.echo_path_moved(48000)
    assert hearing.trusted_delay_ms(40000) is None  # the card's backlog: the xrun is ahead of what hearing hears
    assert hearing.trusted_delay_ms(48000 + PATH_SETTLE_SAMPLES - 1) is None
    assert hearing.trusted_delay_ms(48000 + PATH_SETTLE_SAMPLES) == 40.0


def _voice_after_playback(xrun_at: int | None, quiet_after_playback_s: float) -> list[str]:
    """1 s of the assistant playing a tone into a silent mic, a quiet gap, then 0.3 s of voice on the mic: the
    facts hearing reports for the voice (with an xrun reported at `xrun_at`, if given)."""
    canceller = MeasuredCanceller(converged=False)
    hearing = Hearing(RmsVoice(), PeakWake(), CONFIG, canceller)
    period = 160
    tone = (8000 * np.sin(2 * np.pi * 1000 * np.arange(period) / 16000)).astype(np.int16)
    silence = np.zeros(period, np.int16)
    now = 0
    for _ in range(100):
        hearing.hear(silence, now, tone, raw=silence)
        now += period
    for _ in range(round(quiet_after_playback_s * 100)):
        hearing.hear(silence, now, silence, raw=silence)
        now += period
    if xrun_at is not None:
        hearing.echo_path_moved(xrun_at)
    facts: list[str] = []
    for _ in range(30):
        facts += [type(fact).__name__ for fact in hearing.hear(tone, now, silence, raw=tone)]
        now += period
    return facts


def test_after_an_xrun_voice_soon_after_playback_is_not_believed_for_the_echo_may_come_late() -> None:
    assert "VoiceHint" in _voice_after_playback(None, 0.8)  # no xrun: beyond the reference window, it is the user
    assert "VoiceHint" not in _voice_after_playback(16000, 0.8)  # an xrun: the echo may come that late
    assert "VoiceHint" in _voice_after_playback(16000, 2.5)  # past the echo's longest tail after an xrun
    assert "VoiceHint" in _voice_after_playback(-XRUN_LATE_ECHO_SAMPLES, 0.8)  # the xrun is long past


ASSISTANT = "Once upon a time, in a small village at the edge of a great forest, there lived a clockmaker named Ada."


def _hints_after_an_xrun_that_delays_the_echo(user_at_s: float | None) -> list[float]:
    """The assistant talks for 8 s; its echo comes 100 ms late (the canceller says so) until an xrun at 3 s, then
    800 ms late (past the canceller's 500 ms). With `user_at_s`, a user as loud as the echo says "Stop, stop."
    then, 3.5 dB louder than the echo. The times of the voice hints hearing reports, in seconds."""
    rate, period = 16000, 160
    played = np.resize(synthesize(ASSISTANT, "en-us+m3", rate_hz=rate, gain_db=-3.0), 8 * rate).astype(np.int16)
    delay = np.full(len(played), rate // 10)
    delay[3 * rate :] = int(0.8 * rate)
    index = np.arange(len(played)) - delay
    echo = np.where(index >= 0, played[np.clip(index, 0, None)].astype(np.float64) * 0.5, 0.0)
    noise = np.random.default_rng(3).normal(0, 30, len(played))
    mic = echo + noise
    if user_at_s is not None:
        word = synthesize("Stop, stop.", "en-gb+f3", rate_hz=rate).astype(np.float64)
        start = int(user_at_s * rate)
        around = echo[start - rate // 2 : start + len(word)]
        word *= 1.5 * np.sqrt(np.mean(around**2) / np.mean(word[np.abs(word) > 0.01 * np.abs(word).max()] ** 2))
        mic[start : start + len(word)] += word
    mic_int = np.clip(np.rint(mic), -32768, 32767).astype(np.int16)
    canceller = MeasuredCanceller(echo_delay_ms=100.0, converged=False)
    hearing = Hearing(RmsVoice(), PeakWake(), CONFIG, canceller)
    hints: list[float] = []
    for start in range(0, len(played), period):
        if start == 3 * rate:
            hearing.echo_path_moved(start)
        chunk = mic_int[start : start + period]
        facts = hearing.hear(chunk, start, played[start : start + period], raw=chunk)
        hints += [start / rate for fact in facts if type(fact).__name__ == "VoiceHint"]
    return hints


def test_after_an_xrun_an_echo_up_to_1_5_s_late_is_not_the_user() -> None:
    # The xrun moved the echo 700 ms later than the canceller's delay and its 500 ms window: judged against what
    # played up to 1.5 s before, it is still the assistant.
    assert _hints_after_an_xrun_that_delays_the_echo(None) == []


def test_after_an_xrun_the_user_still_interrupts_by_voice() -> None:
    # Not the wake word alone: once the echo's new delay is found on its envelope (half a second of it), a user a
    # little louder than the late echo is heard as fast as before the xrun.
    before = _hints_after_an_xrun_that_delays_the_echo(2.0)
    assert before and 2.0 <= before[0] <= 2.0 + 0.35, before
    after = _hints_after_an_xrun_that_delays_the_echo(4.5)
    assert after and 4.5 <= after[0] <= 4.5 + 0.35, after
