"""The machine's tables: totality, reachability, and the README diagram generated from them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from device.core import chart
from device.core import events as ev
from device.core.leftovers import on_job_cancelled
from device.core.machine import IGNORED, TRANSITIONS
from device.core.states import STATE_TYPES, Idle
from device.core.table import TRIGGERS, Timer, row, table, trigger_name, trigger_of

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_pair_is_classified_exactly_once_and_every_state_is_reachable() -> None:
    report = chart.check()
    assert report.unclassified == ()
    assert report.classified_twice == ()
    assert report.unreachable == ()
    assert len(TRANSITIONS) + len(IGNORED) == len(STATE_TYPES) * len(TRIGGERS)


def test_each_timer_kind_is_a_trigger_of_its_own() -> None:
    kinds = [t.kind for t in TRIGGERS if isinstance(t, Timer)]
    assert sorted(kinds) == sorted(
        ["listen", "utterance", "alarm", "reopen", "confirm", "lookahead", "ring", "breaker", "asr", "tts"]
    )
    assert ev.TimerFired not in TRIGGERS  # a fired timer is looked up by its kind, never by its type
    assert trigger_of(ev.TimerFired("confirm", 3)) == Timer("confirm")
    assert trigger_of(ev.SpeechStarted(0)) is ev.SpeechStarted
    assert trigger_name(Timer("confirm")) == "TimerFired(confirm)"


def test_a_row_for_timerfired_itself_or_a_pair_in_two_rows_is_refused() -> None:
    with pytest.raises(TypeError, match="Timer"):
        row(Idle, ev.TimerFired, on_job_cancelled)  # type: ignore[arg-type]
    twice = row(Idle, ev.JobCancelled, on_job_cancelled)
    with pytest.raises(ValueError, match=r"\(Idle, JobCancelled\) has two rows"):
        table(twice, twice)


def test_every_ignored_pair_says_why() -> None:
    for (state, event), reason in IGNORED.items():
        assert len(reason.split()) >= 3, f"({state.__name__}, {trigger_name(event)}) needs a real reason"


def test_check_reports_a_missing_pair() -> None:
    key = next(iter(IGNORED))
    reason = IGNORED.pop(key)
    try:
        report = chart.check()
    finally:
        IGNORED[key] = reason
    assert report.unclassified == (f"({key[0].__name__}, {trigger_name(key[1])})",)


def test_readme_diagram_is_the_generated_one() -> None:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- fsm:begin -->\n```mermaid\n(.*?)```\n<!-- fsm:end -->", text, re.S)
    assert match, "README.md must hold the diagram between <!-- fsm:begin --> and <!-- fsm:end -->"
    assert match.group(1) == chart.mermaid(), "README diagram is stale: run `make diagram`"


def test_diagram_has_the_interruption_edges() -> None:
    diagram = chart.mermaid()
    assert re.search(r"Speaking --> Listening: .*WakeDetected", diagram)
    assert "Speaking --> Paused: VoiceHint" in diagram
    assert "Paused --> Hearing: SpeechStarted" in diagram
    assert "Paused --> Speaking: TimerFired(confirm)" in diagram  # the hint was not confirmed: resume
    assert "Stopping -->" not in diagram  # nothing leaves Stopping


def test_diagram_has_the_ring() -> None:
    diagram = chart.mermaid()
    assert re.search(r"Announcing --> Ringing: .*PlaybackDrained", diagram)  # the line played: the gap
    assert re.search(r"Ringing --> Announcing: .*TimerFired\(ring\)", diagram)  # the gap is over: the line again
    assert re.search(r"Ringing --> Hearing: .*SpeechStarted", diagram)  # "stop" needs no wake word
    assert re.search(r"Ringing --> Listening: .*WakeDetected", diagram)
    assert re.search(r"Transcribing --> Ringing: .*TranscriptReady", diagram)  # its own echo: the ring goes on


def test_diagram_names_the_timer_that_fires() -> None:
    diagram = chart.mermaid()
    assert "Idle --> Announcing: TimerFired(alarm)" in diagram  # a timer the user set is done
    assert re.search(r"Listening --> Idle: .*TimerFired\(listen\)", diagram)  # nobody spoke after the wake word
    assert "Hearing --> Transcribing: SpeechEnded, TimerFired(utterance)" in diagram
    assert re.search(r"TimerFired\b(?!\()", diagram) is None  # never a bare TimerFired
