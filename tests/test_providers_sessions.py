"""Execution providers on real ONNX Runtime sessions of the real models, and what `spine doctor` says of them.

This machine's onnxruntime is a CPU build. A move off the CPU is tested with the AzureExecutionProvider, which
every such build offers and which hands every node back to the CPU: the same code path a Jetson's CUDA takes
(the library builds its session on the CPU, Spine re-creates it on the chosen providers), without a GPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import device.audio.doctor
from device.cli import main
from device.config import Config, ModelsConfig, VadConfig
from device.engines.model_files import ModelPaths, verified_model_paths
from device.engines.providers import (
    CPU,
    GPU_PROVIDERS,
    available_providers,
    choose_providers,
    session_providers,
)
from device.engines.tts import PiperTts
from device.engines.vad import SileroVad
from device.engines.wakeword import WakeWordDetector
from tests.model_copies import copy_models, flip_one_byte

AZURE = "AzureExecutionProvider"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def paths(models_dir: Path) -> ModelPaths:
    return verified_model_paths(Config(models=ModelsConfig(dir=models_dir)))


@pytest.fixture(scope="module")
def cpu_only_machine() -> None:
    if set(available_providers()) & set(GPU_PROVIDERS):
        pytest.skip("this onnxruntime offers a GPU provider: the CPU-only expectations do not apply")


def azure_then_cpu() -> list[str]:
    if AZURE not in available_providers():
        pytest.skip(f"this onnxruntime does not offer {AZURE}, the stand-in for a GPU provider")
    return [AZURE, CPU]


def test_a_session_asked_for_the_cpu_or_auto_runs_on_the_cpu_here(paths: ModelPaths, cpu_only_machine: None) -> None:
    for wanted in ((CPU,), ("auto",)):
        specs = session_providers(choose_providers(wanted, available_providers()))
        assert SileroVad(paths.vad, specs).session_providers() == {"Silero VAD": (CPU,)}


def test_the_wake_word_moved_off_the_cpu_keeps_its_one_thread_and_its_scores(paths: ModelPaths) -> None:
    moved = WakeWordDetector(paths.melspec, paths.embedding, paths.wake_head, azure_then_cpu())
    on_cpu = WakeWordDetector(paths.melspec, paths.embedding, paths.wake_head)
    head = f"{paths.wake_head.stem} head"
    assert moved.session_providers() == {"melspectrogram": (AZURE, CPU), "embedding": (AZURE, CPU), head: (AZURE, CPU)}
    assert on_cpu.session_providers() == {"melspectrogram": (CPU,), "embedding": (CPU,), head: (CPU,)}
    for session in moved._sessions().values():  # openWakeWord's options survive the move (set_providers)
        options = session.get_session_options()
        assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
    noise = np.random.default_rng(7).normal(0, 3000, 1280 * 12).clip(-32768, 32767).astype(np.int16)
    frames = noise.reshape(12, 1280)
    assert [moved.score(frame) for frame in frames] == [on_cpu.score(frame) for frame in frames]


def test_the_voice_and_the_voice_detector_move_too(paths: ModelPaths) -> None:
    specs = azure_then_cpu()
    vad = SileroVad(paths.vad, specs)
    assert vad.session_providers() == {"Silero VAD": (AZURE, CPU)}
    assert 0.0 <= vad.probability(np.zeros(SileroVad.CHUNK_SAMPLES, dtype=np.int16)) <= 1.0
    voice = PiperTts(paths.voice, paths.voice_config, deterministic=True, providers=specs)
    assert voice.session_providers() == {"Piper voice": (AZURE, CPU)}
    assert len(voice.synthesize("Hello.").audio) > 0


@pytest.fixture
def doctor_without_a_sound_card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`spine doctor` with its own state directory and its sound card checks left out (none here)."""
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    monkeypatch.setattr(device.audio.doctor, "check", lambda *args, **kwargs: [])


def write_config(tmp_path: Path, models: Path, extra: str = "") -> Path:
    path = tmp_path / "spine.toml"
    path.write_text(f'[models]\ndir = "{models}"\n\n{extra}', encoding="utf-8")
    return path


def test_doctor_says_what_onnxruntime_offers_and_what_each_model_runs_on(
    models_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    doctor_without_a_sound_card: None,
    cpu_only_machine: None,
) -> None:
    config = write_config(tmp_path, models_dir)
    assert main(["doctor", "--config", str(config)]) == 0
    import onnxruntime

    offered = ", ".join(available_providers())
    assert capsys.readouterr().out.splitlines()[1:] == [
        f"✓ onnxruntime {onnxruntime.__version__} offers {offered} (no GPU provider: every model runs on the CPU)",
        '✓ [vad] providers = ["CPUExecutionProvider"]: Silero VAD runs on CPUExecutionProvider',
        '✓ [wake] providers = ["CPUExecutionProvider"]: melspectrogram, embedding and hey_jarvis_v0.1 head run on '
        "CPUExecutionProvider",
        '✓ [tts] providers = ["auto"]: Piper voice runs on CPUExecutionProvider',
    ]


def test_doctor_fails_a_gpu_asked_for_and_not_there_with_the_fix(
    models_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    doctor_without_a_sound_card: None,
    cpu_only_machine: None,
) -> None:
    config = write_config(tmp_path, models_dir, '[tts]\nproviders = ["CUDAExecutionProvider"]\n')
    assert main(["doctor", "--config", str(config)]) == 1
    lines = capsys.readouterr().out.splitlines()
    failed = lines.index('✗ [tts] providers = ["CUDAExecutionProvider"]: Piper voice runs on CPUExecutionProvider')
    assert lines[failed + 1] == (
        "    fix: this onnxruntime does not offer CUDAExecutionProvider. On a Jetson, install onnxruntime-gpu from "
        "NVIDIA's Jetson index (docs/jetson.md), or set `[tts] providers` to what it offers"
    )


def test_doctor_with_a_damaged_model_does_not_load_the_models(
    models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], doctor_without_a_sound_card: None
) -> None:
    models = copy_models(models_dir, tmp_path / "models")
    flip_one_byte(models / "vad" / "silero_vad.onnx")
    assert main(["doctor", "--config", str(write_config(tmp_path, models))]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == (
        "✗ not checked which execution provider each model runs on: the model files must be fixed first"
    )
    assert lines[-2].startswith("✓ onnxruntime ")


def test_spine_run_warns_once_per_section_and_runs_on_the_cpu(
    models_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str], cpu_only_machine: None
) -> None:
    """`load_engines`, as `spine run` calls it: two voice detectors and two wake word detectors, one warning."""
    from device.engines.load import load_engines

    config = Config(
        models=ModelsConfig(dir=models_dir),
        vad=VadConfig(providers=("CUDAExecutionProvider", "CPUExecutionProvider")),
    )
    engines = load_engines(config)
    err = capfd.readouterr().err
    assert err.count("spine: warning: ") == 1, err
    assert err.startswith("spine: warning: `[vad] providers` asks for CUDAExecutionProvider, which this onnxruntime")
    assert engines.vad.session_providers() == engines.raw_vad.session_providers() == {"Silero VAD": (CPU,)}


def test_spine_doctor_the_command_prints_the_provider_lines(models_dir: Path, tmp_path: Path) -> None:
    """The real command, sound card and all (here there may be none: that check fails, the others still print)."""
    env = {**os.environ, "SPINE_MODELS_DIR": str(models_dir), "STATE_DIRECTORY": str(tmp_path / "state")}
    done = subprocess.run(
        [sys.executable, "-m", "device", "doctor"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert done.returncode in (0, 1), done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("✓ onnxruntime ") and " offers " in line for line in lines), done.stdout
    for section, model in (("vad", "Silero VAD"), ("wake", "head run"), ("tts", "Piper voice")):
        assert any(line[2:].startswith(f"[{section}] providers = ") and model in line for line in lines), done.stdout
