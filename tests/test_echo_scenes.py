"""scenes/echo is exactly what scripts/make_echo_scenes.py writes: nobody edits a scene by hand, and the
generator is deterministic (two runs, the same bytes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def generate(out: Path) -> dict[str, str]:
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_echo_scenes.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(out.glob("*.toml"))}


def test_the_committed_scenes_are_the_generators_and_it_is_deterministic(tmp_path: Path) -> None:
    first = generate(tmp_path / "a")
    assert first == generate(tmp_path / "b")
    committed = {
        path.name: path.read_text(encoding="utf-8") for path in sorted((REPO / "scenes" / "echo").glob("*.toml"))
    }
    assert committed == first
