"""An xrun soon after the start-up sound must not cost the user their first request.

Seen on CI (a real `spine run` on a PulseAudio null sink at 0 dB coupling): the card reported one underrun while
the user said "Hey Jarvis. Tell me a story." just after the start-up sound. The wake word was heard, but the
request was not: after an xrun no voice is believed while the assistant's echo may still sound, and the start-up
sound's echo counted until 2 s after it ended, which covered the whole request; the listening window closed. The
start-up sound is bells on soft noise, not speech (device/engines/earcon.py): its echo, at whatever delay, is no
voice to take for the user. Here the same moment in the simulated room (real models, virtual time), the xrun a
reported `[[room.delay_jumps]]` entry: told to hearing as the card tells it, before hearing hears its period."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from device.config import Config, load_config
from device.engines.load import Engines, load_engines
from device.runtime.fsm_thread import FsmThread
from device.sim.clocks import VirtualTime
from device.sim.demo import Rig
from device.sim.scene import DelayJump, RoomSpec, Say, Scene

USER_AT_S = 1.3
"""Just after the start-up sound (1.2 s), as the test of `spine run` speaks once it has drained."""
REQUEST = "Hey Jarvis. Tell me a story."
# The null sink's room: the echo is the speaker's sound itself, 30 ms late, no reverberation to speak of.
NULL_SINK_ROOM = RoomSpec(echo_delay_ms=30.0, echo_gain_db=0.0, rt60_s=0.05, noise_dbfs=-80.0, seed=7)


@pytest.fixture(scope="module")
def config(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Config:
    path = tmp_path_factory.mktemp("xrun_after_startup") / "spine.toml"
    path.write_text(f'[models]\ndir = "{models_dir}"\n')
    return load_config(path)


@pytest.fixture(scope="module")
def engines(config: Config) -> Engines:
    return load_engines(config, deterministic=True)


def run_request(
    config: Config, engines: Engines, log: Path, xrun_at_s: float | None, moved_ms: float
) -> list[tuple[str, str, str]]:
    """The scene with an xrun reported at `xrun_at_s` (None: none) that moved the echo by `moved_ms`: each step of
    its log as (event type, its text if any, the state it led to)."""
    for detector in (engines.vad, engines.wake, engines.own_wake):  # streaming state of the previous rig
        detector.reset()
    xruns = () if xrun_at_s is None else (DelayJump(at_s=xrun_at_s, ms=moved_ms, reported=True),)
    room = replace(NULL_SINK_ROOM, delay_jumps=xruns)
    scene = Scene(room=room, say=(Say(REQUEST, at_s=USER_AT_S),), duration_s=10.0)
    rig = Rig(config, scene, engines, log, "virtual")
    clock = VirtualTime(rig, scene)
    FsmThread(rig, clock, clock).run("end of scene")
    steps, event = [], {}
    for line in log.read_text(encoding="utf-8").splitlines()[1:]:
        record = json.loads(line)
        if "event" in record:
            event = record["event"]
        elif "state" in record:
            steps.append((str(event["type"]), str(event.get("text", "")), str(record["state"])))
    return steps


@pytest.mark.parametrize(
    ("xrun_at_s", "moved_ms"), [(None, 0.0), (1.0, 0.0), (1.5, 0.0), (2.2, 0.0), (1.5, 40.0), (2.2, -20.0)]
)
def test_the_request_after_the_start_up_sound_is_heard_whatever_xrun_came_around_it(
    config: Config, engines: Engines, tmp_path: Path, xrun_at_s: float | None, moved_ms: float
) -> None:
    # None: no xrun; 1.0: during the start-up sound; 1.5: in the wake word; 2.2: at its end, before the request;
    # each leaving the echo where it was, or moving it (an underrun's period dropped or repeated).
    steps = run_request(config, engines, tmp_path / "events.jsonl", xrun_at_s, moved_ms)
    assert ("AudioXrun" in [kind for kind, _, _ in steps]) == (xrun_at_s is not None)  # the card's report, logged
    states = [state for _, _, state in steps]
    transcripts = [text for kind, text, _ in steps if kind == "TranscriptReady"]
    assert "Listening" in states and "Hearing" in states, steps
    assert len(transcripts) == 1 and "story" in transcripts[0].lower(), transcripts
    assert "Speaking" in states[states.index("Hearing") :]  # and it answered
