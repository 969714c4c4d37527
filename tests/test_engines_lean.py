"""The hearing models carry only what idle listening needs: openWakeWord imported without its verifier
trainer (no scikit-learn), the raw audio buffer cut to the window the melspectrogram reads, the load-time arena
handed back, the raw mic's voice model sharing the cleaned one's session. None of it may change a score."""

from __future__ import annotations

import subprocess
import sys
from collections import deque
from pathlib import Path

import numpy as np

from device.config import Config, ModelsConfig
from device.engines.aec import EchoCanceller
from device.engines.model_files import verified_model_paths
from device.engines.vad import SileroVad
from device.engines.wakeword import WakeWordDetector
from device.runtime.hearing import CANCEL_AFTER_SAMPLES, Hearing
from device.sim.speech import synthesize
from tests.hearing_fakes import CONFIG, PeakWake, RmsVoice

ROOT = Path(__file__).resolve().parent.parent


def _scores(detector: WakeWordDetector) -> list[float]:
    speech = synthesize("Hey Jarvis. What time is it? Hey Jarvis, tell me a story.", "en-us")
    audio = np.concatenate([np.zeros(16000, np.int16), speech, np.zeros(16000, np.int16)])
    return [detector.score(audio[at : at + 1280]) for at in range(0, len(audio) - 1279, 1280)]


def test_the_cut_raw_buffer_scores_exactly_as_openwakewords_own(models_dir: Path) -> None:
    paths = verified_model_paths(Config(models=ModelsConfig(dir=models_dir)))
    lean = WakeWordDetector(paths.melspec, paths.embedding, paths.wake_head)
    full = WakeWordDetector(paths.melspec, paths.embedding, paths.wake_head)
    full._model.preprocessor.raw_data_buffer = deque(maxlen=16000 * 10)  # openWakeWord's own: 10 s
    assert lean._model.preprocessor.raw_data_buffer.maxlen == 1760
    scores = _scores(lean)
    assert max(scores) > 0.5  # the wake word is in there: the comparison is not of zeros
    assert scores == _scores(full)
    assert _scores(lean.twin()) == scores


def test_spine_imports_openwakeword_without_scikit_learn() -> None:
    probe = "import sys, device.engines.wakeword; print('sklearn' in sys.modules, 'openwakeword.model' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"]


def test_a_voice_model_twin_scores_as_its_own_model_and_keeps_its_own_state(models_dir: Path) -> None:
    paths = verified_model_paths(Config(models=ModelsConfig(dir=models_dir)))
    speech = synthesize("Stop. Please stop now.", "en-us")
    chunks = [speech[at : at + 512] for at in range(0, len(speech) - 511, 512)]
    alone = SileroVad(paths.vad)
    expected = [alone.probability(chunk) for chunk in chunks]
    vad = SileroVad(paths.vad)
    twin = vad.twin()
    silence = np.zeros(512, np.int16)
    # Interleaved with the other on silence: were the state shared, the twin's scores would move.
    got = []
    for chunk in chunks:
        vad.probability(silence)
        got.append(twin.probability(chunk))
    assert max(expected) > 0.5 and got == expected


def test_hearing_rests_the_canceller_once_no_echo_can_sound_and_wakes_it_with_the_first_played_sound() -> None:
    canceller = EchoCanceller()
    hearing = Hearing(RmsVoice(), PeakWake(), CONFIG, canceller)
    mic = np.random.default_rng(1).normal(0.0, 300.0, 4 * 16000).astype(np.int16)
    silence = np.zeros(160, np.int16)
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(160) / 16000)).astype(np.int16)
    rest_from = CANCEL_AFTER_SAMPLES  # the first period after 2 s of played silence
    cleaned, frames_before = [], 0
    for at in range(0, len(mic), 160):
        played = tone if at >= 3 * 16000 else silence
        if at == 3 * 16000:
            frames_before = canceller.frames_processed
        out, _ = hearing.clean(mic[at : at + 160], played)
        cleaned.append(out)
    stream = np.concatenate(cleaned)
    assert canceller.frames_processed == frames_before + 16000 // 160  # it ran again from the first sound only
    assert frames_before == rest_from // 160  # and not while it rested
    # While resting, the mic is heard exactly as it is.
    assert np.array_equal(stream[rest_from : 3 * 16000], mic[rest_from : 3 * 16000])
