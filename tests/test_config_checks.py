"""Bad configurations have one defined outcome: `spine config --check`, `spine doctor --config` and the loader
`spine run` and `spine demo` use refuse them with the same one line (FILE:LINE, the keys, the fix), exit 2.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import device.audio.doctor
from device.cli import main
from device.config import Config, load_config, manifest_voices
from device.errors import UserError
from device.models.integrity import CACHE_NAME
from tests.model_copies import copy_models, flip_one_byte

# (file text, the line the error names, what the message must say)
BAD_CONFIGS = [
    pytest.param(
        "[listen]\nmin_utterance_s = 3.0\nmax_utterance_s = 2.0\n",
        2,
        "`[listen] min_utterance_s` (3.0) must be less than `[listen] max_utterance_s` (2.0)",
        id="min-utterance-over-max",
    ),
    pytest.param(
        "[vad]\nend_silence_s = 5.0\n\n[listen]\nmax_utterance_s = 4.0\n",
        2,
        "`[vad] end_silence_s` (5.0) must be less than `[listen] max_utterance_s` (4.0)",
        id="end-silence-over-max-utterance",
    ),
    pytest.param(
        "[listen]\ntimeout_s = 1.0\n\n[vad]\nstart_s = 1.5\n",
        5,
        "`[vad] start_s` (1.5) must be less than `[listen] timeout_s` (1.0)",
        id="start-after-listening-ends",
    ),
    pytest.param(
        "[listen]\nfollow_up_s = 0.1\n",
        2,
        "`[listen] follow_up_s` (0.1) must be 0 (off) or more than `[vad] start_s` (0.2)",
        id="follow-up-shorter-than-a-start",
    ),
    pytest.param(
        "[barge_in]\nconfirm_ms = 100\n",
        2,
        "`[barge_in] confirm_ms` (100.0) must be more than `[vad] start_s` - `[vad] hint_s` (168.0 ms)",
        id="confirm-window-too-short",
    ),
    pytest.param("[wake]\nthreshold = 0.0\n", 2, "`[wake] threshold` must be more than 0", id="always-awake"),
    pytest.param(
        "[vad]\non_threshold = 0\noff_threshold = 0\n", 2, "`[vad] on_threshold` must be more than 0", id="always-voice"
    ),
    pytest.param("[vad]\noff_threshold = 0\n", 2, "`[vad] off_threshold` must be more than 0", id="never-silence"),
    pytest.param(
        '[audio]\nperiod_ms = 10\n\n[tts]\nlookahead_s = 6.0\nvoice = "x"\n',
        6,
        '`[tts] voice` "x" is not a voice in the model manifest; the voices are: en_US-joe-medium',
        id="voice-not-in-manifest",
    ),
    pytest.param(
        '[models]\ndir = "{tmp}/models.tar"\n',
        2,
        "`[models] dir` {tmp}/models.tar is a file, not a directory: point it at the directory",
        id="models-dir-is-a-file",
    ),
    pytest.param(
        '[models]\ndir = "{tmp}/nowhere"\n',
        2,
        "`[models] dir` {tmp}/nowhere does not exist: fix the path, or run `spine models fetch --dest {tmp}/nowhere`",
        id="models-dir-missing",
    ),
    pytest.param("[audio]\nswitch_interval_ms = 0\n", 2, "`switch_interval_ms` must be 0.1..100, got 0.0", id="switch"),
    pytest.param("[audio]\ncard_rate_hz = 0\n", 2, "`card_rate_hz` must be 8000..192000, got 0", id="card-rate"),
    pytest.param("[audio]\ndevice_rate_hz = 0\n", 2, "unknown key `device_rate_hz` in [audio]", id="old-rate-key"),
    pytest.param(
        "[asr]\nearly_pause_s = 0.9\n",
        2,
        "`[asr] early_pause_s` must be 0 or more and less than `[vad] end_silence_s` (0.7), got 0.9",
        id="early-pause-after-the-end",
    ),
]


def write_config(tmp_path: Path, text: str) -> Path:
    (tmp_path / "models.tar").write_bytes(b"not a directory")
    path = tmp_path / "spine.toml"
    path.write_text(text.format(tmp=tmp_path), encoding="utf-8")
    return path


@pytest.mark.parametrize(("text", "line", "message"), BAD_CONFIGS)
def test_the_loader_refuses_a_bad_config_at_the_line_of_its_key(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(UserError) as caught:
        load_config(path)
    assert caught.value.where == f"{path}:{line}"
    assert message.format(tmp=tmp_path) in caught.value.message
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("text", "line", "message"), BAD_CONFIGS)
def test_config_check_and_doctor_refuse_it_as_the_loader_does(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    line: int,
    message: str,
) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(UserError) as caught:
        load_config(path)  # what `spine run --config` and `spine demo --config` call first
    expected = f"spine: error: {caught.value}\n"
    monkeypatch.setattr(device.audio.doctor, "check", _no_sound_card_touched)
    assert main(["config", "--check", str(path)]) == 2
    assert capsys.readouterr() == ("", expected)
    assert main(["doctor", "--config", str(path)]) == 2
    assert capsys.readouterr() == ("", expected)


def _no_sound_card_touched(*args: object, **kwargs: object) -> list[object]:
    raise AssertionError("doctor reached the sound card with a configuration `spine run` refuses")


def test_the_defaults_and_every_manifest_voice_pass(tmp_path: Path) -> None:
    assert load_config(None) == Config()
    assert manifest_voices() == ("en_US-joe-medium",)
    path = write_config(tmp_path, '[tts]\nvoice = "en_US-joe-medium"\n\n[models]\ndir = "{tmp}"\n')
    assert load_config(path).models.dir == tmp_path


def test_doctor_reports_a_damaged_model_as_a_failed_check_with_the_fix(
    models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    models = copy_models(models_dir, tmp_path / "models")
    config = write_config(tmp_path, f'[models]\ndir = "{models}"\n')
    monkeypatch.setattr(device.audio.doctor, "check", lambda *args, **kwargs: [])
    assert main(["doctor", "--config", str(config)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"✓ model files in {models} match the manifest"
    assert (tmp_path / "state" / CACHE_NAME).is_file()

    damaged = models / "vad" / "silero_vad.onnx"
    flip_one_byte(damaged)
    assert main(["doctor", "--config", str(config)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"✗ model file {damaged.absolute()} is damaged (its sha256 ")
    fix = f"replace it: run `spine models fetch --dest {models}` (add `--mirror DIR` to copy from a local mirror)"
    assert lines[1] == f"    fix: {fix}"
