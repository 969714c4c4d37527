"""Which ONNX Runtime execution providers a model's session gets, from its section's `providers` setting.

Three models run on ONNX Runtime: the Silero voice detector (`[vad]`), openWakeWord's three models (`[wake]`)
and the Piper voice (`[tts]`); whisper.cpp does not (docs/jetson.md). What this machine's onnxruntime offers
is only known here, at start-up, so the setting is resolved in two steps:

1. `choose_providers(wanted, available)`, pure: "auto" becomes the best GPU provider offered (`AUTO_ORDER`);
   named providers are kept in the user's order when offered and dropped, with a warning, when not. CPU is
   always last: ONNX Runtime puts each node on the first provider that can run it, and the CPU runs them all.
2. `session_providers(choice)`: the list a session is created with, with the options Spine wants per provider.

A provider asked for but not offered is a warning, not an error: the model then runs on the CPU, as on a Pi.
A voice assistant that refuses to start because a GPU library is missing is deaf until someone reads its log;
one that runs slower and says why (at start, and in `spine doctor`) still answers. After loading,
`unused_warning` compares what the session really registered (`session.get_providers()`): ONNX Runtime may
itself fall back to the CPU when a GPU provider cannot start (a CUDA library of the wrong version).

"auto" does not pick TensorRT. TensorRT compiles an engine for each new range of input shapes the first time
it meets it: seconds to minutes on a Jetson, for a Piper voice again for every longer sentence, heard as a
reply that stalls. CUDA runs every shape at once. TensorRT is there for whoever names it (its engines are then
cached on disk, `tensorrt_cache_dir`, so the compile is paid once per shape range, not per start).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device.settings.onnx import AUTO

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
GPU_PROVIDERS = (TENSORRT, CUDA)
AUTO_ORDER = (CUDA,)
"""What "auto" takes, best first, when offered (then the CPU); TensorRT only when named (see above)."""

ProviderSpec = str | tuple[str, dict[str, Any]]
"""A provider as `onnxruntime.InferenceSession(providers=...)` takes it: a name, or a name and its options."""


@dataclass(frozen=True)
class ProviderChoice:
    """A `providers` setting resolved against what this onnxruntime offers."""

    wanted: tuple[str, ...]
    """The setting as written: ("auto",) or provider names."""
    available: tuple[str, ...]
    """What `onnxruntime.get_available_providers()` said."""
    providers: tuple[str, ...]
    """The providers a session gets, in order of preference, the CPU last."""
    missing: tuple[str, ...]
    """Named in the setting, not offered by this onnxruntime (skipped)."""

    @property
    def cpu_only(self) -> bool:
        return self.providers == (CPU,)

    def missing_warning(self, section: str) -> str | None:
        """What to say at start when a provider the user named is not there, or None."""
        if not self.missing:
            return None
        names = ", ".join(self.missing)
        return (
            f"`[{section}] providers` asks for {names}, which this onnxruntime does not offer (it offers "
            f"{', '.join(self.available) or 'none'}): the [{section}] models run on {', '.join(self.providers)}. "
            f"{INSTALL_HINT}, or set `[{section}] providers` to what it offers"
        )

    def unused_warning(self, section: str, used: Sequence[str]) -> str | None:
        """What to say when a GPU provider was chosen but the session did not register it, or None."""
        dropped = [name for name in self.providers if name in GPU_PROVIDERS and name not in used]
        if not dropped:
            return None
        return (
            f"ONNX Runtime could not start {', '.join(dropped)} for the [{section}] models (its own message "
            f"above says why): they run on {', '.join(used)}. On a Jetson, the onnxruntime-gpu wheel must match "
            "JetPack's CUDA, cuDNN and TensorRT (docs/jetson.md)"
        )


@dataclass(frozen=True)
class OnnxModel:
    """One section's ONNX Runtime models as loaded: what was asked for, chosen, and what each session runs on."""

    section: str
    """"vad", "wake" or "tts"."""
    choice: ProviderChoice
    sessions: Mapping[str, tuple[str, ...]]
    """Each session's label and the providers it registered (`session.get_providers()`), best first."""

    @property
    def used(self) -> tuple[str, ...]:
        """The providers every session of the section registered."""
        first, *others = self.sessions.values()
        return tuple(name for name in first if all(name in other for other in others))

    def unused_warning(self) -> str | None:
        return self.choice.unused_warning(self.section, self.used)


INSTALL_HINT = "On a Jetson, install onnxruntime-gpu from NVIDIA's Jetson index (docs/jetson.md)"


def choose_providers(wanted: Sequence[str], available: Sequence[str]) -> ProviderChoice:
    """The providers for a session: "auto" is the best of `AUTO_ORDER` offered; names are kept in their order
    when offered; the CPU always ends the list (it is there even if a build does not list it)."""
    if tuple(wanted) == (AUTO,):
        chosen = [name for name in AUTO_ORDER if name in available]
        missing: list[str] = []
    else:
        chosen = [name for name in wanted if name != CPU and name in available]
        missing = [name for name in wanted if name != CPU and name not in available]
    return ProviderChoice(
        wanted=tuple(wanted), available=tuple(available), providers=(*chosen, CPU), missing=tuple(missing)
    )


def session_providers(choice: ProviderChoice, cache_dir: Path | None = None) -> list[ProviderSpec]:
    """`choice.providers` with the options Spine sets: CUDA picks its convolution algorithms by heuristic (the
    exhaustive search, its default, times every convolution on the first run of each shape: a first reply
    that comes late); TensorRT caches its engines in `cache_dir` (default `tensorrt_cache_dir()`)."""
    specs: list[ProviderSpec] = []
    for name in choice.providers:
        if name == CUDA:
            specs.append((CUDA, {"cudnn_conv_algo_search": "HEURISTIC"}))
        elif name == TENSORRT:
            where = cache_dir if cache_dir is not None else tensorrt_cache_dir()
            specs.append((TENSORRT, {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(where)}))
        else:
            specs.append(name)
    return specs


def tensorrt_cache_dir() -> Path:
    """`$CACHE_DIRECTORY/tensorrt` (systemd's `CacheDirectory=`), else `$XDG_CACHE_HOME/spine/tensorrt`, else
    `~/.cache/spine/tensorrt`: compiled engines are a cache (deleting it costs one compile, nothing else)."""
    systemd = os.environ.get("CACHE_DIRECTORY")
    if systemd:  # systemd may pass several, separated by colons: the first is the unit's own
        return Path(systemd.split(":")[0]) / "tensorrt"
    xdg_cache_home = os.environ.get("XDG_CACHE_HOME")
    if xdg_cache_home and Path(xdg_cache_home).is_absolute():
        return Path(xdg_cache_home) / "spine" / "tensorrt"
    return Path.home() / ".cache" / "spine" / "tensorrt"


def spec_names(specs: Sequence[ProviderSpec]) -> tuple[str, ...]:
    return tuple(spec if isinstance(spec, str) else spec[0] for spec in specs)


def available_providers() -> tuple[str, ...]:
    """What this machine's onnxruntime offers (a CPU build: CPU, and Azure, a remote-inference stub)."""
    import onnxruntime as ort

    return tuple(ort.get_available_providers())


def prepared(specs: Sequence[ProviderSpec]) -> list[ProviderSpec]:
    """`specs`, once what they need exists: TensorRT's engine cache directory is created (or, if it cannot be,
    TensorRT runs without keeping its engines, with a warning)."""
    ready: list[ProviderSpec] = []
    for spec in specs:
        if isinstance(spec, tuple) and spec[0] == TENSORRT and spec[1].get("trt_engine_cache_enable"):
            where = Path(spec[1]["trt_engine_cache_path"])
            try:
                where.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                warn(f"cannot create the TensorRT engine cache {where} ({error.strerror}): engines are not kept")
                spec = (TENSORRT, {**spec[1], "trt_engine_cache_enable": False})
        ready.append(spec)
    return ready


def new_session(model_path: Path, options: Any, specs: Sequence[ProviderSpec]) -> Any:
    """An `onnxruntime.InferenceSession` of `model_path` on `specs` (ONNX Runtime itself falls back to the CPU,
    saying why on stdout, when a provider offered cannot start)."""
    import onnxruntime as ort

    return ort.InferenceSession(str(model_path), sess_options=options, providers=prepared(specs))


def move_session(session: Any, specs: Sequence[ProviderSpec]) -> None:
    """Re-create `session`, an `onnxruntime.InferenceSession` a library made on the CPU, on `specs` (its session
    options are kept). If ONNX Runtime cannot start them, the session goes back to the CPU, with a warning."""
    try:
        session.set_providers(prepared(specs))
    except Exception as error:  # ONNX Runtime's provider errors share no base class beyond Exception
        warn(f"ONNX Runtime could not start {', '.join(spec_names(specs))} ({error}); using {CPU}")
        session.set_providers([CPU])


def warn(message: str) -> None:
    """A start-up warning on stderr (systemd puts it in the journal)."""
    print(f"spine: warning: {message}", file=sys.stderr, flush=True)
