"""The echo suite's measures on hand-made runs: every talk-over counts, stop phrases that were answered are not
honoured, self-replies and self-interruptions are seen, levels are active levels, and the report's targets.

No models and no room: a run is a list of logged steps, the utterances as they happened and the epoch of every
speaker sample, exactly what `summarise` gets from a simulated run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from device.bench.echo import describe
from device.bench.echo_measures import TARGETS, aggregate, targets
from device.bench.echo_report import report_markdown
from device.core import commands as cmd
from device.core import events as ev
from device.rates import SPINE_RATE_HZ as RATE_HZ
from device.runtime.eventlog import LoggedStep
from device.sim.bargein import active_energy
from device.sim.card import Utterance
from device.sim.scene import load_scene
from device.sim.summary import summarise

PERIOD = RATE_HZ // 100
STOPS = ("stop", "cancel", "never mind")


def s(seconds: float) -> int:
    return round(seconds * RATE_HZ)


def step(t_s: float, event: ev.Event, state: str, *commands: cmd.Command) -> LoggedStep:
    return LoggedStep(0, s(t_s), event, state, commands)


def epochs_of(total_s: float, *spans: tuple[float, float, int]) -> np.ndarray[Any, np.dtype[np.int32]]:
    """The epoch of every speaker sample: `spans` of (from s, to s, epoch), silence elsewhere."""
    out = np.zeros(s(total_s), np.int32)
    for start, end, epoch in spans:
        out[s(start) : s(end)] = epoch
    return out


def run(
    steps: list[LoggedStep],
    utterances: list[Utterance],
    epochs: np.ndarray[Any, np.dtype[np.int32]],
    user: np.ndarray[Any, np.dtype[np.float32]] | None = None,
    echo: np.ndarray[Any, np.dtype[np.float32]] | None = None,
) -> dict[str, Any]:
    return summarise(steps, utterances, epochs, PERIOD, "hey jarvis", 0, 0, user, echo, stop_phrases=STOPS)


def said(text: str, start_s: float, end_s: float) -> Utterance:
    return Utterance(text, "en-us", s(start_s), s(end_s))


def a_turn(turn: int, from_s: float, to_s: float, text: str, at_s: float) -> list[LoggedStep]:
    """Hearing ends at `to_s` and the spine transcribes [from_s, to_s), then asks for a reply to `text`."""
    return [
        step(at_s - 0.5, ev.SpeechStarted(s(from_s)), "Hearing"),
        step(at_s - 0.2, ev.SpeechEnded(s(to_s)), "Transcribing", cmd.StartAsr(turn, s(from_s), s(to_s))),
        step(at_s, ev.TranscriptReady(turn, text, s(to_s)), "Thinking", cmd.StartReply(turn, text, ())),
    ]


# The story (epoch 2) plays from 4 s; the user says "Stop." at 5.0-5.5 s; playback is cut at 5.1 s.
STORY = (4.0, 5.1, 2)
STOP_SAID = said("Stop.", 5.0, 5.5)
CUT = step(5.1, ev.SpeechStarted(s(5.0)), "Hearing", cmd.CutPlayback(2), cmd.CancelTurn(1))


def test_a_stop_that_cuts_and_is_not_answered_is_honoured() -> None:
    summary = run([CUT], [STOP_SAID], epochs_of(12.0, STORY))
    (talk,) = summary["interruptions"]["talk_overs"]
    assert talk["stop_phrase"] and talk["interrupted"] and not talk["answered"]
    assert talk["spoken_after_s"] == 0.0 and talk["honoured"]
    assert talk["onset_to_silence_ms"] == 100.0 and talk["into_answer_s"] == 1.0
    assert summary["interruptions"]["missed"] == 0 and summary["interruptions"]["stops_honoured"] == 1


def test_a_stop_that_cuts_but_is_answered_is_missed() -> None:
    steps = [CUT, *a_turn(3, 5.0, 5.5, "Topic.", at_s=6.6)]
    # The answer ("I heard: topic. ...") plays as epoch 3 from 7 s.
    summary = run(steps, [STOP_SAID], epochs_of(12.0, STORY, (7.0, 9.0, 3)))
    (talk,) = summary["interruptions"]["talk_overs"]
    assert talk["interrupted"] and talk["answered"] and talk["spoken_after_s"] == 2.0
    assert not talk["honoured"]
    assert summary["interruptions"]["missed"] == 1 and summary["interruptions"]["stops_answered"] == 1
    assert summary["self_replies"] == []  # it answered the user (wrongly), not itself


def test_a_stop_followed_by_speech_that_was_not_a_reply_is_missed_too() -> None:
    # Nothing was asked of the reply backend, but something spoke after the stop (an apology, say).
    summary = run([CUT], [STOP_SAID], epochs_of(12.0, STORY, (7.0, 8.0, 3)))
    (talk,) = summary["interruptions"]["talk_overs"]
    assert not talk["answered"] and talk["spoken_after_s"] == 1.0 and not talk["honoured"]


def test_a_short_talk_over_that_nothing_noticed_counts_as_missed() -> None:
    # "Stop." lasts 0.5 s; the old measure ignored misses under a second, so this failure was invisible.
    summary = run([], [STOP_SAID], epochs_of(12.0, (4.0, 11.0, 2)))
    (talk,) = summary["interruptions"]["talk_overs"]
    assert not talk["interrupted"] and not talk["honoured"] and talk["spoken_after_s"] is None
    assert summary["interruptions"]["missed"] == 1 and summary["barge_ins"] == []


def test_a_question_talk_over_is_honoured_by_the_cut_and_may_be_answered() -> None:
    question = said("Hey Jarvis. What time is it?", 5.0, 6.5)
    steps = [CUT, *a_turn(3, 5.6, 6.5, "What time is it?", at_s=7.5)]
    summary = run(steps, [question], epochs_of(12.0, STORY, (8.0, 9.5, 3)))
    (talk,) = summary["interruptions"]["talk_overs"]
    assert not talk["stop_phrase"] and talk["answered"] and talk["honoured"]
    assert summary["interruptions"]["missed"] == 0


def test_a_reply_to_audio_with_no_user_in_it_is_a_self_reply() -> None:
    # The echo of the story raised a pause and a cut at 4.5 s with nobody talking; the spine transcribed its own
    # voice (4.4-5.2 s) and answered it.
    steps = [
        step(4.5, ev.VoiceHint(s(4.4), 0.9), "Paused", cmd.PausePlayback(2)),
        step(4.7, ev.SpeechStarted(s(4.4)), "Hearing", cmd.CutPlayback(2), cmd.CancelTurn(1)),
        *a_turn(3, 4.4, 5.2, "All right.", at_s=6.0),
    ]
    summary = run(steps, [said("Hey Jarvis. Tell me a story.", 1.0, 2.8)], epochs_of(12.0, (4.0, 4.7, 2)))
    assert summary["self_replies"] == [{"turn": 3, "asked_s": 6.0, "transcript": "All right."}]
    assert summary["interruptions"]["self_interruptions"] == 2  # the pause and the cut
    assert summary["interruptions"]["talk_overs"] == []


def test_a_reply_whose_audio_overlaps_the_user_is_no_self_reply() -> None:
    steps = a_turn(1, 1.9, 2.8, "Tell me a story.", at_s=3.6)
    summary = run(steps, [said("Hey Jarvis. Tell me a story.", 1.0, 2.8)], epochs_of(12.0))
    assert summary["self_replies"] == [] and summary["interruptions"]["self_interruptions"] == 0


def test_a_reply_with_no_transcription_behind_it_is_a_self_reply() -> None:
    steps = [step(6.0, ev.TimerFired("utterance", 7), "Thinking", cmd.StartReply(7, "I heard.", ()))]
    summary = run(steps, [said("Hey Jarvis. Tell me a story.", 1.0, 2.8)], epochs_of(12.0))
    assert [r["turn"] for r in summary["self_replies"]] == [7]


def test_levels_are_active_levels_pauses_between_words_do_not_count() -> None:
    rng = np.random.default_rng(0)
    user = np.zeros(s(12.0), np.float32)
    echo = np.zeros(s(12.0), np.float32)
    # The user: two words at 2000 RMS with a 0.2 s gap; the echo: 1000 RMS bursts, half the time silent.
    user[s(5.0) : s(5.2)] = 2000 * rng.standard_normal(s(0.2))
    user[s(5.4) : s(5.5)] = 2000 * rng.standard_normal(s(0.1))
    for start in np.arange(3.0, 6.0, 0.2):
        echo[s(start) : s(start + 0.1)] = 1000 * rng.standard_normal(s(0.1))
    summary = run([CUT], [STOP_SAID], epochs_of(12.0, STORY), user, echo)
    (talk,) = summary["interruptions"]["talk_overs"]
    assert talk["echo_to_user_db"] == pytest.approx(-6.0, abs=0.3)


def test_an_echo_that_reaches_the_mic_only_after_the_onset_is_still_measured() -> None:
    # 0.3 s into the answer with a 300 ms echo path: nothing of the echo before the onset.
    user = np.zeros(s(12.0), np.float32)
    echo = np.zeros(s(12.0), np.float32)
    user[s(4.3) : s(4.8)] = 1000.0
    echo[s(4.3) : s(4.5)] = 2000.0
    summary = run([], [said("Stop.", 4.3, 4.8)], epochs_of(12.0, (4.0, 11.0, 2)), user, echo)
    assert summary["interruptions"]["talk_overs"][0]["echo_to_user_db"] == pytest.approx(6.0, abs=0.1)


def test_active_energy_is_none_for_silence_or_noise_below_the_floor() -> None:
    quiet = np.full(RATE_HZ, 50.0, np.float32)  # -56 dBFS: noise, not a source sounding
    assert active_energy(quiet, 0, RATE_HZ) is None
    assert active_energy(quiet, 0, 10) is None  # less than one period
    assert active_energy(np.full(RATE_HZ, 1000.0, np.float32), 0, RATE_HZ) == pytest.approx(1e6)


SCENE = """duration_s = 20.0

[room]
echo_gain_db = -6.0
{room}
{says}"""


def scene_file(tmp_path: Path, says: list[str], room: str = "") -> Path:
    path = tmp_path / "scene.toml"
    blocks = "\n".join(f"[[say]]\n{body}\n" for body in says)
    path.write_text(SCENE.format(room=room, says=blocks), encoding="utf-8")
    return path


ASK = 'text = "Hey Jarvis. Tell me a story."\nat_s = 1.0'
SHORT = 'text = "Hey Jarvis. What time is it?"\nat_s = 1.0'
AFTER_SHORT = 'text = "Hey Jarvis. Tell me a story."\nafter = "silent"\ndelay_s = 0.5'


def over(text: str, delay_s: float) -> str:
    return f'text = "{text}"\nafter = "speaking"\ndelay_s = {delay_s}'


@pytest.mark.parametrize(
    ("says", "expected"),
    [
        ([ASK], ("echo-only", "cold", None, None)),
        ([SHORT, AFTER_SHORT], ("echo-only", "warm", None, None)),
        ([ASK, over("Never mind.", 0.3)], ("talk-over", "cold", 0.3, "stop")),
        ([ASK, over("Hey Jarvis, stop.", 0.7)], ("talk-over", "cold", 0.7, "stop")),
        ([SHORT, AFTER_SHORT, over("Hey Jarvis. What time is it?", 3.0)], ("talk-over", "warm", 3.0, "wake")),
        ([SHORT, AFTER_SHORT, over("Sorry, what time is it?", 6.0)], ("talk-over", "warm", 6.0, "speech")),
    ],
)
def test_a_scene_says_what_it_tests(tmp_path: Path, says: list[str], expected: tuple[Any, ...]) -> None:
    info = describe(load_scene(scene_file(tmp_path, says)), "hey jarvis", STOPS)
    assert (info.kind, info.scene_class, info.onset_s, info.talk_kind) == expected
    assert info.hard == ()


def test_a_hard_room_is_named_by_what_makes_it_hard(tmp_path: Path) -> None:
    scene = load_scene(scene_file(tmp_path, [ASK]))
    if not hasattr(scene.room, "drift_ppm"):
        pytest.skip("the scene format has no hard-room keys yet")
    hard = (
        "drift_ppm = 100.0\nspeaker_clip_dbfs = -6.0\n\n[[room.delay_jumps]]\nat_s = 10.0\nms = 10.0\n\n"
        "[[stall]]\nat_s = 9.0\nms = 200.0\n"
    )
    info = describe(load_scene(scene_file(tmp_path, [ASK], hard)), "hey jarvis", STOPS)
    assert info.hard == ("drift", "jump", "clip", "stall")


def fake_run(scene: str, kind: str, scene_class: str, onset_s: float | None, talk: dict[str, Any] | None) -> Any:
    """A suite run as `_run_one` returns it, with the summary cut down to what `aggregate` reads."""
    text = talk["text"] if talk else None
    talk_overs = [talk] if talk else []
    return {
        "scene": scene,
        "kind": kind,
        "class": scene_class,
        "onset_s": onset_s,
        "talk_kind": "stop" if talk and talk["stop_phrase"] else ("wake" if talk else None),
        "talk_text": text,
        "scripted_talk_overs": 1 if kind == "talk-over" else 0,
        "hard": [],
        "aec": True,
        "nominal_echo_to_user_db": 0.0,
        "delay_ms": 40.0,
        "rt60_s": 0.3,
        "cpu_s": 1.0,
        "summary": {
            "assistant_speech_s": 30.0,
            "aec": {"enabled": True, "converged_at_s": 8.0, "erle_after_convergence_db": 30.0, "cost_per_frame_us": 9},
            "interruptions": {
                "talk_overs": talk_overs,
                "pauses": 0,
                "resumes": 0,
                "cuts": 0,
                "false_pauses": 0,
                "false_cancels": 0,
                "false_resumes": 0,
                "self_interruptions": 0,
                "self_replies": [],
            },
        },
    }


def talk_over(text: str, honoured: bool, level_db: float, silence_ms: float, stop: bool = False) -> dict[str, Any]:
    return {
        "text": text,
        "stop_phrase": stop,
        "interrupted": honoured,
        "answered": False,
        "honoured": honoured,
        "echo_to_user_db": level_db,
        "onset_to_silence_ms": silence_ms,
        "into_answer_s": 1.0,
    }


def test_aggregates_per_cell_and_the_target_table() -> None:
    runs = [
        fake_run("a", "talk-over", "cold", 0.3, talk_over("Stop.", False, -3.0, 9000.0, stop=True)),
        fake_run("b", "talk-over", "cold", 0.3, talk_over("Hey Jarvis. What time is it?", True, -3.0, 120.0)),
        fake_run("c", "talk-over", "warm", 0.3, talk_over("Cancel.", True, 4.0, 200.0, stop=True)),
        fake_run("d", "talk-over", "warm", 6.0, None),  # its talk-over found no answer playing
        fake_run("e", "echo-only", "cold", None, None),
    ]
    on = aggregate(runs, True)
    assert on["by_class_and_onset"]["cold 0.3"]["missed_pct"] == 50.0
    assert on["by_class_and_onset"]["warm 0.3"]["missed_pct"] == 0.0
    assert on["by_class_and_onset"]["warm 6.0"]["unlanded"] == 1 and on["unlanded"] == 1
    assert on["missed_pct_worst_cell"] == 50.0
    assert on["stops"] == 2 and on["stops_honoured_pct"] == 50.0
    # Only interrupted talk-overs have a latency, grouped by their measured level.
    assert on["onset_to_silence_ms"]["user_at_least_as_loud"] == {
        "n": 1,
        "p50": 120.0,
        "p95": 120.0,
        "target_p95": 150.0,
    }
    assert on["onset_to_silence_ms"]["echo_louder_up_to_6_db"]["n"] == 1
    table = {row["measure"]: row for row in targets(on)}
    assert not table["missed_pct_worst_cell"]["met"] and table["p95_user_at_least_as_loud_ms"]["met"]
    assert not table["stops_honoured_pct"]["met"] and table["echo_only_false_barge_ins"]["met"]
    assert len(table) == len(TARGETS)
    text = report_markdown({"runs": runs, "aggregates": {"aec": on}}, "test")
    assert "| cold | 0.3 | 2 | 1 (50.0 %) | 0 of 1 |" in text
    assert text.count("| MISSED |") == sum(1 for row in table.values() if not row["met"])


def test_a_measure_with_no_data_misses_its_target() -> None:
    on = aggregate([fake_run("e", "echo-only", "cold", None, None)], True)
    table = {row["measure"]: row for row in targets(on)}
    assert table["p95_user_at_least_as_loud_ms"]["value"] is None
    assert not table["p95_user_at_least_as_loud_ms"]["met"]
    assert not table["missed_pct_worst_cell"]["met"]
