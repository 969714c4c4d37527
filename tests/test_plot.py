"""`timeline.png` from a synthetic run directory: a real PNG of the promised size, with something drawn on it."""

from __future__ import annotations

import json
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from device.errors import UserError
from device.sim.plot import DPI, FIG_SIZE_IN, render_timeline
from device.sim.plot_data import Label, Step, Wave, envelope, place_labels, read_wave, state_spans

RATE_HZ = 16000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# (time s, event, state after, commands): two turns, the second one cut by the user talking over the reply.
STEPS: list[tuple[float, dict[str, Any], str, list[dict[str, Any]]]] = [
    (1.00, {"type": "WakeDetected", "model": "hey_jarvis", "score": 0.93, "at_sample": 16000}, "Listening",
     [{"type": "StartTimer", "kind": "listen", "ref": 1, "due_sample": 144000}]),
    (1.75, {"type": "SpeechStarted", "onset_sample": 24800}, "Hearing",
     [{"type": "CancelTimer", "kind": "listen", "ref": 1}]),
    (3.40, {"type": "SpeechEnded", "end_sample": 51200}, "Transcribing",
     [{"type": "StartAsr", "turn": 1, "from_sample": 20000, "to_sample": 51200}]),
    (3.80, {"type": "TranscriptReady", "turn": 1, "text": "what is the weather like tomorrow"}, "Thinking",
     [{"type": "StartReply", "turn": 1, "prompt": "what is the weather like tomorrow", "history": []}]),
    (4.20, {"type": "TtsChunkReady", "turn": 1, "seq": 0, "text": "Tomorrow will be sunny.", "samples": 40000,
            "word_end_samples": [8000, 16000, 24000, 40000]}, "Speaking",
     [{"type": "OpenPlayback", "epoch": 1, "turn": 1}, {"type": "QueuePlayback", "epoch": 1, "turn": 1, "seq": 0}]),
    (4.30, {"type": "ReplyFinished", "turn": 1}, "Speaking", [{"type": "FinishPlayback", "epoch": 1}]),
    (6.70, {"type": "PlaybackDrained", "epoch": 1, "played_samples": 40000}, "Idle",
     [{"type": "CommitHeard", "turn": 1, "reply_text": "Tomorrow will be sunny.",
       "heard_text": "Tomorrow will be sunny.", "interrupted": False}]),
    (8.00, {"type": "WakeDetected", "model": "hey_jarvis", "score": 0.88, "at_sample": 128000}, "Listening", []),
    (8.60, {"type": "SpeechStarted", "onset_sample": 136500}, "Hearing", []),
    (10.2, {"type": "SpeechEnded", "end_sample": 162500}, "Transcribing", []),
    (10.6, {"type": "TranscriptReady", "turn": 2, "text": "tell me a long story about dragons"}, "Thinking", []),
    (11.0, {"type": "TtsChunkReady", "turn": 2, "seq": 0, "text": "Once upon a time", "samples": 96000,
            "word_end_samples": []}, "Speaking", [{"type": "OpenPlayback", "epoch": 2, "turn": 2}]),
    (13.45, {"type": "SpeechStarted", "onset_sample": 212800}, "Stopping",
     [{"type": "CutPlayback", "epoch": 2}, {"type": "CancelTurn", "turn": 2}]),
    (13.47, {"type": "PlaybackStopped", "epoch": 2, "played_samples": 39000}, "Hearing",
     [{"type": "CommitHeard", "turn": 2, "reply_text": "Once upon a time there was a dragon who",
       "heard_text": "Once upon a time there", "interrupted": True}]),
    (14.6, {"type": "SpeechEnded", "end_sample": 232000}, "Transcribing", []),
    (15.0, {"type": "TranscriptReady", "turn": 3, "text": "stop"}, "Thinking", []),
    (15.3, {"type": "ReplyFinished", "turn": 3}, "Idle", [{"type": "NoteIgnored", "reason": "empty reply"}]),
]  # fmt: skip

UTTERANCES = [
    (1.55, 3.20, "what is the weather like tomorrow"),
    (8.50, 10.1, "tell me a long story about dragons"),
    (13.3, 14.5, "stop"),
]
SPEAKING = [(4.25, 6.75), (11.05, 13.47)]
BARGE_IN = {"truth_onset_s": 13.3, "decision_s": 13.45, "cut_s": 13.47, "onset_to_silence_ms": 170.0}
DURATION_S = 16.0


def voice(duration_s: float, rng: np.random.Generator, level: float) -> npt.NDArray[np.float64]:
    """Noise with a ~4 Hz syllable envelope: looks like speech in a waveform plot, which is all we need."""
    t = np.arange(round(duration_s * RATE_HZ)) / RATE_HZ
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6)), 0.0, None) ** 0.7
    return level * syllables * rng.standard_normal(t.size)


def write_wav(path: Path, signal: npt.NDArray[np.float64]) -> None:
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(RATE_HZ)
        writer.writeframes(np.clip(signal, -32768, 32767).astype("<i2").tobytes())


def write_run(out_dir: Path) -> Path:
    """A run directory laid out as `spine demo` leaves it."""
    rng = np.random.default_rng(0)
    total = round(DURATION_S * RATE_HZ)
    speaker = np.zeros(total)
    for start_s, end_s in SPEAKING:
        start = round(start_s * RATE_HZ)
        speaker[start : start + round((end_s - start_s) * RATE_HZ)] = voice(end_s - start_s, rng, 6000)
    mic = 0.25 * speaker + rng.standard_normal(total) * 60  # echo of the speaker plus the room's noise
    for start_s, end_s, _ in UTTERANCES:
        start = round(start_s * RATE_HZ)
        mic[start : start + round((end_s - start_s) * RATE_HZ)] += voice(end_s - start_s, rng, 4000)
    write_wav(out_dir / "speaker.wav", speaker)
    write_wav(out_dir / "mic.wav", mic)

    lines = [{"spine_log": 1, "core_config": {"rate_hz": RATE_HZ}}]
    for t_s, event, state, commands in STEPS:
        t = round(t_s * RATE_HZ)
        lines += [{"t": t, "event": event}, {"t": t, "state": state, "commands": commands}]
    (out_dir / "events.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")

    summary = {
        "utterances": [{"text": text, "start_s": start, "end_s": end} for start, end, text in UTTERANCES],
        "turns": [
            {"turn": 1, "transcript": "what is the weather like tomorrow", "reply_text": "Tomorrow will be sunny.",
             "heard_text": "Tomorrow will be sunny.", "interrupted": False},
            {"turn": 2, "transcript": "tell me a long story about dragons", "reply_text": "Once upon a time",
             "heard_text": "Once upon a time there", "interrupted": True},
        ],
        "barge_ins": [BARGE_IN],
        "duration_s": DURATION_S,
        "clock": "virtual",
    }  # fmt: skip
    (out_dir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return out_dir


def test_renders_a_png_of_the_promised_size_with_something_on_it(tmp_path: Path) -> None:
    import matplotlib.image

    path = render_timeline(write_run(tmp_path))

    assert path == tmp_path / "timeline.png"
    assert path.read_bytes()[:8] == PNG_MAGIC
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (round(FIG_SIZE_IN[1] * DPI), round(FIG_SIZE_IN[0] * DPI))
    assert float(np.var(pixels[..., :3])) > 0.0


def test_a_minute_of_audio_renders_quickly(tmp_path: Path) -> None:
    write_run(tmp_path)
    rng = np.random.default_rng(1)
    for name in ("mic.wav", "speaker.wav"):
        write_wav(tmp_path / name, rng.standard_normal(60 * RATE_HZ) * 3000)
    render_timeline(tmp_path)  # the first call pays for importing matplotlib and loading fonts

    started = time.perf_counter()
    render_timeline(tmp_path)
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("missing", ["events.jsonl", "mic.wav", "speaker.wav", "summary.json"])
def test_a_missing_input_names_the_file(tmp_path: Path, missing: str) -> None:
    (write_run(tmp_path) / missing).unlink()

    with pytest.raises(UserError) as raised:
        render_timeline(tmp_path)
    assert missing in str(raised.value)
    assert not (tmp_path / "timeline.png").exists()


def test_a_malformed_log_line_names_the_file_and_line(tmp_path: Path) -> None:
    log = write_run(tmp_path) / "events.jsonl"
    log.write_text(log.read_text(encoding="utf-8") + "{not json\n", encoding="utf-8")

    with pytest.raises(UserError, match=r"events\.jsonl:36"):
        render_timeline(tmp_path)


def test_a_record_without_its_fields_names_the_file_and_line(tmp_path: Path) -> None:
    log = write_run(tmp_path) / "events.jsonl"
    log.write_text(log.read_text(encoding="utf-8") + '{"event": {"type": "StopRequested"}}\n', encoding="utf-8")

    with pytest.raises(UserError, match=r"events\.jsonl:36: bad record"):
        render_timeline(tmp_path)


def test_a_log_cut_short_by_a_crash_still_renders(tmp_path: Path) -> None:
    log = write_run(tmp_path) / "events.jsonl"
    lines = log.read_text(encoding="utf-8").splitlines()
    log.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")  # the last event, without its outcome

    assert render_timeline(tmp_path).exists()


def test_state_spans_start_idle_merge_repeats_and_reach_the_end() -> None:
    steps = tuple(Step(t, {}, state, ()) for t, state in [(1.0, "Listening"), (2.0, "Hearing"), (3.0, "Hearing")])

    assert state_spans(steps, 5.0) == [(0.0, 1.0, "Idle"), (1.0, 2.0, "Listening"), (2.0, 5.0, "Hearing")]


def test_envelope_keeps_the_extremes_of_every_column() -> None:
    samples = np.zeros(16000, dtype=np.float32)
    samples[123], samples[15999] = 0.9, -0.7

    time_s, low, high = envelope(Wave(samples, 16000), columns=100)

    assert time_s.size == low.size == high.size == 100
    assert float(high.max()) == pytest.approx(0.9) and float(low.min()) == pytest.approx(-0.7)


def test_labels_that_would_overlap_go_to_the_next_row() -> None:
    labels = [Label(0.0, "a" * 10), Label(0.5, "b" * 10), Label(5.0, "c" * 10)]

    rows = [row for _, row in place_labels(labels, seconds_per_char=0.1, rows=2, end_s=100.0)]

    assert rows == [0, 1, 0]


def test_read_wave_scales_int16_to_full_scale(tmp_path: Path) -> None:
    write_wav(tmp_path / "x.wav", np.array([0.0, 16384.0, -32768.0]))

    assert read_wave(tmp_path / "x.wav").samples.tolist() == [0.0, 0.5, -1.0]
