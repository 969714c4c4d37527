"""The settings (device/config.py): one home per setting, documented, in range; `spine config`; config as a leaf."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest

from device.cli import main
from device.config import Config, core_config, load_config
from device.config_cli import default_toml
from device.errors import UserError
from device.tomlfile import EXAMPLE, RANGE, field_docs, loads_dataclass

ROOT = Path(__file__).resolve().parent.parent

UNIT_SUFFIXES = ("_s", "_ms", "_hz", "_db", "_dbfs", "_words", "_bytes", "_mb")
UNITLESS = {
    # probabilities, scores, shares and real-time factors (no unit), and counts of things named in the name
    "threshold",
    "on_threshold",
    "off_threshold",
    "wake_threshold",
    "faint_threshold",
    "speech_probability",
    "own_words_min_fraction",
    "temperature",
    "asr_rtf",
    "tts_rtf",
    "breaker_self_heard",
    "threads",
    "in_flight",
    "max_tokens",
    "port",
    "max_sessions",
    "feed_records",
    "realtime_priority",  # a SCHED_FIFO priority level (1-99)
    "memory_turns",
}
RANGE_IN_DOCSTRING = {
    # bounds that depend on another setting or are open (checked by a `validate`, stated in the docstring)
    "fade_ms": "0.5 up to `period_ms`",
    "connect_timeout_s": "more than 0",
    "first_token_timeout_s": "more than 0",
    "idle_timeout_s": "more than 0",
    "max_tokens": "1 or more",
}


def sections(cls: type = Config, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], type]]:
    """Every dataclass reachable from `Config`, with the TOML path of one place it sits."""
    found = [(path, cls)]
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            found += sections(hint, (*path, field.name))
    return found


def settings() -> list[tuple[str, dataclasses.Field[Any], Any]]:
    out = []
    for path, cls in sections():
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            out.append((".".join((*path, field.name)), field, hints[field.name]))
    return out


def numeric(hint: Any) -> bool:
    options = [arg for arg in typing.get_args(hint) if arg is not type(None)] or [hint]
    return all(option in (int, float) for option in options)


# -------------------------------------------------------------------------------------------- one home


def test_every_setting_and_section_has_a_docstring() -> None:
    undocumented = [name for name, field, _ in settings() if not field_docs(_owner(name)).get(field.name)]
    assert undocumented == []


def _owner(name: str) -> type:
    path = tuple(name.split(".")[:-1])
    return next(cls for where, cls in sections() if where == path)


def test_every_number_has_a_unit_in_its_name_or_is_unitless() -> None:
    names = [(name, field.name) for name, field, hint in settings() if numeric(hint)]
    assert [name for name, key in names if not key.endswith(UNIT_SUFFIXES) and key not in UNITLESS] == []


def test_every_number_has_a_range_and_its_default_is_inside() -> None:
    for name, field, hint in settings():
        if not numeric(hint):
            assert RANGE not in field.metadata, name
            continue
        if field.name in RANGE_IN_DOCSTRING:
            assert RANGE_IN_DOCSTRING[field.name] in " ".join(field_docs(_owner(name))[field.name].split()), name
            continue
        assert RANGE in field.metadata, f"{name} has no within(low, high)"
        low, high = field.metadata[RANGE]
        default = field.default
        assert default is None or low <= default <= high, name


def test_every_unset_setting_shows_an_example() -> None:
    for name, field, _ in settings():
        if field.default is None and not name.startswith("barge_in."):  # the rows show the matrix's defaults
            assert EXAMPLE in field.metadata, name


def test_core_config_of_the_defaults_is_what_the_core_decided_with_before() -> None:
    """The header of the demo's log before settings had one home (`/work/ref-demo`): nothing moved."""
    before = json.loads(
        '{"rate_hz":16000,"listen_timeout_samples":128000,"max_utterance_samples":240000,"min_utterance_samples":'
        '3200,"preroll_samples":2400,"barge_in":{"transcribing":{"wake":true,"speech":false,"wake_threshold":0.5,'
        '"speech_probability":0.5},"thinking":{"wake":true,"speech":false,"wake_threshold":0.5,"speech_probability"'
        ':0.5},"speaking":{"wake":true,"speech":true,"wake_threshold":0.5,"speech_probability":0.7},"announcing":{'
        '"wake":true,"speech":true,"wake_threshold":0.5,"speech_probability":0.7}},"confirm_samples":6400,'
        '"follow_up_samples":80000,"tts_lookahead_samples":96000,"tts_in_flight":2,"early_asr":true,'
        '"first_clause_min_words":6,"stop_phrases":["stop","cancel","never mind","nevermind","be quiet","quiet",'
        '"shut up","enough"],"reopen_first_samples":16000,"reopen_max_samples":480000,"earcons":true,'
        '"startup_sound":true,"wake_phrase":"hey jarvis","echo_tail_samples":8000,"own_words_window_words":20,'
        '"own_words_min_fraction":0.6,"own_one_word_tail_words":3,"short_interruption_max_words":2,"short_interruption_max_samples":16000,'
        '"breaker_self_heard":2,"breaker_window_samples":960000,"breaker_hold_samples":960000,'
        '"alarm_ring_gap_samples":32000,"alarm_ring_max_samples":960000}'
    )
    # Since then two decisions were added on purpose: memory keeps the last 8 exchanges (issue 16's soak),
    before["memory_messages"] = 16
    before["asr_timeout_samples"] = 480000  # and speech to text that hangs ends the turn after 30 s (issue 16)
    before["tts_timeout_samples"] = 480000  # and so does synthesis that hangs (issue 16)
    assert json.loads(json.dumps(dataclasses.asdict(core_config(Config())))) == before


# ------------------------------------------------------------------------------------------ the leaf


SETTINGS_MODULES = [ROOT / "device" / "config.py", *sorted((ROOT / "device" / "settings").glob("*.py"))]
TOML_MODULES = sorted((ROOT / "device").glob("tomlfile*.py"))


def device_imports(path: Path) -> set[str]:
    """The device.* modules `path` imports (at any depth of its code)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return {name for name in imported if name.split(".")[0] == "device"}


@pytest.mark.parametrize("path", SETTINGS_MODULES + TOML_MODULES, ids=lambda path: path.name)
def test_config_imports_nothing_that_reads_the_settings(path: Path) -> None:
    allowed: tuple[str, ...] = ("device.errors", "device.tomlfile")
    if path in SETTINGS_MODULES:
        allowed += ("device.core", "device.rates", "device.settings")
    if path.name == "config.py":  # the voices the manifest lists, the models directory: leaves that read no setting
        allowed += ("device.models.manifest", "device.models.integrity")
    ours = device_imports(path)
    assert all(name.startswith(allowed) for name in ours), ours


def test_loading_the_settings_loads_no_layer_that_reads_them() -> None:
    modules = [".".join(path.relative_to(ROOT).with_suffix("").parts) for path in SETTINGS_MODULES + TOML_MODULES]
    modules = [name.removesuffix(".__init__") for name in modules]
    loaded = subprocess.run(
        [sys.executable, "-c", f"import sys, {', '.join(modules)}; print(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.split()
    layers = ("device.runtime", "device.reply", "device.engines", "device.audio", "device.sim")
    assert [name for name in loaded if name.startswith(layers)] == []


def test_every_section_is_importable_from_device_config() -> None:
    import device.config

    for _, cls in sections():
        assert getattr(device.config, cls.__name__) is cls


# ---------------------------------------------------------------------------------------- spine config


def test_the_default_file_loads_to_exactly_the_defaults() -> None:
    text = default_toml()
    assert loads_dataclass(Config, text, "default.toml") == Config()
    lines = text.splitlines()
    examples = [number for number, line in enumerate(lines) if re.match(r"# [a-z_]+ = ", line)]
    assert len(examples) == 12 + 4 * 4  # the 12th: [reply] voice
    for number in examples:  # each example, uncommented, is a valid setting
        uncommented = [*lines[:number], lines[number].removeprefix("# "), *lines[number + 1 :]]
        assert isinstance(loads_dataclass(Config, "\n".join(uncommented), "example.toml"), Config)


def test_the_default_file_documents_every_setting() -> None:
    text = default_toml()
    for name, field, _ in settings():
        table, key = name.rpartition(".")[0], field.name
        if dataclasses.is_dataclass(field.type) or field.default_factory is not dataclasses.MISSING:
            assert f"\n[{name}]\n" in text, name
            continue
        block = text.split(f"\n[{table}]\n", 1)[1] if table else text
        assert f"\n{key} = " in block or f"\n# {key} = " in block, name
    assert "# Range: 5..40.\nperiod_ms = 10\n" in text
    assert '# One of: "local", "openai", "realtime".\nbackend = "local"\n' in text
    assert "# card_rate_hz = 48000\n" in text
    assert "[barge_in.speaking]\n\n# The wake word interrupts this state.\n# wake = true\n" in text


def test_spine_config_default_prints_the_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--default"]) == 0
    assert capsys.readouterr() == (default_toml(), "")


def test_spine_config_check_says_ok_or_gives_the_loaders_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.toml"
    good.write_text(default_toml(), encoding="utf-8")
    assert main(["config", "--check", str(good)]) == 0
    assert capsys.readouterr() == (f"{good}: ok\n", "")

    bad = tmp_path / "bad.toml"
    bad.write_text("[vad]\nstart_s = 0.3\n\nend_silence_s = 20\n", encoding="utf-8")
    assert main(["config", "--check", str(bad)]) == 2
    with pytest.raises(UserError) as caught:
        load_config(bad)
    message = f"{bad}:4: `end_silence_s` must be 0.05..10, got 20.0 (in [vad])"
    assert str(caught.value) == message
    assert capsys.readouterr() == ("", f"spine: error: {message}\n")  # as every command prints a UserError


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("[audio]\ndevice_rate_hz = 48000\n", 2, "unknown key `device_rate_hz` in [audio]"),
        ("[audio]\ncard_rate_hz = 4000\n", 2, "`card_rate_hz` must be 8000..192000, got 4000 (in [audio])"),
        ("[vad]\non_threshold = 0.3\n", 1, "`off_threshold` must be at most `on_threshold` (0.3), got 0.35"),
        ("[barge_in.speaking]\n\nspeech_probability = nan\n", 3, "`speech_probability` must be 0..1, got nan"),
        ("[wake]\nthreshold = 1.5\n", 2, "`threshold` must be 0..1, got 1.5 (in [wake])"),
    ],
)
def test_a_setting_out_of_range_is_refused_at_its_line(text: str, line: int, message: str) -> None:
    with pytest.raises(UserError) as caught:
        loads_dataclass(Config, text, "spine.toml")
    assert caught.value.where == f"spine.toml:{line}"
    assert message in caught.value.message
