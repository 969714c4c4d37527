"""When the echo path moves. Hearing tracks the echo's delay on the played audio (device/runtime/echo_delay.py) and
reports it (`EchoDelayChanged`); after an xrun the delay is unknown, and voice over playback not believed, until it
is found again. Without a tracked delay, after the echo canceller finds the path moved, hearing judges the echo at
every delay it can have for a while (`PATH_SETTLE_SAMPLES`), not around the delay the canceller just measured: one
block's new lag is not yet a trusted delay, and on a real stream at 0 dB a false hint followed a path change by
0.18 s."""

from __future__ import annotations

import numpy as np
import pytest

from device.core.events import EchoDelayChanged, Event, VoiceGateChanged, VoiceHint
from device.runtime.hearing import PATH_SETTLE_SAMPLES, XRUN_DISTRUST_SAMPLES, Audio, Hearing
from device.sim.scene import DelayJump, RoomSpec
from device.sim.speech import synthesize
from tests.aec_signals import assistant_speech, room_echo, to_int16
from tests.hearing_fakes import CONFIG, MeasuredCanceller, PeakWake, RmsVoice


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


def test_hearing_without_a_canceller_knows_no_delay_before_it_hears_an_echo() -> None:
    # Without a canceller, the only delay is the one the reference model finds on an echo (the start-up sound).
    hearing = Hearing(RmsVoice(), PeakWake(), CONFIG)
    assert hearing.trusted_delay_ms(0) is None
    period = np.zeros(160, np.int16)
    assert hearing.hear(period, 0, period, raw=period) == []


def test_an_xrun_reported_by_the_card_forgets_the_delay_until_it_is_found_again_on_audio_after_it() -> None:
    canceller = MeasuredCanceller()
    hearing = Hearing(RmsVoice(), PeakWake(), CONFIG, canceller)
    assert hearing.trusted_delay_ms(40000) == 40.0
    hearing.echo_path_moved(48000)
    assert hearing.trusted_delay_ms(40000) is None  # the card's backlog: the xrun is ahead of what hearing hears
    # Nothing played since: nothing to find the delay on, so the canceller's delay is not trusted either.
    assert hearing.trusted_delay_ms(48000 + 10 * PATH_SETTLE_SAMPLES) is None


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
    assert "VoiceHint" in _voice_after_playback(-XRUN_DISTRUST_SAMPLES, 0.8)  # the xrun is long past


def _assistant_in_room(
    room: RoomSpec, xrun_at: int | None, *, reopened: bool = False, user: Audio | None = None, user_at: int = 0
) -> list[tuple[int, Event]]:
    """The assistant's speech played into `room` (no canceller), with an xrun reported at `xrun_at` (a reopen a
    latency step up if `reopened`) and `user` talking from `user_at`: the facts hearing reports, with the sample of
    the period that reported each."""
    speech = assistant_speech()
    echo = room_echo(speech, room)
    if user is not None:
        echo[user_at : user_at + len(user)] += user[: len(echo) - user_at].astype(np.float32)
    mic = to_int16(echo)
    hearing = Hearing(RmsVoice(), PeakWake(), CONFIG)
    facts: list[tuple[int, Event]] = []
    for start in range(0, len(speech) - 160 + 1, 160):
        if start == xrun_at:
            hearing.echo_path_moved(start, reopened)
        period = mic[start : start + 160]
        facts += [(start, fact) for fact in hearing.hear(period, start, speech[start : start + 160], raw=period)]
    return facts


def test_the_echo_delay_is_reported_when_found_and_lost_to_an_xrun_until_found_again() -> None:
    xrun_at = 5 * 16000
    facts = _assistant_in_room(
        RoomSpec(echo_delay_ms=120.0, echo_gain_db=-6.0, delay_jumps=(DelayJump(at_s=5.0, ms=100.0),)), xrun_at
    )
    delays = [(at, fact) for at, fact in facts if isinstance(fact, EchoDelayChanged)]
    found_at, found = delays[0]
    assert found.cause == "found" and found.delay_ms is not None and abs(found.delay_ms - 120.0) <= 2
    assert found_at < 16000  # within the first second of speech
    assert (xrun_at, EchoDelayChanged(None, "xrun")) in delays
    again = [(at, fact) for at, fact in delays if at > xrun_at and fact.delay_ms is not None]
    assert again[0][1].cause == "found" and abs((again[0][1].delay_ms or 0) - 220.0) <= 2
    assert again[0][0] - xrun_at <= 16000  # within a second (0.26 s of it is the window after the xrun)
    # Meanwhile voice over playback was not believed: the gate read "none" from the xrun until the delay was back.
    gates = [(at, fact.detector) for at, fact in facts if isinstance(fact, VoiceGateChanged)]
    assert (xrun_at, "none") in gates
    assert any(xrun_at < at <= again[0][0] + 160 and gate != "none" for at, gate in gates)


def test_a_move_without_an_xrun_report_is_followed_and_reported() -> None:
    facts = _assistant_in_room(
        RoomSpec(echo_delay_ms=60.0, echo_gain_db=-6.0, delay_jumps=(DelayJump(at_s=5.0, ms=60.0),)), None
    )
    delays = [(at, fact) for at, fact in facts if isinstance(fact, EchoDelayChanged)]
    moved = [(at, fact) for at, fact in delays if fact.cause == "moved"]
    assert len(moved) == 1 and abs((moved[0][1].delay_ms or 0) - 120.0) <= 2
    assert 5 * 16000 < moved[0][0] <= 5 * 16000 + 8000 + 1536  # within half a second and a hop


def test_an_unsettled_echo_that_creeps_later_and_falls_back_untold_is_not_taken_for_the_user() -> None:
    # Under load a sound server's buffer grows with each underrun: one reported as an xrun, then more that are
    # not (the echo comes later and later), then the stream is re-prepared and the echo comes at the path's own
    # latency again, unreported. The echo alone, loud, and a voice detector that hears any loud sound as voice:
    # only the echo judgement keeps it quiet.
    # Without the unsettled path's later echo, the move at 4 s was taken for the user (at 4.15-4.54 s); without the
    # path's own latency as well, also the fall back at 5.5 s (5.72 and 5.98 s).
    jumps = (
        DelayJump(at_s=2.5, ms=60.0),
        DelayJump(at_s=4.0, ms=100.0),
        DelayJump(at_s=5.5, ms=-100.0),
        DelayJump(at_s=5.51, ms=-60.0),
    )
    speech = assistant_speech()
    mic = to_int16(room_echo(speech, RoomSpec(echo_delay_ms=40.0, echo_gain_db=0.0, delay_jumps=jumps)))
    hearing = Hearing(RmsVoice(), PeakWake(), CONFIG)
    facts: list[Event] = []
    for start in range(0, len(speech) - 160 + 1, 160):
        if start == 40000:
            hearing.echo_path_moved(start)  # the first underrun is reported
        period = mic[start : start + 160]
        facts += hearing.hear(period, start, speech[start : start + 160], raw=period)
    delays = [fact.delay_ms for fact in facts if isinstance(fact, EchoDelayChanged)]
    assert [None if d is None else round(d, -1) for d in delays] == [40.0, None, 100.0, 200.0, 40.0]
    assert not [fact for fact in facts if type(fact).__name__ in ("VoiceHint", "SpeechStarted")]


def _first_hint_after_path_change_ms(
    user: Audio | None, *, reopened: bool = True, moved_ms: float = 40.0
) -> float | None:
    """The assistant's speech at 0 dB echo, 40 ms late; at 2 s the stream is reopened a step up (or, not
    `reopened`, an xrun is reported) and the echo comes `moved_ms` later; `user` from 3 s on: ms from the user's
    onset to the first voice hint (from 0, if no user)."""
    room = RoomSpec(echo_delay_ms=40.0, echo_gain_db=0.0, delay_jumps=(DelayJump(at_s=2.0, ms=moved_ms),))
    user_at = 3 * 16000
    facts = _assistant_in_room(room, 2 * 16000, reopened=reopened, user=user, user_at=user_at)
    hints = [at for at, fact in facts if isinstance(fact, VoiceHint)]
    return (hints[0] - (user_at if user is not None else 0)) / 16 if hints else None


@pytest.mark.parametrize("voice", ["en-gb+f3", "en-us+m3", "en-us"])
def test_after_a_reopen_a_step_up_the_user_is_heard_as_soon_as_the_new_delay_is_found(voice: str) -> None:
    # The first answer on a loaded machine: xruns, then the stream reopened a latency step up, then "Stop." a
    # second later. Judged as an unsettled path for 10 s (as after an xrun) the user as loud as the echo was
    # found 0.23-1.2 s late (the first "Stop." missed by one voice of three); 0.19 s once the new delay is found.
    heard_after_ms = _first_hint_after_path_change_ms(synthesize("Stop. Please stop now.", voice))
    assert heard_after_ms is not None and 0 <= heard_after_ms <= 300
    assert _first_hint_after_path_change_ms(None) is None  # the echo alone: no hint


@pytest.mark.parametrize("voice", ["en-gb+f3", "en-us+m3", "en-us"])
def test_after_an_xrun_that_left_the_echo_where_it_was_the_user_is_heard_as_soon_as_the_delay_is_found(
    voice: str,
) -> None:
    # The first answer after start on the real-stream suite: one xrun while Piper synthesised the first sentence,
    # the delay found again 3-15 ms from where it was, "Stop." 0.3 s into the answer. Judged unsettled for 10 s
    # (the creep after an xrun that moved the echo) the user as loud as the echo went unheard or was found late.
    heard_after_ms = _first_hint_after_path_change_ms(
        synthesize("Stop. Please stop now.", voice), reopened=False, moved_ms=5.0
    )
    assert heard_after_ms is not None and 0 <= heard_after_ms <= 300
    assert _first_hint_after_path_change_ms(None, reopened=False, moved_ms=5.0) is None  # the echo alone: no hint
