"""A dataclass instance written as a commented TOML document (what `spine config --default` prints).

`commented_toml` writes a dataclass instance as a TOML document that loads back (device/tomlfile.py) to the
same instance, each key preceded by its field docstring (read from the source: Python keeps no attribute
docstrings), its range or its choices as `#` comments. A field that is None (TOML has no null) is written
commented out, showing the value its metadata gives as an `example(...)`.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import json
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

from device.tomlfile_fields import EXAMPLE, RANGE, number_text


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
        return f"Range: {number_text(bounds[0])}..{number_text(bounds[1])}."
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
