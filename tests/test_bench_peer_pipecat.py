"""The comparison with pipecat (device/bench/peer_pipecat.py) with the real pipecat, in its own venv: made once in
$SPINE_PEER_VENV or out/peer-venv (pip needs PyPI the first time), reused after.

Two cases built here from espeak-ng speech: speech after silence, where pipecat's VAD must switch to speaking
once its 0.2 s of speech have been heard and not before the speech; and a talked-over answer laid out as an echo
suite run (mic, cleaned, speaker, event log, summary), where pipecat on the raw mic cuts its own answer on the
echo before the user speaks and on an ideally cleaned mic interrupts for the user alone.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from device.bench.peer_pipecat import (
    PIPECAT_VERSION,
    answers_played,
    compare_echo_suite,
    ensure_peer_venv,
    peer_venv_path,
    run_pipecat_vad,
)
from device.config import Config, core_config
from device.core import commands as cmd
from device.core import events as ev
from device.rates import SPINE_RATE_HZ as RATE_HZ
from device.runtime.eventlog import EventLog, read_log
from device.sim.speech import synthesize

pytestmark = pytest.mark.slow

NOISE_DBFS = -60.0
SPEECH_LEVEL = 300
"""A sample above this (-41 dBFS) is speech: where espeak-ng's leading silence ends."""


@pytest.fixture(scope="module")
def peer_python() -> Path:
    return ensure_peer_venv(peer_venv_path())


def _noise(samples: int, seed: int) -> npt.NDArray[np.float64]:
    return np.random.default_rng(seed).normal(0.0, 32768 * 10 ** (NOISE_DBFS / 20), samples)


def _write_wav(path: Path, audio: npt.NDArray[np.float64]) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE_HZ)
        out.writeframes(np.clip(np.rint(audio), -32768, 32767).astype("<i2").tobytes())
    return path


def _speech(text: str, voice: str) -> tuple[npt.NDArray[np.float64], int, int]:
    """espeak-ng's `text`, the sample its voice starts at and the one after it ends."""
    audio = synthesize(text, voice, rate_hz=RATE_HZ).astype(np.float64)
    loud = np.flatnonzero(np.abs(audio) > SPEECH_LEVEL)
    return audio, int(loud[0]), int(loud[-1]) + 1


def test_pipecat_starts_speaking_after_the_onset_once_its_start_time_is_heard(
    peer_python: Path, tmp_path: Path
) -> None:
    speech, lead_samples, last_samples = _speech("Could you tell me what the weather will be like tomorrow", "en-us")
    quiet_samples = round(1.5 * RATE_HZ)
    audio = np.concatenate([np.zeros(quiet_samples), speech, np.zeros(RATE_HZ)])
    wav = _write_wav(tmp_path / "speech.wav", audio + _noise(len(audio), seed=1))
    onset_s = (quiet_samples + lead_samples) / RATE_HZ
    end_s = (quiet_samples + last_samples) / RATE_HZ

    vad = run_pipecat_vad(peer_python, [wav])

    assert vad.version == PIPECAT_VERSION
    assert vad.vad_params == {"confidence": 0.7, "start_secs": 0.2, "stop_secs": 0.2, "min_volume": 0.6}
    assert (vad.input_chunk_ms, vad.output_chunk_ms) == (20.0, 40.0)
    starts_s, stops_s = vad.starts_s[wav], vad.stops_s[wav]
    # start_secs: six 32 ms windows in a row must score speech, and the smoothed volume must rise past 0.6.
    assert onset_s + 0.18 <= starts_s[0] <= onset_s + 0.6, (onset_s, starts_s)
    assert all(onset_s < t < end_s for t in starts_s), (onset_s, end_s, starts_s)
    assert len(stops_s) == len(starts_s) and end_s < stops_s[-1] <= end_s + 0.6, (end_s, stops_s)


def _scene_run(run: Path) -> dict[str, float]:
    """An echo-suite run directory: an answer from 1 s, talked over at 3 s and cut 0.2 s later, as Spine would.
    The mic holds the answer's echo (50 ms late, 6 dB below the user), the user and noise; `cleaned` is a perfect
    canceller's output (the user and the noise)."""
    run.mkdir(parents=True)
    answer, _, _ = _speech(
        "Once upon a time there was a lighthouse keeper who lived alone on a rocky island far out at sea", "en-us"
    )
    user, user_lead, user_end = _speech("Stop talking please", "en-gb")
    total = 8 * RATE_HZ
    answer_from, onset, echo_delay = 1 * RATE_HZ, 3 * RATE_HZ - user_lead, round(0.05 * RATE_HZ)
    cut = onset + user_lead + round(0.2 * RATE_HZ)
    speaker = np.zeros(total)
    speaker[answer_from:cut] = answer[: cut - answer_from]
    echo = np.zeros(total)
    echo[echo_delay:] = 0.5 * speaker[:-echo_delay]
    voice = np.zeros(total)
    voice[onset : onset + len(user)] = user
    noise = _noise(total, seed=2)
    _write_wav(run / "speaker.wav", speaker)
    _write_wav(run / "mic.wav", echo + voice + noise)
    _write_wav(run / "cleaned.wav", voice + noise)
    log = EventLog(run / "events.jsonl", core_config(Config()))
    opened = answer_from - 160
    log.event(opened, ev.Started())
    log.outcome(opened, "Speaking", (cmd.OpenPlayback(epoch=1, turn=1),))
    log.event(cut, ev.PlaybackStopped(epoch=1, played_samples=cut - answer_from))
    log.outcome(cut, "Hearing", ())
    log.close()
    onset_s, end_s = (onset + user_lead) / RATE_HZ, (onset + user_end) / RATE_HZ
    talk = {"text": "Stop talking please", "onset_s": onset_s, "duration_s": end_s - onset_s, "epoch": 1}
    talk |= {"into_answer_s": onset_s - answer_from / RATE_HZ, "echo_to_user_db": -6.0, "interrupted": True}
    talk |= {"honoured": True, "onset_to_silence_ms": round((cut - onset - user_lead) * 1000 / RATE_HZ, 1)}
    summary = {
        "assistant_speech_s": (cut - answer_from) / RATE_HZ,
        "false_barge_ins": 0,
        "utterances": [{"text": talk["text"], "start_s": onset_s, "end_s": end_s}],
        "interruptions": {"talk_overs": [talk], "self_interruptions_s": []},
    }
    (run / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return {"answer_s": answer_from / RATE_HZ, "onset_s": onset_s, "cut_s": cut / RATE_HZ}


def test_pipecat_cuts_its_answer_on_the_raw_echo_and_hears_the_user_once_it_is_cancelled(
    peer_python: Path, tmp_path: Path
) -> None:
    run = tmp_path / "suite" / "talked_over" / "aec"
    times = _scene_run(run)
    with wave.open(str(run / "speaker.wav"), "rb") as source:
        speaker = np.frombuffer(source.readframes(source.getnframes()), "<i2").astype(np.int16)
    (answer,) = answers_played(read_log(run / "events.jsonl").steps, speaker)
    assert times["answer_s"] <= answer.start_s <= times["answer_s"] + 0.2
    assert times["cut_s"] - 0.05 <= answer.end_s <= times["cut_s"]

    result = compare_echo_suite(tmp_path / "suite", peer_python, say=lambda _: None)

    assert result["pipecat"]["version"] == PIPECAT_VERSION
    (scene,) = result["scenes"]
    assert scene["answers"] == 1
    # Raw mic: pipecat's VAD takes the answer's echo for the user before the user speaks, and cuts its answer.
    raw_false = scene["false_barge_ins_s"]["raw"]
    assert raw_false and all(times["answer_s"] < t < times["onset_s"] for t in raw_false), raw_false
    assert scene["talk_overs"][0]["raw"]["outcome"] == "preempted"
    assert result["raw"]["false_barge_ins"] == len(raw_false) and result["raw"]["preempted"] == 1
    assert scene["answers_falsely_cut"] == {"spine": 0, "raw": 1, "cleaned": 0}
    # Cleaned mic: no false start, and the talk-over interrupts 0.2-0.6 s after the onset, plus the 40 ms chunk.
    cleaned = scene["talk_overs"][0]["cleaned"]
    assert scene["false_barge_ins_s"]["cleaned"] == []
    assert cleaned["outcome"] == "interrupted", cleaned
    assert 180.0 <= cleaned["onset_to_decision_ms"] <= 600.0, cleaned
    assert cleaned["onset_to_silence_ms"] == pytest.approx(cleaned["onset_to_decision_ms"] + 40.0)
    assert result["cleaned"]["onset_to_silence_ms"]["p50"] == cleaned["onset_to_silence_ms"]
    assert result["cleaned"]["missed"] == 0 and result["cleaned"]["false_barge_ins_per_hour"] == 0.0
    assert result["spine"]["onset_to_silence_ms"]["p50"] == 200.0
