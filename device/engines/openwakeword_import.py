"""openWakeWord's `Model`, imported without its custom verifier trainer.

`openwakeword/__init__.py` imports `openwakeword.custom_verifier_model` (to export `train_custom_verifier`), and
with it scikit-learn and SciPy: measured here 1.4 s of Spine's start and about 27 MB of resident memory (about
100 MB when nothing else has imported SciPy yet). Spine never trains or loads a custom verifier (it passes no
`custom_verifier_models`), so a stand-in module under that name keeps them out. Import `Model` from here, before
anything else imports `openwakeword`.
"""

from __future__ import annotations

import sys
import types
from typing import Any, NoReturn


def _no_verifier(*_args: Any, **_kwargs: Any) -> NoReturn:
    raise RuntimeError("Spine imports openWakeWord without its custom verifier trainer (scikit-learn)")


if "openwakeword" not in sys.modules:
    _stand_in = types.ModuleType("openwakeword.custom_verifier_model")
    _stand_in.train_custom_verifier = _no_verifier  # type: ignore[attr-defined]
    sys.modules["openwakeword.custom_verifier_model"] = _stand_in

from openwakeword.model import Model  # noqa: E402  (after the stand-in, on purpose)

__all__ = ["Model"]
