"""The system tools `spine flash` drives (mtools, e2fsprogs, dosfstools, util-linux, openssl): finding them,
naming the Debian package of each one that is missing, and running them with errors a user can act on.

e2fsprogs and dosfstools install into /usr/sbin, which is not on an ordinary user's PATH on Debian; writing an
image file needs no root, so they are looked for there too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence

from device.errors import UserError

TOOL_PACKAGES = {
    "mcopy": "mtools",
    "mdir": "mtools",
    "debugfs": "e2fsprogs",
    "e2fsck": "e2fsprogs",
    "resize2fs": "e2fsprogs",
    "fsck.vfat": "dosfstools",
    "lsblk": "util-linux",
    "openssl": "openssl",
}
"""Each tool and the Debian package that has it."""

FLASH_TOOLS = ("mcopy", "mdir", "debugfs", "e2fsck", "resize2fs", "fsck.vfat")
"""What every flash needs (lsblk too for a card; openssl for --password-file)."""

_SYSTEM_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


class ToolError(UserError):
    """A tool is missing or failed: the message names the package to install or what went wrong."""


def find_tool(name: str) -> str | None:
    """The path of `name`, looked for on PATH and in the system directories."""
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), *_SYSTEM_DIRS])
    return shutil.which(name, path=search)


def require_tools(names: Iterable[str]) -> None:
    """ToolError naming every missing tool and the `apt install` line that brings them."""
    missing = [name for name in dict.fromkeys(names) if find_tool(name) is None]
    if not missing:
        return
    packages = " ".join(dict.fromkeys(TOOL_PACKAGES.get(name, name) for name in missing))
    raise ToolError(f"spine flash needs {', '.join(missing)}, not found on this machine: sudo apt install {packages}")


def run_tool(
    args: Sequence[str],
    *,
    what: str,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run tool `args[0]` (found as `find_tool` finds it); ToolError saying `what` failed and the tool's own
    words when it exits non-zero (and `check`)."""
    path = find_tool(args[0])
    if path is None:
        require_tools([args[0]])
        raise AssertionError("unreachable: require_tools raises for a missing tool")
    result = subprocess.run(
        [path, *args[1:]],
        input=b"" if stdin is None else stdin,  # never the terminal: a tool that asks must fail, not hang
        capture_output=True,
        env={**os.environ, **env} if env else None,
        check=False,
    )
    if check and result.returncode != 0:
        raise ToolError(f"{what} failed: {args[0]} exited with {result.returncode}: {tool_words(result)}")
    return result


def tool_words(result: subprocess.CompletedProcess[bytes]) -> str:
    """What a tool said (stderr, else stdout), on one line, shortened."""
    words = (result.stderr or result.stdout).decode(errors="replace").strip()
    words = " / ".join(line.strip() for line in words.splitlines() if line.strip())
    return words[:600] or "(it said nothing)"
