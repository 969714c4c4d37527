"""Strict TOML into frozen dataclasses: the one loader for scenes and the daemon config.

Theory of operation: `tomllib` parses the text; `_Converter` walks the dataclass's type hints and the parsed
value side by side and builds the instance, refusing anything it does not expect — unknown keys, wrong types,
values outside a `Literal`. An error names FILE:LINE: `KeyLines` (device/tomlfile_lines.py) knows on which
line each table header and each key sits.

Supported field types: `int`, `float` (an integer is accepted), `str`, `bool`, `pathlib.Path` (from a
string), `Literal[...]`, `X | None` (None only as a default: TOML has no null), a nested dataclass (a TOML
table) and `tuple[X, ...]` of any of these (an array; of tables for `[[name]]` blocks). A field's metadata may give its
range (`within(low, high)`, device/tomlfile_fields.py): a value outside it is an error at the key's line; so is a
value its `checked_by(problem)` function finds fault with. A dataclass may define `validate(self) -> str | None` for
what spans fields; a returned message becomes an error at the line of the table.

The way back, `commented_toml`, is device/tomlfile_writer.py. This module re-exports it and the field metadata,
so `device.tomlfile` is the one import for reading, writing and describing fields.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from device.errors import UserError
from device.tomlfile_fields import CHECK, EXAMPLE, RANGE, checked_by, example, number_text, within
from device.tomlfile_lines import KeyLines, KeyPath
from device.tomlfile_writer import commented_toml, field_docs, toml_value

__all__ = [
    "CHECK",
    "EXAMPLE",
    "RANGE",
    "checked_by",
    "commented_toml",
    "example",
    "field_docs",
    "load_dataclass",
    "loads_dataclass",
    "toml_value",
    "within",
]

T = TypeVar("T")

MAX_KEY_DEPTH = 32
"""The most levels a key or table header may have, tables and array entries included (the deepest field, a scene's
`room.delay_jumps[n].at_s`, has 4)."""


def load_dataclass(cls: type[T], path: Path) -> T:
    """Read `path` as TOML and build a `cls` from it; every problem is a `UserError` naming FILE:LINE."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"not UTF-8 text (TOML must be UTF-8): {exc.reason}", where=f"{path}:1") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    return loads_dataclass(cls, text, path)


def loads_dataclass(cls: type[T], text: str, path_for_messages: str | Path) -> T:
    """Parse TOML `text` and build a `cls`; `path_for_messages` only names the source in errors."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    key_lines = KeyLines(text)
    # tomllib's time is quadratic in the parts of a dotted key (`a.a.a... = 1`: 8000 parts take a second, a
    # megabyte of them hours), and no field is nested anywhere near MAX_KEY_DEPTH deep: refused before parsing.
    deep = next((line for path, line in key_lines.lines.items() if len(path) > MAX_KEY_DEPTH), None)
    if deep is not None:
        raise UserError(
            f"a key or table nested more than {MAX_KEY_DEPTH} levels deep; no setting is nested that deep",
            where=f"{path_for_messages}:{deep}",
        )
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message, line = _split_decode_error(str(exc))
        where = f"{path_for_messages}:{line if line is not None else key_lines.last_line}"
        raise UserError(f"TOML syntax error: {message}", where=where) from None
    except ValueError:
        # tomllib lets int()'s refusal of more than 4300 digits through (not a TOMLDecodeError), with no line.
        raise UserError(
            "TOML number too long: an integer of thousands of digits", where=str(path_for_messages)
        ) from None
    except RecursionError:
        # tomllib recurses once per level of nested arrays and inline tables.
        raise UserError("TOML arrays or inline tables nested too deeply", where=str(path_for_messages)) from None
    converter = _Converter(key_lines, str(path_for_messages))
    return typing.cast(T, converter.dataclass(cls, document, ()))


def _split_decode_error(message: str) -> tuple[str, int | None]:
    """tomllib ends its messages with "(at line N, column M)"; Python 3.11 has no attribute for the line."""
    match = re.search(r"\s*\(at line (\d+), column \d+\)$", message)
    if match is not None:
        return message[: match.start()], int(match.group(1))
    match = re.search(r"\s*\(at end of document\)$", message)
    return (message[: match.start()] if match else message), None


def _toml_type_name(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    names: tuple[tuple[type, str], ...] = (
        (int, "integer"),
        (float, "float"),
        (str, "string"),
        (dict, "table"),
        (list, "array"),
        (datetime.datetime, "date-time"),
        (datetime.date, "date"),
        (datetime.time, "time"),
    )
    return next((name for kind, name in names if isinstance(value, kind)), type(value).__name__)


def _describe(path: KeyPath) -> str:
    """`room.echo_gain_db`, `say[2].text`: how the user's file spells the place."""
    text = ""
    for part in path:
        text += f"[{part + 1}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _table_name(path: KeyPath) -> str:
    if not path:
        return "the top level"
    if isinstance(path[-1], int):
        return f"[[{_describe(path[:-1])}]] entry {path[-1] + 1}"
    return f"[{_describe(path)}]"


class _Converter:
    def __init__(self, key_lines: KeyLines, source: str) -> None:
        self.key_lines = key_lines
        self.source = source

    def error(self, message: str, path: KeyPath) -> UserError:
        return UserError(message, where=f"{self.source}:{self.key_lines.line_of(path)}")

    def dataclass(self, cls: type[Any], value: object, path: KeyPath) -> Any:
        if not isinstance(value, dict):
            raise self.error(f"`{_describe(path)}` must be a table, got {_toml_type_name(value)}", path)
        fields = [field for field in dataclasses.fields(cls) if field.init]
        hints = typing.get_type_hints(cls)
        allowed = [field.name for field in fields]
        for key in value:
            if key not in allowed:
                raise self.error(
                    f"unknown key `{key}` in {_table_name(path)}; allowed keys: {', '.join(allowed)}",
                    (*path, key),
                )
        arguments: dict[str, Any] = {}
        for field in fields:
            if field.name in value:
                arguments[field.name] = self.value(hints[field.name], value[field.name], (*path, field.name))
                problem = _range_problem(field, arguments[field.name])
                if problem is not None:
                    raise self.error(f"{problem} (in {_table_name(path)})", (*path, field.name))
            elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise self.error(f"missing key `{field.name}` in {_table_name(path)}", path)
        instance = cls(**arguments)
        validate = getattr(instance, "validate", None)
        if callable(validate):
            problem = validate()
            if problem:
                raise self.error(f"{problem} (in {_table_name(path)})", path)
        return instance

    def value(self, hint: Any, value: object, path: KeyPath) -> Any:
        origin = typing.get_origin(hint)
        if origin is Literal:
            return self.literal(typing.get_args(hint), value, path)
        if origin in (Union, types.UnionType):
            options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
            if len(options) != 1:
                raise TypeError(f"unsupported union {hint!r}: only `X | None` is supported")
            return self.value(options[0], value, path)
        if origin is tuple:
            return self.tuple(typing.get_args(hint), value, path)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            return self.dataclass(hint, value, path)
        return self.scalar(hint, value, path)

    def literal(self, allowed: tuple[Any, ...], value: object, path: KeyPath) -> Any:
        # Compare types too: `True == 1` must not let a boolean through where an integer is allowed.
        if any(type(value) is type(option) and value == option for option in allowed):
            return value
        shown = ", ".join(f'"{option}"' if isinstance(option, str) else repr(option) for option in allowed)
        got = f'"{value}"' if isinstance(value, str) else _toml_type_name(value)
        raise self.error(f"`{_describe(path)}` must be one of {shown}; got {got}", path)

    def tuple(self, args: tuple[Any, ...], value: object, path: KeyPath) -> tuple[Any, ...]:
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"unsupported tuple type with {args!r}: only `tuple[X, ...]` is supported")
        if not isinstance(value, list):
            raise self.error(f"`{_describe(path)}` must be an array, got {_toml_type_name(value)}", path)
        return tuple(self.value(args[0], item, (*path, index)) for index, item in enumerate(value))

    def scalar(self, hint: Any, value: object, path: KeyPath) -> Any:
        if hint is bool:
            if isinstance(value, bool):
                return value
            expected = "true or false"
        elif hint is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            expected = "an integer"
        elif hint is float:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            expected = "a number"
        elif hint is str:
            if isinstance(value, str):
                return value
            expected = "a string"
        elif hint is Path:
            if isinstance(value, str):
                return Path(value)
            expected = "a path (a string)"
        else:
            raise TypeError(f"unsupported field type {hint!r} at {_describe(path)}")
        raise self.error(f"`{_describe(path)}` must be {expected}, got {_toml_type_name(value)}", path)


def _range_problem(field: dataclasses.Field[Any], value: object) -> str | None:
    check = field.metadata.get(CHECK)
    if check is not None and value is not None:
        return typing.cast(str | None, check(value))
    bounds = field.metadata.get(RANGE)
    if bounds is None or value is None:
        return None
    low, high = bounds
    assert isinstance(value, int | float), f"a range on the non-number field {field.name}"
    if low <= value <= high:  # NaN fails both comparisons: refused
        return None
    return f"`{field.name}` must be {number_text(low)}..{number_text(high)}, got {value}"
