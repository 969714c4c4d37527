"""Strict TOML into frozen dataclasses: the one loader for scenes and the daemon config.

Theory of operation: `tomllib` parses the text; `_Converter` walks the dataclass's type hints and the parsed
value side by side and builds the instance, refusing anything it does not expect — unknown keys, wrong types,
values outside a `Literal`. TOML carries no line numbers in its parsed form, so `_KeyLines` scans the text
once and remembers on which line each table header and each `key =` sits; an error names the deepest of
those it can find (the key, else its table's header, else line 1).

Supported field types: `int`, `float` (an integer is accepted), `str`, `bool`, `pathlib.Path` (from a
string), `Literal[...]`, `X | None` (None only as a default: TOML has no null), a nested dataclass (a TOML
table) and `tuple[X, ...]` of any of these (an array; of tables for `[[name]]` blocks). A field's metadata may give its
range (`within(low, high)`): a value outside it is an error at the key's line. A dataclass may define
`validate(self) -> str | None` for what spans fields; a returned message becomes an error at the line of the table.

The way back: `commented_toml` writes a dataclass instance as a TOML document that loads to the same instance,
each key preceded by its field docstring (read from the source: Python keeps no attribute docstrings), its range
or its choices as `#` comments. A field that is None (TOML has no null) is written commented out, showing the
value its metadata gives as an `example(...)`.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime
import functools
import inspect
import itertools
import json
import re
import textwrap
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from device.errors import UserError

T = TypeVar("T")

RANGE = "range"
"""Field metadata key: inclusive (low, high) bounds of a number; see `within`."""
EXAMPLE = "example"
"""Field metadata key: the value shown, commented out, for a field that is None by default; see `example`."""


def within(low: float, high: float) -> dict[str, Any]:
    """Field metadata: the loader refuses a value outside low..high (inclusive; None, an unset value, passes)."""
    return {RANGE: (low, high)}


def example(value: object, **more: Any) -> dict[str, Any]:
    """Field metadata for a field that is None by default: `commented_toml` shows `# key = value`. For a nested
    dataclass field, `value` is an instance whose values stand in for the default's None fields."""
    return {EXAMPLE: value, **more}


# A location inside the document: table keys and, for arrays, the index of the element.
KeyPath = tuple[str | int, ...]


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
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message, line = _split_decode_error(str(exc))
        where = f"{path_for_messages}:{line if line is not None else _KeyLines(text).last_line}"
        raise UserError(f"TOML syntax error: {message}", where=where) from None
    converter = _Converter(_KeyLines(text), str(path_for_messages))
    return typing.cast(T, converter.dataclass(cls, document, ()))


def _split_decode_error(message: str) -> tuple[str, int | None]:
    """tomllib ends its messages with "(at line N, column M)"; Python 3.11 has no attribute for the line."""
    match = re.search(r"\s*\(at line (\d+), column \d+\)$", message)
    if match is not None:
        return message[: match.start()], int(match.group(1))
    match = re.search(r"\s*\(at end of document\)$", message)
    return (message[: match.start()] if match else message), None


class _KeyLines:
    """Line numbers of table headers and keys, found by scanning the text the way TOML nests it.

    A small lexer follows strings and brackets across lines, so that a line inside a multi-line string or
    array is never mistaken for a header or a key. Keys inside inline tables are not recorded: an error
    there points at the line of the key holding the inline table.
    """

    _HEADER = re.compile(r"^\s*(\[\[?)\s*(.+?)\s*\]\]?\s*(#.*)?$")
    _PART = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
    _KEY = re.compile(rf"^\s*({_PART}(?:\s*\.\s*{_PART})*)\s*=")

    def __init__(self, text: str) -> None:
        self.lines: dict[KeyPath, int] = {}
        lines = text.splitlines()
        self.last_line = max(1, len(lines))
        self._depth = 0
        self._open_multiline: str | None = None
        array_counts: dict[KeyPath, int] = {}
        table: KeyPath = ()
        for number, line in enumerate(lines, start=1):
            at_top = self._depth == 0 and self._open_multiline is None
            self._lex(line)
            if not at_top:
                continue
            header = self._HEADER.match(line)
            if header is not None:
                resolved = self._resolve(_split_dotted(header.group(2)), array_counts)
                if header.group(1) == "[[":
                    array_counts[resolved] = array_counts.get(resolved, -1) + 1
                    table = (*resolved, array_counts[resolved])
                else:
                    table = resolved
                self.lines.setdefault(table, number)
                continue
            key = self._KEY.match(line)
            if key is not None:
                self.lines.setdefault((*table, *_split_dotted(key.group(1))), number)

    def _lex(self, line: str) -> None:
        """Advance the bracket depth and the open multi-line string over one line."""
        position = 0
        if self._open_multiline is not None:
            close = _find_close(line, 0, self._open_multiline)
            if close < 0:
                return
            self._open_multiline, position = None, close
        while position < len(line):
            char = line[position]
            if char == "#":
                return
            if line.startswith('"""', position) or line.startswith("'''", position):
                quote = line[position : position + 3]
                close = _find_close(line, position + 3, quote)
                if close < 0:
                    self._open_multiline = quote
                    return
                position = close
            elif char in "\"'":
                close = _find_close(line, position + 1, char)
                position = close if close >= 0 else len(line)
            else:
                self._depth += (char in "[{") - (char in "]}")
                position += 1

    @staticmethod
    def _resolve(names: tuple[str, ...], array_counts: dict[KeyPath, int]) -> KeyPath:
        """`[a.b]` after `[[a]]` means the table b inside the latest element of the array a."""
        resolved: KeyPath = ()
        for position, name in enumerate(names):
            resolved = (*resolved, name)
            if position < len(names) - 1 and resolved in array_counts:
                resolved = (*resolved, array_counts[resolved])
        return resolved

    def line_of(self, path: KeyPath) -> int:
        for length in range(len(path), 0, -1):
            line = self.lines.get(path[:length])
            if line is not None:
                return line
        return 1


def _find_close(line: str, start: int, quote: str) -> int:
    """Index just after the closing `quote` from `start`, or -1; backslash escapes only in basic strings."""
    position = start
    while position < len(line):
        if quote[0] == '"' and line[position] == "\\":
            position += 2
        elif line.startswith(quote, position):
            return position + len(quote)
        else:
            position += 1
    return -1


def _split_dotted(text: str) -> tuple[str, ...]:
    parts = re.findall(r"""\s*("[^"]*"|'[^']*'|[^.\s]+)\s*(?:\.|$)""", text)
    return tuple(part[1:-1] if part[:1] in "\"'" else part for part in parts)


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
    def __init__(self, key_lines: _KeyLines, source: str) -> None:
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
    bounds = field.metadata.get(RANGE)
    if bounds is None or value is None:
        return None
    low, high = bounds
    assert isinstance(value, int | float), f"a range on the non-number field {field.name}"
    if low <= value <= high:  # NaN fails both comparisons: refused
        return None
    return f"`{field.name}` must be {_number(low)}..{_number(high)}, got {value}"


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# ------------------------------------------------------------------------------------------------ writing


def field_docs(cls: type) -> dict[str, str]:
    """The docstring of each field of the dataclass `cls` (the string literal under its annotation), and of the
    class itself under the key "" (absent when the class has none: dataclass makes one up from the fields)."""
    return dict(_field_docs(cls))


@functools.cache
def _field_docs(cls: type) -> tuple[tuple[str, str], ...]:
    classdef = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0]
    assert isinstance(classdef, ast.ClassDef), cls
    docs: list[tuple[str, str]] = []
    own = ast.get_docstring(classdef)
    if own is not None:
        docs.append(("", own))
    body = classdef.body
    for node, following in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs.append((node.target.id, inspect.cleandoc(following.value.value)))
    return tuple(docs)


def commented_toml(instance: object, header: str = "") -> str:
    """`instance` (a dataclass) as a TOML document that loads back to an equal instance, every key documented
    (see the module). `header` opens the document as comments."""
    lines = _comment(header)
    lines += _table_lines(instance, (), None, set())
    return "\n".join(lines).lstrip("\n") + "\n"


def _table_lines(instance: object, path: tuple[str, ...], stand_in: object, described: set[type]) -> list[str]:
    """The keys of one table, then its sub-tables. `stand_in` (an instance of the same class, or None) gives
    the values shown for fields that are None."""
    cls = type(instance)
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    lines: list[str] = []
    tables: list[tuple[dataclasses.Field[Any], object]] = []
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        value = getattr(instance, field.name)
        if dataclasses.is_dataclass(value):
            tables.append((field, value))
            continue
        lines.append("")
        lines += _comment(docs.get(field.name, ""))
        lines += _comment(_constraints(field, hints[field.name]))
        if value is not None:
            lines.append(f"{field.name} = {toml_value(value)}")
            continue
        shown = getattr(stand_in, field.name) if stand_in is not None else field.metadata.get(EXAMPLE)
        if shown is None:
            raise TypeError(f"{cls.__name__}.{field.name} is None by default and has no example(...) to show")
        lines.append(f"# {field.name} = {toml_value(shown)}")
    for field, value in tables:
        lines.append("")
        lines += _comment(docs.get(field.name, ""))
        if type(value) not in described and "" in field_docs(type(value)):
            described.add(type(value))
            lines += _comment(("\n" if field.name in docs else "") + field_docs(type(value))[""])
        lines.append(f"[{'.'.join((*path, field.name))}]")
        lines += _table_lines(value, (*path, field.name), field.metadata.get(EXAMPLE), described)
    return lines


def _constraints(field: dataclasses.Field[Any], hint: Any) -> str:
    bounds = field.metadata.get(RANGE)
    if bounds is not None:
        return f"Range: {_number(bounds[0])}..{_number(bounds[1])}."
    options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if typing.get_origin(hint) in (Union, types.UnionType) and len(options) == 1:
        hint = options[0]
    if typing.get_origin(hint) is Literal:
        return "One of: " + ", ".join(toml_value(option) for option in typing.get_args(hint)) + "."
    return ""


def _comment(text: str) -> list[str]:
    return [f"# {line}".rstrip() for line in text.splitlines()]


def toml_value(value: object) -> str:
    """`value` written as TOML (a bool, number, string, path or tuple of these)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)  # a float's repr has a point or an exponent and reads back exactly; inf and nan too
    if isinstance(value, str | Path):
        # A JSON string is a TOML basic string, but for DEL, which TOML wants escaped.
        return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")
