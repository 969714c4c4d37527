"""Voice activity with the Silero VAD (v5/v6) ONNX model through plain ONNX Runtime (no torch).

The model is recurrent: it carries a state tensor from chunk to chunk and also wants the last 64 samples of the
previous chunk in front of each new 512-sample chunk (that context is what the reference implementation, and
so the model's training, used). Measured: ~0.1 ms per chunk on one x86 core.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from device.engines import model_load_error, require_model_file
from device.engines.providers import CPU, ProviderSpec, new_session
from device.rates import SPINE_RATE_HZ

Audio = npt.NDArray[np.int16]

_CONTEXT_SAMPLES = 64
_STATE_SHAPE = (2, 1, 128)
_INPUTS = {"input", "state", "sr"}
_OUTPUTS = ("output", "stateN")
_INT16_SCALE = 32768.0


class SileroVad:
    """`probability(chunk)` that a 32 ms chunk of 16 kHz int16 audio is speech."""

    CHUNK_SAMPLES = 512
    """32 ms at 16 kHz: the only chunk size Silero v5+ accepts at this rate."""

    _state: npt.NDArray[np.float32]
    _context: npt.NDArray[np.float32]

    def __init__(self, model_path: Path, providers: Sequence[ProviderSpec] = (CPU,)) -> None:
        """`providers`: the ONNX Runtime execution providers, as device/engines/providers.py chose them."""
        require_model_file(model_path, "VAD")
        options = ort.SessionOptions()
        # One thread, sequential: a 0.1 ms model gains nothing from a pool, and it runs on the FSM thread.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self._session = new_session(model_path, options, providers)
        except Exception as err:  # ONNX Runtime's load errors share no base class beyond Exception
            raise model_load_error(model_path, "VAD", err) from err
        inputs = {i.name for i in self._session.get_inputs()}
        outputs = tuple(o.name for o in self._session.get_outputs())
        if inputs != _INPUTS or outputs != _OUTPUTS:
            reason = f"inputs {sorted(inputs)}, outputs {list(outputs)}: not a Silero VAD v5+ model"
            raise model_load_error(model_path, "VAD", reason)
        self._rate = np.array(SPINE_RATE_HZ, dtype=np.int64)
        self.non_finite_outputs = 0
        """Probabilities that came out NaN or infinite (each read as 0.0, the stream restarted)."""
        self.reset()

    def session_providers(self) -> dict[str, tuple[str, ...]]:
        """The execution providers its ONNX Runtime session registered, best first."""
        return {"Silero VAD": tuple(self._session.get_providers())}

    def probability(self, chunk: Audio) -> float:
        """Speech probability in [0, 1] for exactly `CHUNK_SAMPLES` int16 samples, following the previous chunk."""
        if chunk.dtype != np.int16 or chunk.shape != (self.CHUNK_SAMPLES,):
            raise ValueError(f"expected {self.CHUNK_SAMPLES} int16 samples, got shape {chunk.shape} {chunk.dtype}")
        window = np.concatenate([self._context, chunk.astype(np.float32) / _INT16_SCALE])[np.newaxis, :]
        probability, self._state = self._session.run(
            list(_OUTPUTS), {"input": window, "state": self._state, "sr": self._rate}
        )
        self._context = window[0, -_CONTEXT_SAMPLES:]
        value = float(probability[0, 0])
        if not math.isfinite(value):
            # A recurrent state gone NaN stays NaN: every later chunk would read as "no speech" and the assistant
            # would be deaf until restarted. Start the stream again (one chunk is lost) and count it.
            self.non_finite_outputs += 1
            self.reset()
            return 0.0
        return value

    def twin(self) -> SileroVad:
        """A voice model that shares this one's ONNX session (the model is in memory once: the recurrent state
        and the context are this object's, the session holds none) and starts its own stream. For the same thread
        only: hearing runs both on the FSM thread."""
        twin = copy.copy(self)
        twin.non_finite_outputs = 0
        twin.reset()
        return twin

    def reset(self) -> None:
        """Start a new stream: zero state and zero context, as at construction."""
        self._state = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(_CONTEXT_SAMPLES, dtype=np.float32)
