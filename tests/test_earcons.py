"""Earcons with the real models: the mic is not fooled by its own chime, and the chime does not deafen a user
who talks on over it. The loud cases: the simulated room couples the speaker to the mic at 0 dB (the echo is
as loud as what was played), before and after the echo canceller has converged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from device.config import VadConfig
from device.core import commands as cmd
from device.core import events as ev
from device.engines.asr import WhisperAsr
from device.engines.earcon import DEFAULT_LEVEL_DBFS, EARCON_KINDS, earcon, earcon_seconds
from device.engines.vad import SileroVad
from device.runtime.eventlog import LoggedStep, read_log
from device.sim.room import EchoPath, RoomNoise
from device.sim.scene import RoomSpec
from tests.test_demo_e2e import run_demo

LOUD_ROOM = "[room]\necho_gain_db = 0.0\nrt60_s = 0.4\nnoise_dbfs = -55.0\n"


def test_every_chime_has_its_length_its_level_and_the_same_samples_each_time() -> None:
    for kind in EARCON_KINDS:
        chime = earcon(kind)
        assert len(chime) == round(earcon_seconds(kind) * 16000)
        peak_dbfs = 20 * np.log10(np.abs(chime.astype(np.int32)).max() / 32767)
        assert abs(peak_dbfs - DEFAULT_LEVEL_DBFS) < 0.1
        assert np.array_equal(chime, earcon(kind))
        assert np.abs(chime[-16:].astype(np.int32)).max() < 0.03 * np.abs(chime.astype(np.int32)).max()  # no click
    assert earcon_seconds("wake") <= 0.2  # short: a user who talks on is not talked over for long
    with pytest.raises(ValueError, match="unknown earcon 'ding': expected one of wake, timeout, mute, unmute, startup"):
        earcon("ding")


def echoed(chime: np.ndarray[Any, np.dtype[np.int16]], gain_db: float, rt60_s: float) -> np.ndarray[Any, Any]:
    room = RoomSpec(echo_delay_ms=40.0, echo_gain_db=gain_db, rt60_s=rt60_s, noise_dbfs=-55.0, seed=3)
    played = np.concatenate([np.zeros(1600, np.int16), chime, np.zeros(8000, np.int16)])
    mic = EchoPath(room, 16000).process(played) + RoomNoise(-55.0, 3).next(len(played))
    heard: np.ndarray[Any, Any] = np.clip(mic, -32768, 32767).astype(np.int16)
    return heard


@pytest.mark.slow
@pytest.mark.parametrize("gain_db", [0.0, 6.0])
def test_the_voice_model_and_speech_to_text_take_no_chime_for_speech(models_dir: Path, gain_db: float) -> None:
    vad = SileroVad(models_dir / "vad" / "silero_vad.onnx")
    asr = WhisperAsr(models_dir / "asr" / "ggml-tiny.en.bin")
    for kind in EARCON_KINDS:
        for rt60_s in (0.2, 0.6):
            mic = echoed(earcon(kind), gain_db, rt60_s)
            vad.reset()
            chunks = range(0, len(mic) - 511, 512)
            highest = max(vad.probability(mic[i : i + 512]) for i in chunks)
            # Below the threshold at which a chunk stops counting as silence: not even the start of a hint.
            assert highest < VadConfig().off_threshold, (kind, rt60_s, highest)
            # The mute chime plays with the microphone off. The start-up sound's soft noise (there for the echo
            # model) makes whisper write words ("What the heck?") when it alone is transcribed; it never is: it
            # plays once at start, in Idle, and the voice model above does not take it for speech.
            if kind not in ("mute", "startup"):
                assert asr.transcribe(mic) == "", (kind, rt60_s)


def scene_run(tmp_path: Path, models_dir: Path, scene: str, name: str) -> tuple[dict[str, Any], list[LoggedStep]]:
    path = tmp_path / f"scene_{name}.toml"
    path.write_text(scene)
    out = tmp_path / name
    summary = run_demo(out, models_dir, "--scene", str(path))
    return summary, list(read_log(out / "events.jsonl").steps)


def chimes(steps: list[LoggedStep]) -> list[tuple[int, str]]:
    return [(s.t, c.kind) for s in steps for c in s.commands if isinstance(c, cmd.PlayEarcon)]


@pytest.mark.slow
def test_a_wake_word_and_then_nothing_chimes_twice_and_hears_no_speech(tmp_path: Path, models_dir: Path) -> None:
    scene = LOUD_ROOM + '[[say]]\ntext = "Hey Jarvis."\nat_s = 1.0\n'
    summary, steps = scene_run(tmp_path, models_dir, scene, "wake_only")
    assert [kind for _, kind in chimes(steps)] == ["startup", "wake", "timeout"]
    wake_at = next(s.t for s in steps if isinstance(s.event, ev.WakeDetected))
    # The wake chime (at 0 dB, before the canceller converged) rang in the open listening window: no speech.
    assert not [s for s in steps if s.t > wake_at and isinstance(s.event, ev.SpeechStarted | ev.VoiceHint)]
    assert not [c for s in steps for c in s.commands if isinstance(c, cmd.StartAsr)]
    assert summary["states"] == ["Idle", "Listening", "Idle", "Stopping"]
    assert summary["earcons"]["played"] == ["startup", "wake", "timeout"]
    assert summary["false_barge_ins"] == 0 and summary["interruptions"]["talk_overs"] == []


@pytest.mark.slow
def test_a_user_who_talks_on_over_the_wake_chime_is_heard_from_the_first_word(tmp_path: Path, models_dir: Path) -> None:
    # Before the canceller converged (its start-up suppressor once took "What" away: "Time is it?"), and after
    # (a story at 0 dB first, stopped; the canceller then removes the chime).
    scenes = {
        "before_convergence": LOUD_ROOM + '[[say]]\ntext = "Hey Jarvis, what time is it?"\nat_s = 1.0\n',
        "after_convergence": LOUD_ROOM
        + '[[say]]\ntext = "Hey Jarvis. Tell me a story."\nat_s = 1.0\n'
        + '[[say]]\ntext = "Stop."\nafter = "speaking"\ndelay_s = 9.0\n'
        + '[[say]]\ntext = "Hey Jarvis, what time is it?"\nat_s = 17.0\n',
    }
    for name, scene in scenes.items():
        summary, steps = scene_run(tmp_path, models_dir, scene, name)
        asked = summary["utterances"][-1]
        wake_chimes = [t for t, kind in chimes(steps) if kind == "wake" and t > asked["start_s"] * 16000]
        assert wake_chimes, name
        assert wake_chimes[0] < asked["end_s"] * 16000, name  # the chime rang while the user was still talking
        assert summary["turns"][-1]["transcript"] == "What time is it?", (name, summary["turns"][-1])
        converged = summary["aec"]["converged_at_s"]
        if name == "before_convergence":
            assert converged is None or converged > asked["end_s"]
        else:
            assert converged is not None and converged < asked["start_s"]
        assert summary["false_barge_ins"] == 0, name
        print(name, json.dumps(summary["turns"][-1]["transcript"]), "chime at", wake_chimes[0] / 16000)
