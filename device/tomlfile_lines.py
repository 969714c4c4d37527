"""Where each table header and key sits in a TOML text: the loader's errors name FILE:LINE.

TOML carries no line numbers in its parsed form, so `KeyLines` scans the text once and remembers on which line
each table header and each `key =` sits; an error names the deepest of those it can find (the key, else its
table's header, else line 1).
"""

from __future__ import annotations

import re

# A location inside the document: table keys and, for arrays, the index of the element.
KeyPath = tuple[str | int, ...]


class KeyLines:
    """Line numbers of table headers and keys, found by scanning the text the way TOML nests it.

    A small lexer follows strings and brackets across lines, so that a line inside a multi-line string or
    array is never mistaken for a header or a key. Keys inside inline tables are not recorded: an error
    there points at the line of the key holding the inline table.
    """

    # Linear on any line: no `\s*` on either side of the lazy name (`_split_dotted` skips that space), because
    # `\s*(.+?)\s*` tried every three-way split of a run of spaces, cubic: "[" and 4000 spaces took 40 s.
    _HEADER = re.compile(r"^\s*(\[\[?)(.+?)\]\]?\s*(#.*)?$")
    # A basic string may hold escaped quotes (`"a\"b"`), a literal string none.
    _PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
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


_DOTTED_PART = re.compile(r"""\s*("(?:[^"\\]|\\.)*"|'[^']*'|[^.\s]+)\s*(?:\.|$)""")


def _split_dotted(text: str) -> tuple[str, ...]:
    """`a . "b.c".d` -> ("a", "b.c", "d"): each part matched where the one before it ended, up to the first that
    does not match. (`re.findall` retried the pattern from every character after a failed match, quadratic: a
    header key of 10 000 characters with an escaped quote in it took 1.5 s, of 1 MB hours.)"""
    parts: list[str] = []
    position = 0
    while (match := _DOTTED_PART.match(text, position)) is not None:
        parts.append(match.group(1))
        position = match.end()
    return tuple(part[1:-1] if part[:1] in "\"'" else part for part in parts)
