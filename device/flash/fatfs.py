"""Files on the boot (FAT32) partition, read and written without mounting it: mtools, on the image file or the
card, at the partition's byte offset (`mcopy -i FILE@@OFFSET`). No root is needed for an image file.

`check` runs `fsck.vfat -n` (read-only) on a copy of the partition: fsck.vfat takes no offset.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from device.flash.tools import ToolError, run_tool, tool_words
from device.flash.write import copy_range

_MTOOLS_ENV = {"MTOOLS_SKIP_CHECK": "1"}
"""mtools otherwise refuses a FAT whose geometry is not one of a floppy's or a partitioned disk's."""


@dataclass(frozen=True)
class FatVolume:
    """The FAT filesystem of a partition: the file (image or block device) holding it and where it starts."""

    path: Path
    offset_bytes: int
    size_bytes: int

    def __post_init__(self) -> None:
        if "@@" in str(self.path):
            raise ToolError(f"{self.path}: mtools cannot open a file whose name holds '@@': rename it")

    @property
    def spec(self) -> str:
        """The image argument mtools takes: FILE@@OFFSET."""
        return f"{self.path}@@{self.offset_bytes}"


def root_names(volume: FatVolume) -> tuple[str, ...]:
    """The names of the files and directories at the root of the FAT, in lower case (FAT ignores case)."""
    result = run_tool(
        ["mdir", "-b", "-i", volume.spec, "::/"], what=f"listing the boot partition of {volume.path}", env=_MTOOLS_ENV
    )
    names = []
    for line in result.stdout.decode(errors="replace").splitlines():
        if line.startswith("::/"):
            names.append(line[3:].rstrip("/").lower())
    return tuple(name for name in names if name)


def read_file(volume: FatVolume, name: str) -> bytes | None:
    """The bytes of file `name` at the root of the FAT, or None when there is no such file."""
    _check_root_name(name)
    result = run_tool(
        ["mcopy", "-n", "-i", volume.spec, f"::/{name}", "-"],
        what=f"reading {name} from the boot partition of {volume.path}",
        env=_MTOOLS_ENV,
        check=False,
    )
    if result.returncode == 0:
        return result.stdout
    if b"not found" in result.stderr:
        return None
    raise ToolError(
        f"reading {name} from the boot partition of {volume.path} failed: mcopy exited with "
        f"{result.returncode}: {tool_words(result)}"
    )


def write_files(volume: FatVolume, files: Mapping[str, bytes]) -> None:
    """Create or replace each file at the root of the FAT, then read each back and compare.

    The contents pass through a private temporary directory (mode 0700), overwritten with zeros and removed
    before this returns: some of them hold secrets (a Wi-Fi passphrase, a password hash)."""
    if not files:
        return
    for name in files:
        _check_root_name(name)
    with tempfile.TemporaryDirectory(prefix="spine-flash-fat-") as scratch:
        os.chmod(scratch, 0o700)
        local = [Path(scratch) / name for name in files]
        try:
            for path, content in zip(local, files.values(), strict=True):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as stream:
                    stream.write(content)
            run_tool(
                ["mcopy", "-o", "-D", "o", "-i", volume.spec, *map(str, local), "::/"],
                what=f"writing {', '.join(files)} to the boot partition of {volume.path}",
                env=_MTOOLS_ENV,
            )
        finally:
            for path in local:
                _wipe(path)
    for name, content in files.items():
        if read_file(volume, name) != content:
            raise ToolError(
                f"{name} on the boot partition of {volume.path} reads back different from what was written: "
                "the card may be failing; try another card"
            )


def check(volume: FatVolume) -> None:
    """`fsck.vfat -n` (changes nothing) on a copy of the partition; ToolError with its report when not clean."""
    with tempfile.TemporaryDirectory(prefix="spine-flash-fsck-") as scratch:
        copy = Path(scratch) / "boot.vfat"
        copy_range(volume.path, volume.offset_bytes, volume.size_bytes, copy)
        result = run_tool(["fsck.vfat", "-n", str(copy)], what="checking the boot partition", check=False)
    if result.returncode != 0:
        raise ToolError(
            f"the boot partition of {volume.path} is not clean after writing (fsck.vfat -n: {tool_words(result)}): "
            "flash again; if it happens again, the image or the card is damaged"
        )


def _check_root_name(name: str) -> None:
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"not a file name at the FAT's root: {name!r}")


def _wipe(path: Path) -> None:
    """Overwrite a file with zeros and remove it (best effort on filesystems that keep old blocks)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    with path.open("r+b") as stream:
        stream.write(b"\0" * size)
        stream.flush()
        os.fsync(stream.fileno())
    path.unlink()
