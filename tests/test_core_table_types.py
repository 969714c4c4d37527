"""The transition table is type-checked: mypy refuses a row whose handler does not take the row's states or
its trigger's event, and a group of states that has no name and type."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

ROWS = """\
from device.core import events as ev
from device.core import reply, turn
from device.core.interrupt import in_paused
from device.core.machine import INTERRUPTIBLE, REPLYING
from device.core.states import Hearing, Idle, Listening, Paused
from device.core.table import Timer, row, table

table(
    row(Listening, ev.SpeechStarted, turn.on_speech_started),
    row(Hearing, ev.SpeechStarted, turn.on_speech_started),  # wrong: the handler takes Listening only
    row(Listening, ev.SpeechEnded, turn.on_speech_started),  # wrong: the handler takes SpeechStarted
    row(Listening, Timer("listen"), turn.on_speech_started),  # wrong: a timer delivers TimerFired
    row(Hearing, Timer("utterance"), turn.on_utterance_limit),
    row(INTERRUPTIBLE, ev.ReplyDelta, reply.on_reply_delta),  # wrong: not every state of the group replies
    row(REPLYING, ev.ReplyDelta, reply.on_reply_delta),
    row((Idle, Listening), ev.WakeDetected, turn.on_wake),  # wrong: a group needs a name and a type
    row(Paused, ev.TtsChunkReady, in_paused(reply.on_tts_chunk, reply.on_announcement_chunk)),
    row(Paused, ev.ReplyDelta, in_paused(reply.on_tts_chunk, reply.on_announcement_chunk)),  # wrong: the event
)
"""


def test_mypy_refuses_exactly_the_rows_whose_handler_does_not_fit(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    source = tmp_path / "rows.py"
    source.write_text(ROWS, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"), str(source)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )
    refused = {int(n) for n in re.findall(r"rows\.py:(\d+): error", result.stdout)}
    wrong = {n for n, line in enumerate(ROWS.splitlines(), start=1) if "# wrong" in line}
    assert refused == wrong, result.stdout
