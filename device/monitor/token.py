"""The monitor's two tokens: read-only (`monitor-token`) and admin (`monitor-admin-token`), one file each.

Each is 32 random bytes (URL-safe base64), created on first start with mode 0600 in the state directory and
read back on every later start, so a bookmarked URL keeps working. A request proves a token by a header
(`Authorization: Bearer ...`) or the cookie the login page sets; the comparison is constant-time
(`hmac.compare_digest`) so response timing tells nothing about how much of a guess was right. A token is never
logged and never put in a URL the server sees (the login URL carries it after `#`, which browsers keep local).
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from device.errors import UserError

READ_ONLY_FILE = "monitor-token"
ADMIN_FILE = "monitor-admin-token"
TOKEN_BYTES = 32


class Access(Enum):
    NONE = "none"
    READ_ONLY = "read-only"
    ADMIN = "admin"


@dataclass(frozen=True)
class Tokens:
    read_only: str
    admin: str

    def access_of(self, presented: str | None) -> Access:
        """What `presented` grants; both tokens are compared every time, so the time taken does not say which
        one (if any) was close."""
        if not presented:
            return Access.NONE
        # surrogatepass: aiohttp decodes a header's bytes that are not UTF-8 as lone surrogates (surrogateescape),
        # which a plain encode() refuses (UnicodeEncodeError: a 500 for a garbled Authorization header).
        given = presented.encode("utf-8", "surrogatepass")
        is_admin = hmac.compare_digest(given, self.admin.encode())
        is_read_only = hmac.compare_digest(given, self.read_only.encode())
        if is_admin:
            return Access.ADMIN
        return Access.READ_ONLY if is_read_only else Access.NONE


def state_dir_path(state_dir: str) -> Path:
    return Path(os.path.expanduser(state_dir))


def load_or_create_tokens(state_dir: Path) -> Tokens:
    """The tokens in `state_dir`, each created (mode 0600) if missing. A token file others may read is refused:
    anyone on the machine could watch (or, with the admin token, steer) the assistant."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as error:
        raise UserError(
            f"cannot create the monitor's state directory: {error.strerror}; set [monitor] state_dir",
            where=str(state_dir),
        ) from None
    return Tokens(_load_or_create(state_dir / READ_ONLY_FILE), _load_or_create(state_dir / ADMIN_FILE))


def _load_or_create(path: Path) -> str:
    if not path.exists():
        token = secrets.token_urlsafe(TOKEN_BYTES)
        try:
            # O_EXCL: two daemons starting at once cannot both write (and one read a half-written token).
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return _read(path)
        except OSError as error:
            raise UserError(f"cannot create the monitor token: {error.strerror}", where=str(path)) from None
        with os.fdopen(descriptor, "w", encoding="ascii") as out:
            out.write(token + "\n")
        return token
    return _read(path)


def _read(path: Path) -> str:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise UserError(f"the monitor token is readable by others (mode {mode:o}); run `chmod 600 {path}`")
    token = path.read_text(encoding="ascii").strip()
    if len(token) < TOKEN_BYTES:
        raise UserError(f"the monitor token is too short; delete {path} and a new one is made at start")
    return token
