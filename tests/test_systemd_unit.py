"""The service unit and its system user, checked by systemd's own tools: `systemd-analyze verify` finds nothing
to say, `systemd-analyze security --offline=yes` scores it at or under the threshold the README states, and
`systemd-sysusers` makes the `spine` user a member of `audio`. Skipped where systemd's tools are missing."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "spine.service"
SYSUSERS = REPO / "systemd" / "spine.sysusers"
SECURITY_THRESHOLD = 2.0
"""The exposure score `systemd-analyze security` may give the unit at most (README, "On a Raspberry Pi")."""
SYSTEM_UNITS = Path("/usr/lib/systemd/system")

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed (apt install systemd)"
)


def unit_value(key: str) -> str:
    values = [line.split("=", 1)[1] for line in UNIT.read_text().splitlines() if line.startswith(f"{key}=")]
    assert len(values) == 1, f"{key}= appears {len(values)} times in {UNIT}"
    return values[0]


def fake_root_with_unit(root: Path) -> Path:
    """A root holding the unit where scripts/install puts it, the executable its ExecStart names (a stub: verify
    checks it exists and is executable, not what it does) and the distribution's units it depends on."""
    executable = Path(unit_value("ExecStart").split()[0])
    stub = root / executable.relative_to("/")
    stub.parent.mkdir(parents=True)
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    shutil.copytree(SYSTEM_UNITS, root / SYSTEM_UNITS.relative_to("/"), symlinks=True)
    installed = root / "etc" / "systemd" / "system" / UNIT.name
    installed.parent.mkdir(parents=True)
    shutil.copy(UNIT, installed)
    return installed


@needs_systemd_analyze
def test_systemd_analyze_verify_has_nothing_to_say(tmp_path: Path) -> None:
    installed = fake_root_with_unit(tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={tmp_path}", str(installed)], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr


@needs_systemd_analyze
def test_systemd_analyze_verify_notices_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: the same root with a misspelt directive is reported."""
    installed = fake_root_with_unit(tmp_path)
    installed.write_text(installed.read_text().replace("WatchdogSec=", "WatchdogSecs="))
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={tmp_path}", str(installed)], capture_output=True, text=True
    )
    assert "WatchdogSecs" in result.stderr


def exposure_score(output: str) -> float:
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", output)
    assert found, f"no exposure level in: {output[-500:]}"
    return float(found.group(1))


@needs_systemd_analyze
def test_security_exposure_is_at_or_under_the_stated_threshold() -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(UNIT)], capture_output=True, text=True
    )
    score = exposure_score(result.stdout)
    failing = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("✗")]
    assert score <= SECURITY_THRESHOLD, f"exposure {score} > {SECURITY_THRESHOLD}; weakest: {failing}"


def test_exposure_score_is_read_from_the_summary_line() -> None:
    assert exposure_score("✓ UMask= ...\n→ Overall exposure level for spine.service: 1.5 OK :-)") == 1.5


def test_unit_keeps_the_choices_the_readme_explains() -> None:
    """The lines a reader is told about: notify with a watchdog, real time allowed, the sound devices only."""
    assert unit_value("Type") == "notify"
    assert unit_value("NotifyAccess") == "main"
    assert 10 <= int(unit_value("WatchdogSec")) <= 30
    assert unit_value("Restart") == "on-failure"
    assert unit_value("RestrictRealtime") == "no"  # yes would refuse the audio thread's SCHED_FIFO
    assert int(unit_value("LimitRTPRIO")) > 0
    assert unit_value("PrivateDevices") == "no"  # yes would hide /dev/snd
    assert unit_value("DevicePolicy") == "closed"
    assert unit_value("DeviceAllow") == "char-alsa rw"
    assert unit_value("ExecStart").endswith("run --config /etc/spine/spine.toml")


def test_stop_timeout_exceeds_the_daemons_own_stop_bound() -> None:
    from device.runtime.signals import STOP_BOUND_S

    assert int(unit_value("TimeoutStopSec")) > 2 * STOP_BOUND_S


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="systemd-sysusers is not installed")
def test_sysusers_makes_a_system_user_in_the_audio_group(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (etc / "group").write_text("root:x:0:\naudio:x:29:\n")
    result = subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(SYSUSERS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    user = next(line.split(":") for line in (etc / "passwd").read_text().splitlines() if line.startswith("spine:"))
    assert int(user[2]) < 1000, "a system user"
    assert user[5:] == ["/var/lib/spine", "/usr/sbin/nologin"]
    audio = next(line for line in (etc / "group").read_text().splitlines() if line.startswith("audio:"))
    assert "spine" in audio.split(":")[3].split(",")
