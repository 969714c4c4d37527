"""Choosing ONNX Runtime execution providers (device/engines/providers.py) and the `providers` settings that ask
for them: pure, with the available providers given as input (no GPU is needed to test a Jetson's choice)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from device.config import Config, load_config
from device.config_cli import default_toml
from device.engines.providers import (
    CPU,
    CUDA,
    TENSORRT,
    OnnxModel,
    ProviderChoice,
    choose_providers,
    move_session,
    prepared,
    session_providers,
    tensorrt_cache_dir,
)
from device.errors import UserError

CPU_BUILD = ("AzureExecutionProvider", CPU)
"""What the PyPI `onnxruntime` wheel offers (x86 and the Pi's aarch64)."""
JETSON = (TENSORRT, CUDA, CPU)
"""What NVIDIA's onnxruntime-gpu wheels for JetPack offer."""
CUDA_ONLY = (CUDA, CPU)


@pytest.mark.parametrize(
    ("available", "providers"),
    [
        pytest.param(CPU_BUILD, (CPU,), id="cpu-build"),
        pytest.param(JETSON, (CUDA, CPU), id="jetson-not-tensorrt"),
        pytest.param(CUDA_ONLY, (CUDA, CPU), id="cuda"),
        pytest.param((TENSORRT,), (CPU,), id="tensorrt-only-is-not-auto"),
        pytest.param((), (CPU,), id="nothing-listed"),
    ],
)
def test_auto_takes_cuda_when_offered_and_always_the_cpu(
    available: tuple[str, ...], providers: tuple[str, ...]
) -> None:
    choice = choose_providers(("auto",), available)
    assert choice.providers == providers
    assert choice.missing == ()
    assert choice.missing_warning("tts") is None


def test_named_providers_keep_the_users_order_and_end_with_the_cpu() -> None:
    assert choose_providers((TENSORRT, CUDA), JETSON).providers == (TENSORRT, CUDA, CPU)
    assert choose_providers((CUDA, TENSORRT), JETSON).providers == (CUDA, TENSORRT, CPU)
    assert choose_providers((TENSORRT, CUDA, CPU), JETSON).providers == (TENSORRT, CUDA, CPU)
    assert choose_providers((CPU,), JETSON).providers == (CPU,)
    assert choose_providers((TENSORRT,), JETSON).providers == (TENSORRT, CPU)


def test_a_provider_not_offered_is_skipped_and_named_in_a_warning() -> None:
    choice = choose_providers((TENSORRT, CUDA, CPU), CPU_BUILD)
    assert choice.providers == (CPU,)
    assert choice.missing == (TENSORRT, CUDA)
    warning = choice.missing_warning("wake")
    assert warning is not None
    assert warning.startswith(
        "`[wake] providers` asks for TensorrtExecutionProvider, CUDAExecutionProvider, which this onnxruntime "
        "does not offer (it offers AzureExecutionProvider, CPUExecutionProvider): the [wake] models run on "
        "CPUExecutionProvider."
    )
    assert "onnxruntime-gpu" in warning and "docs/jetson.md" in warning

    partly = choose_providers((TENSORRT, CUDA), CUDA_ONLY)
    assert (partly.providers, partly.missing) == ((CUDA, CPU), (TENSORRT,))


def test_a_gpu_provider_chosen_but_not_registered_is_said() -> None:
    choice = choose_providers((CUDA,), CUDA_ONLY)
    assert choice.unused_warning("tts", (CUDA, CPU)) is None
    warning = choice.unused_warning("tts", (CPU,))
    assert warning is not None
    assert warning.startswith("ONNX Runtime could not start CUDAExecutionProvider for the [tts] models")
    assert "they run on CPUExecutionProvider" in warning
    assert choose_providers(("auto",), CPU_BUILD).unused_warning("tts", (CPU,)) is None


def test_a_model_of_several_sessions_uses_what_all_of_them_registered() -> None:
    choice = choose_providers((CUDA,), CUDA_ONLY)
    all_on_gpu = OnnxModel("wake", choice, {"melspectrogram": (CUDA, CPU), "head": (CUDA, CPU)})
    assert all_on_gpu.used == (CUDA, CPU)
    assert all_on_gpu.unused_warning() is None
    one_fell_back = OnnxModel("wake", choice, {"melspectrogram": (CUDA, CPU), "head": (CPU,)})
    assert one_fell_back.used == (CPU,)
    assert one_fell_back.unused_warning() is not None


def test_session_providers_carry_the_options_spine_sets(tmp_path: Path) -> None:
    choice = ProviderChoice(wanted=(TENSORRT, CUDA), available=JETSON, providers=(TENSORRT, CUDA, CPU), missing=())
    assert session_providers(choice, cache_dir=tmp_path / "trt") == [
        (TENSORRT, {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(tmp_path / "trt")}),
        (CUDA, {"cudnn_conv_algo_search": "HEURISTIC"}),
        CPU,
    ]
    assert session_providers(choose_providers(("auto",), CPU_BUILD)) == [CPU]


def test_the_tensorrt_cache_is_created_before_a_session_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = tmp_path / "cache" / "tensorrt"
    specs = session_providers(choose_providers((TENSORRT,), JETSON), cache_dir=where)
    assert prepared(specs) == specs
    assert where.is_dir()
    assert capsys.readouterr().err == ""

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    blocked = session_providers(choose_providers((TENSORRT,), JETSON), cache_dir=blocker / "tensorrt")
    assert prepared(blocked) == [
        (TENSORRT, {"trt_engine_cache_enable": False, "trt_engine_cache_path": str(blocker / "tensorrt")}),
        CPU,
    ]
    err = capsys.readouterr().err
    assert err.startswith(f"spine: warning: cannot create the TensorRT engine cache {blocker / 'tensorrt'} (")
    assert err.endswith("): engines are not kept\n")


def test_the_tensorrt_cache_follows_systemd_then_xdg_then_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_DIRECTORY", "/var/cache/spine:/var/cache/other")
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    assert tensorrt_cache_dir() == Path("/var/cache/spine/tensorrt")
    monkeypatch.delenv("CACHE_DIRECTORY")
    assert tensorrt_cache_dir() == Path("/xdg/spine/tensorrt")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/is/ignored")
    monkeypatch.setenv("HOME", "/home/pi")
    assert tensorrt_cache_dir() == Path("/home/pi/.cache/spine/tensorrt")


class _RefusingSession:
    """A session whose first `set_providers` fails as ONNX Runtime's does when a GPU library is missing."""

    def __init__(self) -> None:
        self.calls: list[list[Any]] = []

    def set_providers(self, providers: list[Any]) -> None:
        self.calls.append(providers)
        if len(self.calls) == 1:
            raise RuntimeError("libcudnn.so.8: cannot open shared object file")


def test_a_session_that_cannot_move_goes_back_to_the_cpu_and_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    session = _RefusingSession()
    move_session(session, session_providers(choose_providers((CUDA,), CUDA_ONLY)))
    assert session.calls == [[(CUDA, {"cudnn_conv_algo_search": "HEURISTIC"}), CPU], [CPU]]
    assert capsys.readouterr().err == (
        "spine: warning: ONNX Runtime could not start CUDAExecutionProvider, CPUExecutionProvider "
        "(libcudnn.so.8: cannot open shared object file); using CPUExecutionProvider\n"
    )


# ------------------------------------------------------------------------------------------------ settings


def test_by_default_the_small_models_stay_on_the_cpu_and_the_voice_takes_the_best() -> None:
    config = Config()
    assert config.vad.providers == (CPU,)
    assert config.wake.providers == (CPU,)
    assert config.tts.providers == ("auto",)
    text = default_toml()
    assert "\n[tts]\n" in text and '\nproviders = ["auto"]\n' in text.split("\n[tts]\n", 1)[1]
    assert '\nproviders = ["CPUExecutionProvider"]\n' in text.split("\n[vad]\n", 1)[1]


def load(tmp_path: Path, text: str) -> Config:
    """`text` through the loader `spine run --config` uses."""
    path = tmp_path / "spine.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_provider_lists_load_as_written(tmp_path: Path) -> None:
    text = '[vad]\nproviders = ["auto"]\n\n[tts]\nproviders = ["TensorrtExecutionProvider", "CUDAExecutionProvider"]\n'
    config = load(tmp_path, text)
    assert config.vad.providers == ("auto",)
    assert config.tts.providers == (TENSORRT, CUDA)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        pytest.param(
            '[tts]\nlookahead_s = 6.0\nproviders = ["CUDAExecutionProvider", "cuda"]\n',
            3,
            '`tts.providers[2]` must be one of "auto", "TensorrtExecutionProvider", "CUDAExecutionProvider", '
            '"CPUExecutionProvider"; got "cuda"',
            id="unknown-name",
        ),
        pytest.param(
            '[wake]\nproviders = ["auto", "CUDAExecutionProvider"]\n',
            2,
            '`providers` = ["auto"] stands alone: give either ["auto"] or a list of provider names (in [wake])',
            id="auto-and-names",
        ),
        pytest.param(
            "[vad]\nproviders = []\n",
            2,
            '`providers` must name at least one provider, e.g. ["auto"] or ["CPUExecutionProvider"] (in [vad])',
            id="empty",
        ),
        pytest.param(
            '[vad]\nproviders = ["CUDAExecutionProvider", "CUDAExecutionProvider"]\n',
            2,
            "`providers` names CUDAExecutionProvider more than once (in [vad])",
            id="repeated",
        ),
        pytest.param(
            '[tts]\nproviders = ["CPUExecutionProvider", "CUDAExecutionProvider"]\n',
            2,
            "`providers` lists CUDAExecutionProvider after CPUExecutionProvider, which runs every model on its own, "
            "so they would never be used: put CPUExecutionProvider last or leave it out (it is always added last) "
            "(in [tts])",
            id="after-the-cpu",
        ),
        pytest.param(
            '[tts]\nproviders = "auto"\n',
            2,
            "`tts.providers` must be an array, got string",
            id="not-a-list",
        ),
    ],
)
def test_a_bad_providers_setting_is_refused_at_its_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    with pytest.raises(UserError) as caught:
        load(tmp_path, text)
    assert str(caught.value) == f"{tmp_path / 'spine.toml'}:{line}: {message}"
