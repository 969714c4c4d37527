"""Strict TOML loading: whole values on success, one-line errors with the right FILE:LINE on failure."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from device.errors import UserError
from device.tomlfile import commented_toml, example, field_docs, load_dataclass, loads_dataclass, toml_value, within


@dataclass(frozen=True)
class Audio:
    rate_hz: int = 16000
    gain_db: float = 0.0
    device: str | None = None


@dataclass(frozen=True)
class Stage:
    name: str
    mode: Literal["fast", "slow"] = "fast"
    timeout_s: float = 1.0

    def validate(self) -> str | None:
        return None if self.timeout_s > 0 else f"`timeout_s` must be positive, got {self.timeout_s}"


@dataclass(frozen=True)
class Config:
    title: str
    enabled: bool = True
    model_path: Path = Path("models/x.onnx")
    audio: Audio = field(default_factory=Audio)
    stage: tuple[Stage, ...] = ()
    tags: tuple[str, ...] = ()
    matrix: tuple[tuple[int, ...], ...] = ()


GOOD = """\
# a comment
title = "demo"
enabled = false
model_path = "/opt/m.onnx"
tags = [
  "a",
  "b",
]

[audio]
rate_hz = 48000
gain_db = -6        # an integer is a fine float
device = "hw:0"

[[stage]]
name = "one"

[[stage]]
name = "two"
mode = "slow"
timeout_s = 2.5
"""


def load(text: str) -> Config:
    return loads_dataclass(Config, text, "conf.toml")


def error_of(text: str) -> UserError:
    with pytest.raises(UserError) as caught:
        load(text)
    return caught.value


def test_good_file_gives_the_exact_dataclass(tmp_path: Path) -> None:
    path = tmp_path / "conf.toml"
    path.write_text(GOOD)
    assert load_dataclass(Config, path) == Config(
        title="demo",
        enabled=False,
        model_path=Path("/opt/m.onnx"),
        audio=Audio(rate_hz=48000, gain_db=-6.0, device="hw:0"),
        stage=(Stage(name="one"), Stage(name="two", mode="slow", timeout_s=2.5)),
        tags=("a", "b"),
    )


def test_an_integer_for_a_float_becomes_a_float() -> None:
    gain_db = load('title = "x"\n[audio]\ngain_db = -6\n').audio.gain_db
    assert gain_db == -6.0
    assert isinstance(gain_db, float)


def test_missing_keys_take_defaults() -> None:
    assert load('title = "x"') == Config(title="x")


def test_missing_key_without_default_is_an_error() -> None:
    error = error_of("enabled = true\n")
    assert "missing key `title`" in error.message
    assert error.where == "conf.toml:1"


def test_unknown_key_names_the_key_the_table_the_line_and_the_allowed_keys() -> None:
    error = error_of('title = "x"\n\n[audio]\nrate_hz = 8000\nrate = 16000\n')
    assert error.where == "conf.toml:5"
    assert "`rate`" in error.message
    assert "[audio]" in error.message
    assert "rate_hz, gain_db, device" in error.message
    assert str(error).startswith("conf.toml:5: unknown key `rate`")


def test_wrong_type_says_what_was_expected_and_what_came() -> None:
    error = error_of('title = "x"\n[audio]\ngain_db = "loud"\n')
    assert error.message == "`audio.gain_db` must be a number, got string"
    assert error.where == "conf.toml:3"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('title = "x"\nenabled = 1\n', "`enabled` must be true or false, got integer"),
        ('title = "x"\n[audio]\nrate_hz = 16000.0\n', "`audio.rate_hz` must be an integer, got float"),
        ('title = "x"\n[audio]\nrate_hz = true\n', "`audio.rate_hz` must be an integer, got boolean"),
        ("title = 3\n", "`title` must be a string, got integer"),
        ('title = "x"\naudio = 3\n', "`audio` must be a table, got integer"),
        ('title = "x"\ntags = "a"\n', "`tags` must be an array, got string"),
        ('title = "x"\ntags = ["a", 2]\n', "`tags[2]` must be a string, got integer"),
    ],
)
def test_type_errors(text: str, message: str) -> None:
    assert error_of(text).message == message


def test_toml_syntax_error_gives_the_line() -> None:
    error = error_of('title = "x"\n\n[audio]\nrate_hz = = 3\n')
    assert error.where == "conf.toml:4"
    assert error.message.startswith("TOML syntax error: ")
    assert "at line" not in error.message  # the line moved into `where`


def test_literal_lists_the_allowed_values() -> None:
    error = error_of('title = "x"\n[[stage]]\nname = "a"\nmode = "medium"\n')
    assert error.message == '`stage[1].mode` must be one of "fast", "slow"; got "medium"'
    assert error.where == "conf.toml:4"


def test_bad_entry_in_an_array_of_tables_names_its_own_line() -> None:
    text = '[[stage]]\nname = "a"\nmode = "slow"\n\n[[stage]]\nname = "b"\nmode = "slower"\n'
    error = error_of('title = "x"\n' + text)
    assert error.where == "conf.toml:8"
    assert error.message.startswith("`stage[2].mode`")


def test_missing_key_in_an_array_entry_points_at_its_header() -> None:
    error = error_of('title = "x"\n[[stage]]\nname = "a"\n[[stage]]\nmode = "slow"\n')
    assert error.message == "missing key `name` in [[stage]] entry 2"
    assert error.where == "conf.toml:4"


def test_validate_hook_reports_at_the_table_line() -> None:
    error = error_of('title = "x"\n[[stage]]\nname = "a"\n\n[[stage]]\nname = "b"\ntimeout_s = 0\n')
    assert error.message == "`timeout_s` must be positive, got 0.0 (in [[stage]] entry 2)"
    assert error.where == "conf.toml:5"


def test_a_line_inside_a_multiline_string_is_not_a_key() -> None:
    error = error_of('title = """\nenabled = 1\n[audio]\n"""\nenabled = "yes"\n')
    assert error.where == "conf.toml:5"


def test_a_line_inside_a_multiline_array_is_not_a_header() -> None:
    error = error_of('title = "x"\nmatrix = [\n  [1, 2],\n  [3]\n]\nenabled = "yes"\n')
    assert error.message == "`enabled` must be true or false, got string"
    assert error.where == "conf.toml:6"


def test_nested_arrays() -> None:
    assert load('title = "x"\nmatrix = [[1, 2], [3]]\n').matrix == ((1, 2), (3,))


def test_key_in_inline_table_points_at_the_line_holding_it() -> None:
    error = error_of('title = "x"\n\naudio = { rate_hz = "fast" }\n')
    assert error.message == "`audio.rate_hz` must be an integer, got string"
    assert error.where == "conf.toml:3"


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="file not found"):
        load_dataclass(Config, tmp_path / "nope.toml")


# ------------------------------------------------------------------------------------- ranges and writing


@dataclass(frozen=True)
class Level:
    """How loud."""

    gain_db: float = field(default=-6.0, metadata=within(-60.0, 0.0))
    """The gain."""
    taps: int | None = field(default=None, metadata={**within(1, 8), **example(4)})
    """Filter taps; unset: none."""


@dataclass(frozen=True)
class Documented:
    name: str = 'say "hi"\\ \n\t\x7f é'
    """A name,
    over two lines."""
    mode: Literal["fast", "slow"] = "fast"
    """The mode."""
    model_path: Path | None = field(default=None, metadata=example("/opt/m.onnx"))
    """A model."""
    words: tuple[str, ...] = ("a", "b c")
    ratio: float = 1e-05
    level: Level = field(default_factory=Level)
    """The level table."""
    quiet: Level = field(default_factory=lambda: Level(gain_db=-30.0), metadata=example(Level(taps=2)))
    """Another level table, whose unset values show this example's."""


def test_a_value_out_of_its_range_is_refused_at_its_key_with_the_table() -> None:
    for text, got in (("gain_db = 3", "got 3.0"), ("gain_db = nan", "got nan"), ("taps = 9", "got 9")):
        with pytest.raises(UserError) as caught:
            loads_dataclass(Documented, f"[level]\n\n{text}\n", "conf.toml")
        bounds = "-60..0" if "gain" in text else "1..8"
        name = text.split(" ")[0]
        assert (caught.value.where, caught.value.message) == (
            "conf.toml:3",
            f"`{name}` must be {bounds}, {got} (in [level])",
        )
    assert loads_dataclass(Documented, "[level]\ngain_db = -60\ntaps = 8\n", "c.toml").level == Level(-60.0, 8)


def test_field_docs_reads_the_docstrings_under_the_fields() -> None:
    docs = field_docs(Documented)
    assert docs["name"] == "A name,\nover two lines."
    assert "words" not in docs and "" not in docs  # no docstring: none made up
    assert field_docs(Level)[""] == "How loud."


def test_commented_toml_loads_back_to_the_instance_and_documents_each_key() -> None:
    text = commented_toml(Documented(), "A header.")
    assert loads_dataclass(Documented, text, "doc.toml") == Documented()
    assert text.startswith("# A header.\n\n# A name,\n# over two lines.\nname = ")
    assert '# The mode.\n# One of: "fast", "slow".\nmode = "fast"\n' in text
    assert '# A model.\n# model_path = "/opt/m.onnx"\n' in text
    assert 'words = ["a", "b c"]\nratio = 1e-05\n' in text.replace("\n\n", "\n")
    assert "# The level table.\n#\n# How loud.\n[level]\n\n# The gain.\n# Range: -60..0.\ngain_db = -6.0\n" in text
    assert "# Another level table, whose unset values show this example's.\n[quiet]\n" in text  # described once
    assert "[quiet]\n\n# The gain.\n# Range: -60..0.\ngain_db = -30.0\n" in text
    assert text.endswith("# Filter taps; unset: none.\n# Range: 1..8.\n# taps = 2\n")


def test_toml_value_writes_what_tomllib_reads_back() -> None:
    values = {"s": 'q"\\\n\t\x7f\x00 é', "i": -3, "f": 0.1, "big": 1e300, "b": False, "t": ("x", "y")}
    text = "".join(f"{key} = {toml_value(value)}\n" for key, value in values.items())
    parsed = tomllib.loads(text)
    assert {**parsed, "t": tuple(parsed["t"])} == values


def test_an_unset_field_without_an_example_cannot_be_written() -> None:
    @dataclass(frozen=True)
    class Bare:
        x: int | None = None

    with pytest.raises(TypeError, match=r"Bare\.x is None by default and has no example"):
        commented_toml(Bare())
