"""A private PulseAudio daemon with a null sink, for tests that open real PortAudio streams.

`pulse_server()` runs scripts/pulse-null-sink.sh in a fresh runtime directory (short, under /tmp: the socket
path must fit 108 bytes), yields the environment a client needs, and stops the daemon afterwards. The sink's
monitor is the default source, so what a stream plays comes back as what it records. It skips the test only
when `pulseaudio` is not installed (scripts/setup.sh installs it); any other failure to start is an error.

PortAudio reads the environment when it initialises (through ALSA's `pulse` plugin), so apply the yielded
variables to os.environ (e.g. with pytest's MonkeyPatch) before the test creates `pyaudio.PyAudio()`.

`pulse_server(room=True)` also builds the two-channel room of the real-stream suite (see the script): the
default sink and source become `spine_speaker` and `spine_mic`, and `spine_user` takes the user's voice.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pulse-null-sink.sh"
SINK = "spine_null"


def _run(action: str, runtime_dir: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), action, *options],
        env={**os.environ, "SPINE_PULSE_DIR": runtime_dir},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@contextmanager
def pulse_server(room: bool = False) -> Iterator[dict[str, str]]:
    """Run a private PulseAudio with the `spine_null` sink (and the room, when asked); yield PULSE_SERVER,
    PULSE_RUNTIME_PATH and XDG_RUNTIME_DIR for its clients."""
    if shutil.which("pulseaudio") is None:
        pytest.skip("pulseaudio is not installed (scripts/setup.sh installs it with apt)")
    runtime_dir = tempfile.mkdtemp(prefix="spine-pulse-")
    try:
        started = _run("start", runtime_dir, *(["--room"] if room else []))
        if started.returncode != 0:
            raise RuntimeError(f"{SCRIPT.name} start failed ({started.returncode}):\n{started.stderr}")
        env = {
            "PULSE_SERVER": f"unix:{runtime_dir}/pulse/native",
            "PULSE_RUNTIME_PATH": f"{runtime_dir}/pulse",
            "XDG_RUNTIME_DIR": runtime_dir,
        }
        assert f"PULSE_SERVER={env['PULSE_SERVER']}" in started.stdout, started.stdout  # the script agrees
        yield env
    finally:
        _run("stop", runtime_dir)
        shutil.rmtree(runtime_dir, ignore_errors=True)
