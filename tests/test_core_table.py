"""The machine's tables: totality, reachability, and the README diagram generated from them."""

from __future__ import annotations

import re
from pathlib import Path

from device.core import chart
from device.core.events import EVENT_TYPES
from device.core.machine import IGNORED, ILLEGAL, TRANSITIONS
from device.core.states import STATE_TYPES

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_pair_is_classified_exactly_once_and_every_state_is_reachable() -> None:
    report = chart.check()
    assert report.unclassified == ()
    assert report.classified_twice == ()
    assert report.unreachable == ()
    assert len(TRANSITIONS) + len(IGNORED) + len(ILLEGAL) == len(STATE_TYPES) * len(EVENT_TYPES)


def test_every_ignored_pair_says_why() -> None:
    for (state, event), reason in IGNORED.items():
        assert len(reason.split()) >= 3, f"({state.__name__}, {event.__name__}) needs a real reason"


def test_check_reports_a_missing_pair() -> None:
    key = next(iter(IGNORED))
    reason = IGNORED.pop(key)
    try:
        report = chart.check()
    finally:
        IGNORED[key] = reason
    assert report.unclassified == (f"({key[0].__name__}, {key[1].__name__})",)


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
    assert "Paused --> Speaking: TimerFired" in diagram  # the hint was not confirmed: resume
    assert "Stopping -->" not in diagram  # nothing leaves Stopping


def test_diagram_has_the_ring() -> None:
    diagram = chart.mermaid()
    assert re.search(r"Announcing --> Ringing: .*PlaybackDrained", diagram)  # the line played: the gap
    assert re.search(r"Ringing --> Announcing: .*TimerFired", diagram)  # the gap is over: the line again
    assert re.search(r"Ringing --> Hearing: .*SpeechStarted", diagram)  # "stop" needs no wake word
    assert re.search(r"Ringing --> Listening: .*WakeDetected", diagram)
    assert re.search(r"Transcribing --> Ringing: .*TranscriptReady", diagram)  # its own echo: the ring goes on
