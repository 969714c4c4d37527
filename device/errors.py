"""Errors a user can act on.

A `UserError` is printed by the CLI as one line (no traceback) and exits with status 2. Its message must say
what is wrong and, where there is one, how to fix it; `where` names the file and line when the input came from
a file.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a missing prerequisite, reported to the user in one line."""

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message
