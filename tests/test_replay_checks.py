"""`spine replay` checks the events as well as the decisions, and a malformed log is one line at FILE:LINE with
exit status 2 (issue 11, cases 6, 7 and 8).

Before: an edited wake score or a duplicated step still said "reproduced"; a binary file, `"t": null`, 1e400 or
deeply nested arrays ended in a traceback; a line of any length was read whole.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from device.cli import main
from device.core import codec
from device.core import commands as cmd
from device.core import events as ev
from device.errors import UserError
from device.replay import EDITED, NOT_CHAINED, replay, replay_checked
from device.runtime.eventlog import MAX_LINE_BYTES, EventLog, read_log
from tests.core_script import DEFAULTS
from tests.test_eventlog import SCRIPT, record_script


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def recorded(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    record_script(path)
    return path


def test_an_edited_wake_score_that_decides_the_same_is_found_at_its_line(tmp_path: Path) -> None:
    path = recorded(tmp_path)
    lines = lines_of(path)
    assert '"score":0.9,' in lines[1]
    lines[1] = lines[1].replace('"score":0.9,', '"score":0.95,')  # still over the threshold: same decisions
    write_lines(path, lines)

    checked = replay_checked(path)

    assert checked.mismatches == []  # recomputation alone cannot see it
    assert checked.edited == (2,)
    assert not checked.reproduced


def test_spine_replay_of_an_edited_log_exits_1_and_names_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = recorded(tmp_path)
    lines = lines_of(path)
    lines[1] = lines[1].replace('"score":0.9,', '"score":0.95,')
    write_lines(path, lines)

    assert main(["replay", "--quiet", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == f"{path}:2: {EDITED}\n"
    assert err == f"replay: {len(SCRIPT)} steps, 0 differing, 1 edited: differs\n"


def test_a_step_duplicated_in_place_is_found(tmp_path: Path) -> None:
    path = recorded(tmp_path)
    lines = lines_of(path)
    # The ignored JobCancelled step (lines 20-21) decides nothing, so a copy of it replays to the same decisions.
    assert '"JobCancelled"' in lines[19]
    duplicated = [*lines[:21], lines[19], lines[20], *lines[21:]]
    write_lines(path, duplicated)

    checked = replay_checked(path)

    assert len(checked.steps) == len(SCRIPT) + 1
    assert checked.mismatches == []
    assert checked.edited == (22,)


def test_a_step_removed_is_found_at_the_step_after_it(tmp_path: Path) -> None:
    path = recorded(tmp_path)
    lines = lines_of(path)
    write_lines(path, [*lines[:19], *lines[21:]])  # the JobCancelled step is gone

    assert replay_checked(path).edited == (20,)


def test_a_step_copied_to_a_later_time_is_refused_because_t_goes_backwards(tmp_path: Path) -> None:
    path = recorded(tmp_path)
    lines = lines_of(path)
    write_lines(path, [*lines[:5], lines[1], lines[2], *lines[5:]])  # the first step again, after the second

    with pytest.raises(UserError) as raised:
        read_log(path)

    assert raised.value.where == f"{path}:6"
    assert raised.value.message == "bad record: `t` goes backwards: 16000 after 20480; records are in time order"


def test_an_outcome_at_another_time_than_its_event_is_refused(tmp_path: Path) -> None:
    path = recorded(tmp_path)
    lines = lines_of(path)
    lines[2] = lines[2].replace('{"t":16000,', '{"t":16001,')
    write_lines(path, lines)

    with pytest.raises(UserError, match=r"outcome at t=16001, but its event \(line 2\) is at t=16000") as raised:
        read_log(path)

    assert raised.value.where == f"{path}:3"


def test_a_version_2_outcome_without_its_checksum_is_refused(tmp_path: Path) -> None:
    path = recorded(tmp_path)
    lines = lines_of(path)
    lines[2] = re.sub(r',"chain":"[0-9a-f]{16}"\}$', "}", lines[2])
    write_lines(path, lines)

    with pytest.raises(UserError, match='must end with its "chain" field') as raised:
        read_log(path)

    assert raised.value.where == f"{path}:3"


def as_version_1(path: Path) -> None:
    """The log as Spine wrote it before the chain: header version 1, outcomes without checksums."""
    lines = [re.sub(r',"chain":"[0-9a-f]{16}"\}$', "}", line) for line in lines_of(path)]
    lines[0] = lines[0].replace('{"spine_log":2,', '{"spine_log":1,')
    write_lines(path, lines)


def test_a_log_written_before_the_chain_is_replayed_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = recorded(tmp_path)
    as_version_1(path)

    assert main(["replay", "--quiet", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"replay: {NOT_CHAINED}\nreplay: {len(SCRIPT)} steps, 0 differing: reproduced\n"
    assert "not checked: written before chained checks" in NOT_CHAINED


def test_the_chain_costs_no_decision_the_v1_reader_sees_the_same_steps(tmp_path: Path) -> None:
    path = recorded(tmp_path)
    chained = read_log(path)
    as_version_1(path)
    old = read_log(path)

    assert (old.chained, chained.chained) == (False, True)
    assert old.steps == chained.steps


def test_a_transcript_with_a_unicode_line_separator_stays_on_its_line(tmp_path: Path) -> None:
    # JSON writes U+2028 unescaped with ensure_ascii=False; str.splitlines() used to split the record there.
    path = tmp_path / "events.jsonl"
    log = EventLog(path, DEFAULTS)
    log.event(100, ev.TranscriptReady(1, "one\u2028two", 90))
    log.outcome(100, "Idle", (cmd.NoteIgnored("x"),))
    log.close()

    assert read_log(path).steps[0].event == ev.TranscriptReady(1, "one\u2028two", 90)
    assert len(replay(path)[0]) == 1


NOT_A_SAMPLE_COUNT = "bad record: `t` must be a sample count (an integer, at least 0), got "


@pytest.mark.parametrize(
    ("second_line", "message"),
    [
        ('{"t":null,"event":{"type":"Started"}}', NOT_A_SAMPLE_COUNT + "null"),
        ('{"t":"160","event":{"type":"Started"}}', NOT_A_SAMPLE_COUNT + '"160"'),
        ('{"t":-1,"event":{"type":"Started"}}', NOT_A_SAMPLE_COUNT + "-1"),
        ('{"t":1e400,"event":{"type":"Started"}}', "bad number: number 1e400 is out of range"),
        ('{"t":1,"event":{"type":"VoiceHint","onset_sample":1,"probability":NaN}}', "bad number: NaN is not a JSON"),
        ('{"t":' + "9" * 5000 + ',"event":{"type":"Started"}}', "bad number: "),
        ('{"t":1,"event":' + "[" * 100000 + "]" * 100000 + "}", "not a spine record: arrays or objects nested too"),
        ('{"t":1,"event":{"type":"Started","x":' + "[" * 40 + "]" * 40 + "}}", "bad record: nested deeper than 16"),
    ],
)
def test_malformed_records_are_one_line_at_their_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], second_line: str, message: str
) -> None:
    path = recorded(tmp_path)
    write_lines(path, [lines_of(path)[0], second_line])

    assert main(["replay", "--quiet", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"spine: error: {path}:2: {message}") and err.count("\n") == 1


def test_a_binary_file_is_refused_at_line_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\x00\x01\xff\xfe\x89PNG\r\n")

    assert main(["replay", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"spine: error: {path}:1: not UTF-8 text: not a spine event log, or a damaged one\n"
    )


def test_a_line_over_the_bound_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    path = recorded(tmp_path)
    header = lines_of(path)[0]
    long_text = "a" * (MAX_LINE_BYTES + 10)
    write_lines(path, [header, json.dumps({"t": 1, "event": {"type": "ReplyDelta", "turn": 1, "text": long_text}})])

    with pytest.raises(UserError, match=r"line longer than 1048576 bytes \(1 MiB\)") as raised:
        read_log(path)

    assert raised.value.where == f"{path}:2"


def test_a_line_just_under_the_bound_is_read(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path, DEFAULTS)
    text = "a" * (MAX_LINE_BYTES - 200)
    log.event(100, ev.ReplyDelta(1, text))
    log.outcome(100, "Idle", ())
    log.close()

    assert read_log(path).steps[0].event == ev.ReplyDelta(1, text)


def test_an_event_field_of_the_wrong_type_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    path = recorded(tmp_path)
    lines = lines_of(path)
    assert lines[3] == '{"t":20480,"event":{"type":"SpeechStarted","onset_sample":19456}}'
    lines[3] = lines[3].replace("19456", '"19456"')
    write_lines(path, lines)

    with pytest.raises(UserError, match=r"this event cannot be stepped \(TypeError: ") as raised:
        replay(path)

    assert raised.value.where == f"{path}:4"


def test_the_decoder_refuses_depth_before_python_recursion_could() -> None:
    deep: object = []
    for _ in range(codec.MAX_DEPTH + 2):
        deep = [deep]

    with pytest.raises(codec.DecodeError, match="nested deeper than"):
        codec.decode(deep)
