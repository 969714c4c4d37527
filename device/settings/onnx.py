"""The `providers` setting of the sections whose models run on ONNX Runtime (`[vad]`, `[wake]`, `[tts]`).

ONNX Runtime runs a model on an ordered list of execution providers, each node on the first that can run it.
The names are ONNX Runtime's own (what `onnxruntime.get_available_providers()` and `spine doctor` print), so a
name copied from either is accepted as it is. The loader refuses any other name at its line, listing these.
Which of them this machine's onnxruntime offers is only known at start-up: device/engines/providers.py turns
the setting into the list a session gets (and says when a name asked for is not there).

Part of the settings' one home (device/config.py); a leaf like it.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any, Final, Literal

from device.tomlfile import checked_by

ProviderName = Literal["auto", "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
"""What a `providers` list may hold: "auto", or ONNX Runtime provider names Spine knows how to configure."""

AUTO: Final = "auto"
CPU_ONLY: tuple[ProviderName, ...] = ("CPUExecutionProvider",)


def providers_problem(value: object) -> str | None:
    """Why a `providers` list (already checked name by name) cannot be used, or None."""
    assert isinstance(value, tuple), value
    if not value:
        return '`providers` must name at least one provider, e.g. ["auto"] or ["CPUExecutionProvider"]'
    if AUTO in value and len(value) > 1:
        return '`providers` = ["auto"] stands alone: give either ["auto"] or a list of provider names'
    repeated = sorted({name for name in value if value.count(name) > 1})
    if repeated:
        return f"`providers` names {', '.join(repeated)} more than once"
    if CPU_ONLY[0] in value[:-1]:
        return (
            f"`providers` lists {', '.join(value[value.index(CPU_ONLY[0]) + 1 :])} after CPUExecutionProvider, which "
            "runs every model on its own, so they would never be used: put CPUExecutionProvider last or leave it "
            "out (it is always added last)"
        )
    return None


def providers_field(default: tuple[ProviderName, ...]) -> Any:
    """A `providers` field with its check (the field's docstring stays in its section, like every setting's)."""
    return field(default=default, metadata=checked_by(providers_problem))
