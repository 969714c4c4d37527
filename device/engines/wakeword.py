"""Wake word scoring with openWakeWord's ONNX models (one wake word head per detector).

openWakeWord runs three ONNX models per 80 ms frame: a melspectrogram, Google's speech embedding, and the wake
word head. All three sessions already run with one intra-op and one inter-op thread (openWakeWord hard-codes
that for the head and uses `ncpu`, which we pass as 1, for the feature models): scores are deterministic and
the detector never fans out over the cores of a small board. Measured: 1.6-1.9 ms per frame on one x86 core.

openWakeWord creates its sessions on the CPU (its `device="gpu"` would mean CUDA alone, for the feature models
alone), so other execution providers are set afterwards on all three (`set_providers` re-creates a session
with its options kept): on a GPU the models load twice, on the CPU once.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict, deque
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.engines import model_load_error, require_model_file
from device.engines.openwakeword_import import Model
from device.engines.providers import CPU, ProviderSpec, move_session, spec_names

Audio = npt.NDArray[np.int16]

# openWakeWord's own constants (openwakeword/utils.py, AudioFeatures): the melspectrogram buffer it starts
# from, and the 4 s of low-level noise whose embeddings pre-fill the feature window.
_MELSPEC_START_SHAPE = (76, 32)
_NOISE_SAMPLES = 4 * 16000
_NOISE_PEAK = 1000
_NOISE_SEED = 0


class WakeWordDetector:
    """One wake word: `score(frame)` per 80 ms frame of 16 kHz int16 audio, a probability in [0, 1]."""

    FRAME_SAMPLES = 1280
    """80 ms at 16 kHz: the hop of openWakeWord's embedding model, so every frame yields a fresh score."""

    def __init__(
        self, melspec_path: Path, embedding_path: Path, model_path: Path, providers: Sequence[ProviderSpec] = (CPU,)
    ) -> None:
        """`providers`: the ONNX Runtime execution providers of all three models (device/engines/providers.py)."""
        paths = [require_model_file(p, "wake word") for p in (melspec_path, embedding_path, model_path)]
        try:
            self._model = Model(
                wakeword_models=[str(model_path)],
                inference_framework="onnx",
                melspec_model_path=str(melspec_path),
                embedding_model_path=str(embedding_path),
                ncpu=1,
            )
        except Exception as err:  # ONNX Runtime's load errors share no base class beyond Exception
            raise model_load_error(", ".join(map(str, paths)), "wake word", err) from err
        self.name: str = next(iter(self._model.models))  # openWakeWord keys scores by the head's file stem
        features = self._model.preprocessor
        if spec_names(providers) != (CPU,):
            for session in self._sessions().values():
                move_session(session, providers)
            # openWakeWord's batch methods (unused here) read this to pick a thread pool or a GPU batch size.
            features.onnx_execution_provider = features.melspec_model.get_providers()[0]
        # openWakeWord pre-fills its feature window from *unseeded* random noise, in __init__ and again in
        # every reset() (~55 ms of embedding work on x86, too long for the 10 ms FSM period). Computing the
        # same kind of noise once, from a fixed seed, makes scores reproducible and reset() cheap.
        noise = np.random.default_rng(_NOISE_SEED).integers(-_NOISE_PEAK, _NOISE_PEAK, _NOISE_SAMPLES)
        self._initial_features = features._get_embeddings(noise.astype(np.int16))
        _give_back_arena(features)
        _keep_only_the_melspectrogram_window(features)
        self.non_finite_outputs = 0
        """Scores that came out NaN or infinite (each read as 0.0, the detector reset)."""
        self.reset()

    def twin(self) -> WakeWordDetector:
        """A detector of the same wake word that shares this one's ONNX sessions (no second copy of the models in
        memory: 53 MB measured) and keeps its own audio, features and history: hearing's second frame grid
        (device/runtime/wake_grids.py). Not for another thread: the sessions are used from the FSM thread only."""
        twin = copy.copy(self)
        twin._model = copy.copy(self._model)
        features = copy.copy(self._model.preprocessor)  # its predict lambdas read the shared sessions
        features.raw_data_buffer = deque(maxlen=features.raw_data_buffer.maxlen)
        twin._model.preprocessor = features
        _keep_only_the_melspectrogram_window(features)
        twin._model.prediction_buffer = defaultdict(partial(deque, maxlen=30))  # openWakeWord's own default
        twin.reset()
        return twin

    def _sessions(self) -> dict[str, Any]:
        features = self._model.preprocessor
        return {
            "melspectrogram": features.melspec_model,
            "embedding": features.embedding_model,
            f"{self.name} head": self._model.models[self.name],
        }

    def session_providers(self) -> dict[str, tuple[str, ...]]:
        """The execution providers each of its three ONNX Runtime sessions registered, best first."""
        return {label: tuple(session.get_providers()) for label, session in self._sessions().items()}

    def score(self, frame: Audio) -> float:
        """The wake word probability after this frame (exactly `FRAME_SAMPLES` int16 samples).

        openWakeWord reports 0.0 for the first 5 frames after a reset while its windows fill.
        """
        if frame.dtype != np.int16 or frame.shape != (self.FRAME_SAMPLES,):
            raise ValueError(f"expected {self.FRAME_SAMPLES} int16 samples, got shape {frame.shape} {frame.dtype}")
        value = float(self._model.predict(frame)[self.name])
        if not math.isfinite(value):
            # NaN in the feature window stays there for its length and may never be scored as the wake word:
            # forget it (as after a detection), read this frame as 0.0 and count it.
            self.non_finite_outputs += 1
            self.reset()
            return 0.0
        return value

    def reset(self) -> None:
        """Forget all audio heard so far, so a detection does not repeat on the frames that follow it.

        Mirrors openWakeWord's `Model.reset()` (prediction history and `AudioFeatures.reset()`), except that
        the feature window is refilled from the precomputed seeded noise instead of fresh random noise.
        """
        features = self._model.preprocessor
        features.raw_data_buffer.clear()
        features.melspectrogram_buffer = np.ones(_MELSPEC_START_SHAPE)
        features.accumulated_samples = 0
        features.raw_data_remainder = np.empty(0)
        features.feature_buffer = self._initial_features.copy()
        self._model.prediction_buffer.clear()


_MELSPEC_WINDOW_SAMPLES = WakeWordDetector.FRAME_SAMPLES + 3 * 160
"""What openWakeWord's streaming melspectrogram reads of its raw audio buffer per frame: the new frame and the
3 hops before it (`AudioFeatures._streaming_melspectrogram`: `[-n_samples - 160 * 3:]`)."""


def _keep_only_the_melspectrogram_window(features: Any) -> None:
    """openWakeWord keeps 10 s of raw audio and copies all of it into a list for every 80 ms frame, to read the
    last 1760 samples: measured in `spine run` idle, 1 % of a core of a 13 % total. Keeping only what is read
    gives the same scores (compared over 375 frames) at a sliver of the copy."""
    features.raw_data_buffer = deque(features.raw_data_buffer, maxlen=_MELSPEC_WINDOW_SAMPLES)


def _give_back_arena(features: Any) -> None:
    """ONNX Runtime's CPU arena keeps the peak of the 4 s noise batch above (and openWakeWord's own in its
    __init__) for good: about 33 MB per detector. One streaming-sized run that asks the arena to shrink afterwards
    hands it back; later runs are streaming-sized and stay small."""
    import onnxruntime as ort

    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    window = np.zeros((1, _MELSPEC_WINDOW_SAMPLES), np.float32)
    features.melspec_model.run(None, {"input": window}, options)
    features.embedding_model.run(None, {"input_1": np.zeros((1, 76, 32, 1), np.float32)}, options)
