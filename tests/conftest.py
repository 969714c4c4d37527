"""Shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The real model files: $SPINE_MODELS_DIR if set, else the mirror next to the repo (`../shared/models`)."""
    configured = os.environ.get("SPINE_MODELS_DIR")
    path = Path(configured) if configured else _REPO.parent / "shared" / "models"
    if not path.is_dir():
        pytest.skip(f"model files not found at {path}: set SPINE_MODELS_DIR or run `spine models fetch`")
    return path


@pytest.fixture(scope="module")
def pulse_env() -> Iterator[dict[str, str]]:
    """A private PulseAudio with the null sink, its environment applied to this process (PortAudio reads it)."""
    from tests.pulse import pulse_server

    with pulse_server() as env, pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        yield env
