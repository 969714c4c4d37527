"""The event log: write, read back, replay the real core over it (invariant 7), and `spine replay`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from device.cli import main
from device.core import commands as cmd
from device.core import events as ev
from device.core.machine import step
from device.core.memory import Message
from device.core.states import BargeInMatrix, BargeInRule, CoreConfig, initial
from device.errors import UserError
from device.replay import EDITED, Mismatch, replay
from device.runtime.eventlog import EventLog, LoadedLog, LoggedStep, read_log
from tests.core_script import DEFAULTS

EVERY_EVENT: tuple[ev.Event, ...] = (
    ev.WakeDetected("hey_jarvis", 0.731, 16000),
    ev.WakeDetected("hey_jarvis", 0.9, 16000, in_own_speech=True),
    ev.WakeHeardFaintly("hey_jarvis", 0.214, 12800, 9728),
    ev.VoiceHint(16500, 0.875),
    ev.EchoCancellerChanged(converged=True, erle_db=23.5),
    ev.VoiceGateChanged("reference"),
    ev.EchoDelayChanged(142.5, "moved"),
    ev.EchoDelayChanged(None, "xrun"),
    ev.SpeechStarted(17000),
    ev.SpeechEnded(40000),
    ev.SpeechPaused(36000),
    ev.TranscriptReady(1, "what time is it", 40000),
    ev.ReplyDelta(1, "It is "),
    ev.ReplyFinished(1),
    ev.AlarmRequested(1, 300, "tea"),
    ev.TtsChunkReady(1, 0, "It is nine.", 16000, (4000, 8000, 16000)),
    ev.RemoteAudioReady(1, 1, "Once upon", 8000, (3000, 7500)),
    ev.RemoteLinkChanged(False, "dropped", "the peer closed the call mid-answer"),
    ev.PlaybackDrained(1, 16000),
    ev.PlaybackStopped(2, 1234),
    ev.TimerFired("listen", 1),
    ev.JobCancelled(1, "tts"),
    ev.JobLeaked(1, "reply", 512.5),
    ev.EngineFailed(1, "asr", 'RuntimeError: "quoted", non-ASCII \u00e9\u2713'),
    ev.AudioDeviceLost("stream error: device unavailable"),
    ev.AudioDeviceRestored(),
    ev.AudioXrun(underflows=3, overflows=1),
    ev.AudioLatencyRaised(70.0, "lost 86 ms of the microphone"),
    ev.AudioLatencyLowered(30.0, 600.2),
    ev.MuteChanged(True, "SIGUSR1"),
    ev.BargeInRequested("monitor"),
    ev.TextTyped("what time is it", "monitor"),
    ev.Started(),
    ev.StopRequested("end of scene"),
)

EVERY_COMMAND: tuple[cmd.Command, ...] = (
    cmd.StartTimer("listen", 1, 144000),
    cmd.CancelTimer("utterance", 1),
    cmd.StartAsr(1, 12200, 40000),
    cmd.StartReply(1, "what time is it", (Message("user", "hi"), Message("assistant", "Hel", interrupted=True))),
    cmd.StartTts(1, 0, "It is nine."),
    cmd.OpenPlayback(1, 1),
    cmd.QueuePlayback(1, 1, 0),
    cmd.FinishPlayback(1),
    cmd.CutPlayback(1),
    cmd.PausePlayback(1),
    cmd.ResumePlayback(1),
    cmd.PlayEarcon(2, "wake"),
    cmd.SetMicrophone(False),
    cmd.CancelTurn(1),
    cmd.CommitHeard(1, "It is nine.", "It is", interrupted=True),
    cmd.ReopenAudio(2),
    cmd.VoiceBargeIn(False, "heard itself 2 times within 60 s"),
    cmd.NoteIgnored("ünïcode\nand a newline"),
)

ODD_CONFIG = replace(
    DEFAULTS,
    listen_timeout_samples=1234,
    max_utterance_samples=5678,
    min_utterance_samples=91,
    preroll_samples=23,
    barge_in=BargeInMatrix(thinking=BargeInRule(wake=False, speech=True, wake_threshold=0.7)),
    stop_phrases=("halt", "enough already"),
)


def write_log(path: Path, config: CoreConfig, steps: list[tuple[int, ev.Event, str, tuple[cmd.Command, ...]]]) -> None:
    log = EventLog(path, config)
    for t, event, state, commands in steps:
        log.event(t, event)
        log.outcome(t, state, commands)
    log.close()


def test_the_round_trip_fixtures_cover_every_event_and_command_type() -> None:
    assert {type(e) for e in EVERY_EVENT} == set(ev.EVENT_TYPES)
    assert {type(c) for c in EVERY_COMMAND} == set(cmd.COMMAND_TYPES)


def test_log_round_trip_is_whole_value_equal(tmp_path: Path) -> None:
    commands_per_step = [*((c,) for c in EVERY_COMMAND[:-2]), EVERY_COMMAND[-2:], (), EVERY_COMMAND]
    commands_per_step += [()] * (len(EVERY_EVENT) - len(commands_per_step))
    steps = [
        (1000 * i, event, f"State{i}", commands)
        for i, (event, commands) in enumerate(zip(EVERY_EVENT, commands_per_step, strict=True))
    ]
    path = tmp_path / "events.jsonl"
    write_log(path, ODD_CONFIG, steps)
    expected = LoadedLog(
        ODD_CONFIG,
        tuple(LoggedStep(2 + 2 * i, t, event, state, commands) for i, (t, event, state, commands) in enumerate(steps)),
    )
    assert read_log(path) == expected


def test_the_same_records_give_the_same_bytes(tmp_path: Path) -> None:
    steps = [(i, event, "Idle", EVERY_COMMAND) for i, event in enumerate(EVERY_EVENT)]
    write_log(tmp_path / "a.jsonl", ODD_CONFIG, steps)
    write_log(tmp_path / "b.jsonl", ODD_CONFIG, steps)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def replace_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def small_log(path: Path) -> None:
    write_log(
        path,
        DEFAULTS,
        [
            (16000, ev.WakeDetected("hey_jarvis", 0.9, 16000), "Listening", (cmd.StartTimer("listen", 1, 144000),)),
            (20480, ev.SpeechStarted(19456), "Hearing", ()),
            (30000, ev.JobCancelled(1, "asr"), "Hearing", (cmd.NoteIgnored("acknowledged"),)),
        ],
    )


def read_error(path: Path) -> UserError:
    with pytest.raises(UserError) as caught:
        read_log(path)
    return caught.value


def test_a_malformed_json_line_names_its_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    small_log(path)
    replace_line(path, 5, '{"t": 20480, "event": ')
    error = read_error(path)
    assert (error.where, error.message) == (f"{path}:5", "not JSON: Expecting value")


def test_an_unknown_event_type_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    small_log(path)
    replace_line(path, 4, '{"t":20480,"event":{"type":"DoorbellRang","at_sample":3}}')
    error = read_error(path)
    assert (error.where, error.message) == (f"{path}:4", "bad record: unknown record type 'DoorbellRang'")


def test_an_outcome_line_that_is_not_an_object_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    small_log(path)
    replace_line(path, 7, "[1, 2]")
    error = read_error(path)
    assert (error.where, error.message) == (f"{path}:7", "a record must be a JSON object")


def test_a_file_that_is_not_a_spine_log_is_refused_at_line_1(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"hello": "world"}\n', encoding="utf-8")
    assert read_error(path).where == f"{path}:1"


def test_a_log_of_another_version_names_the_settings_that_differ_and_the_way_out(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    small_log(path)
    header = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    del header["core_config"]["echo_tail_samples"]
    header["core_config"]["future_setting"] = 1
    replace_line(path, 1, json.dumps(header))
    error = read_error(path)
    assert error.where == f"{path}:1"
    assert "another version of Spine" in error.message and "replay it with the version that wrote it" in error.message
    assert "lacks: echo_tail_samples" in error.message and "does not know: future_setting" in error.message


def test_an_event_without_its_outcome_mid_log_is_a_step_with_unknown_outcome(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path, DEFAULTS)
    log.event(100, ev.SpeechStarted(50))
    log.event(200, ev.SpeechEnded(150))
    log.outcome(200, "Idle", (cmd.NoteIgnored("x"),))
    log.close()
    assert read_log(path).steps == (
        LoggedStep(2, 100, ev.SpeechStarted(50), "?", ()),
        LoggedStep(3, 200, ev.SpeechEnded(150), "Idle", (cmd.NoteIgnored("x"),)),
    )


def test_the_event_a_crash_left_at_the_end_of_the_log_is_read(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path, DEFAULTS)
    log.event(100, ev.SpeechStarted(50))
    log.outcome(100, "Idle", (cmd.NoteIgnored("x"),))
    log.event(200, ev.SpeechEnded(150))  # the step for this event crashed: no outcome
    log.close()
    assert read_log(path).steps == (
        LoggedStep(2, 100, ev.SpeechStarted(50), "Idle", (cmd.NoteIgnored("x"),)),
        LoggedStep(4, 200, ev.SpeechEnded(150), "?", ()),
    )


# ------------------------------------------------------------------------------------------------- replay

STORY = "Once upon a time. There was a fox."
SCRIPT: tuple[tuple[int, ev.Event], ...] = (
    (16000, ev.WakeDetected("hey_jarvis", 0.9, 16000)),
    (20480, ev.SpeechStarted(19456)),
    (40960, ev.SpeechEnded(36864)),
    (44000, ev.TranscriptReady(1, "tell me a story", 36864)),
    (45000, ev.ReplyDelta(1, "Once upon a time. There ")),
    (46000, ev.TtsChunkReady(1, 0, "Once upon a time.", 24000, (4000, 9000, 12000, 24000))),
    (47000, ev.ReplyDelta(1, "was a fox. ")),
    (60000, ev.WakeDetected("hey_jarvis", 0.8, 60000)),  # barge-in while speaking
    (60160, ev.PlaybackStopped(1, 13000)),
    (60320, ev.JobCancelled(1, "tts")),
    (61000, ev.TtsChunkReady(1, 1, "There was a fox.", 20000, (5000, 9000, 11000, 20000))),  # stale
    (188000, ev.TimerFired("listen", 2)),
    (190000, ev.StopRequested("end of scene")),
)


def record_script(path: Path) -> list[tuple[str, tuple[cmd.Command, ...]]]:
    """Step the real core over SCRIPT, logging exactly as the spine loop does; return what it decided."""
    config = replace(DEFAULTS, earcons=False)  # the script's epochs are numbered for a machine that does not chime
    log = EventLog(path, config)
    spine = initial(config)
    decided = []
    for t, event in SCRIPT:
        log.event(t, event)
        spine, commands = step(spine, event, t)
        log.outcome(t, type(spine.state).__name__, commands)
        decided.append((type(spine.state).__name__, commands))
    log.close()
    return decided


def test_the_scripted_run_decides_what_a_reader_expects(tmp_path: Path) -> None:
    # Guards the script itself: if the core changes, the replay tests below still mean what they say.
    decided = record_script(tmp_path / "events.jsonl")
    assert [state for state, _ in decided] == [
        *("Listening", "Hearing", "Transcribing", "Thinking", "Thinking", "Speaking", "Speaking"),
        *("Listening", "Listening", "Listening", "Listening", "Idle", "Stopping"),
    ]
    assert decided[0][1] == (cmd.StartTimer("listen", 1, 16000 + DEFAULTS.listen_timeout_samples),)
    assert decided[8][1] == (cmd.CommitHeard(1, STORY, "Once upon a", interrupted=True),)


def test_replay_of_a_log_of_the_real_core_reproduces_every_step(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    decided = record_script(path)
    steps, mismatches = replay(path)
    assert mismatches == []
    assert [(s.line, s.t, s.event, s.state, s.commands) for s in steps] == [
        (2 + 2 * i, t, event, state, commands)
        for i, ((t, event), (state, commands)) in enumerate(zip(SCRIPT, decided, strict=True))
    ]


def edit_first_timer(path: Path) -> tuple[cmd.Command, cmd.Command]:
    """Change the recorded due_sample of the first step's StartTimer (outcome on line 3)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[2])
    assert record["commands"][0]["type"] == "StartTimer"
    original = cmd.StartTimer("listen", 1, record["commands"][0]["due_sample"])
    record["commands"][0]["due_sample"] += 1
    lines[2] = json.dumps(record, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return original, cmd.StartTimer("listen", 1, original.due_sample + 1)


def test_replay_finds_exactly_the_edited_step(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    record_script(path)
    original, edited = edit_first_timer(path)
    steps, mismatches = replay(path)
    assert len(steps) == len(SCRIPT)
    assert mismatches == [
        Mismatch(2, f"Listening {(edited,)}", f"Listening {(original,)}"),
        Mismatch(2, "checksum", EDITED),  # the outcome no longer matches the checksum it was written with
    ]


def test_spine_replay_exits_0_when_the_log_reproduces(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "events.jsonl"
    record_script(path)
    assert main(["replay", "--quiet", str(path)]) == 0
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"replay: {len(SCRIPT)} steps, 0 differing, 0 edited: reproduced\n")


def test_spine_replay_exits_1_and_names_the_line_when_a_step_differs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "events.jsonl"
    record_script(path)
    original, edited = edit_first_timer(path)
    assert main(["replay", "--quiet", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == (
        f"{path}:2: recorded Listening {(edited,)}\n    recomputed Listening {(original,)}\n{path}:2: {EDITED}\n"
    )
    assert err == f"replay: {len(SCRIPT)} steps, 1 differing, 1 edited: differs\n"


def test_spine_replay_prints_a_timeline_without_quiet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "events.jsonl"
    record_script(path)
    assert main(["replay", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "wake word hey_jarvis (0.90)" in out
    assert err == f"replay: {len(SCRIPT)} steps, 0 differing, 0 edited: reproduced\n"


def test_spine_replay_of_a_malformed_log_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "events.jsonl"
    small_log(path)
    replace_line(path, 5, "{oops")
    assert main(["replay", str(path)]) == 2
    out, err = capsys.readouterr()
    assert (out, err.startswith(f"spine: error: {path}:5: not JSON: "), err.count("\n")) == ("", True, 1)
