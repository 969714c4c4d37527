"""The root (ext4) filesystem of the flashed image, changed without mounting it: grown with `resize2fs` when the
bundle does not fit, the bundle written into it with `debugfs -w`, checked with `e2fsck -fn`.

e2fsprogs opens a filesystem inside a larger file or disk with `FILE?offset=BYTES`, so the card is worked on in
place. One exception: resize2fs, given a regular file, truncates that file to the filesystem's new size as if
the filesystem started at byte 0, destroying an image file's tail. An image file's root is therefore grown
(and filled) in a copy of the partition next to it, then copied back.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from device.flash.tools import ToolError, run_tool, tool_words
from device.flash.write import copy_range

_SUPERBLOCK_OFFSET = 1024
_SUPERBLOCK_BYTES = 1024
_EXT_MAGIC = 0xEF53
_INCOMPAT_64BIT = 0x80
MIB = 1024 * 1024
HEADROOM_BYTES = 64 * MIB
"""Free space left in the root beside the bundle, for the first boot's own writes before Raspberry Pi OS grows
the root to the whole card (its log, the configuration, apt's and systemd's files)."""
GROWTH_MARGIN = 1.10
"""Growing an ext4 by N bytes frees less than N: each new block group has its own bitmaps and inode table, and
the reserved blocks grow in proportion. 10 % more covers both (the result is checked after the resize)."""
_GROWTH_ALIGN_BYTES = 4 * MIB
_DEBUGFS_BENIGN = ("rm: file not found by ext2_lookup",)
"""What debugfs says that is not a failure here: `rm` of a file that is not there."""


@dataclass(frozen=True)
class Ext4Summary:
    """What the superblock says about space."""

    block_bytes: int
    block_count: int
    free_blocks: int
    reserved_blocks: int

    @property
    def size_bytes(self) -> int:
        return self.block_count * self.block_bytes

    @property
    def free_bytes(self) -> int:
        """Free space an ordinary writer may use (the blocks reserved for root left alone)."""
        return max(0, self.free_blocks - self.reserved_blocks) * self.block_bytes


@dataclass(frozen=True)
class Ext4Volume:
    """The ext4 filesystem of a partition: the file (image or block device) holding it, where it starts and how
    long the partition is."""

    path: Path
    offset_bytes: int
    size_bytes: int

    @property
    def spec(self) -> str:
        """The name e2fsprogs opens: FILE?offset=BYTES."""
        return f"{self.path}?offset={self.offset_bytes}" if self.offset_bytes else str(self.path)


def parse_superblock(raw: bytes, where: str) -> Ext4Summary:
    """The space figures of the ext2/3/4 superblock `raw` (the 1024 bytes at byte 1024 of the filesystem)."""
    if len(raw) < _SUPERBLOCK_BYTES or struct.unpack_from("<H", raw, 0x38)[0] != _EXT_MAGIC:
        raise ToolError(
            f"{where} holds no ext4 filesystem (no superblock magic): it is not a Raspberry Pi OS image; "
            "download Raspberry Pi OS Lite (64-bit) again"
        )
    blocks_lo, reserved_lo, free_lo = struct.unpack_from("<III", raw, 0x04)
    (log_block_size,) = struct.unpack_from("<I", raw, 0x18)
    (incompat,) = struct.unpack_from("<I", raw, 0x60)
    blocks_hi = reserved_hi = free_hi = 0
    if incompat & _INCOMPAT_64BIT:
        blocks_hi, reserved_hi, free_hi = struct.unpack_from("<III", raw, 0x150)
    return Ext4Summary(
        block_bytes=1024 << log_block_size,
        block_count=blocks_lo | blocks_hi << 32,
        free_blocks=free_lo | free_hi << 32,
        reserved_blocks=reserved_lo | reserved_hi << 32,
    )


def read_summary(volume: Ext4Volume) -> Ext4Summary:
    """The superblock's space figures, read from the volume."""
    with volume.path.open("rb") as stream:
        stream.seek(volume.offset_bytes + _SUPERBLOCK_OFFSET)
        return parse_superblock(stream.read(_SUPERBLOCK_BYTES), f"partition 2 of {volume.path}")


def needed_partition_bytes(summary: Ext4Summary, partition_bytes: int, bundle_bytes: int) -> int:
    """How long partition 2 must be for the bundle (and `HEADROOM_BYTES`) to fit in its filesystem:
    `partition_bytes` when they fit already, else grown by the shortfall (with `GROWTH_MARGIN`), to a 4 MiB
    multiple."""
    shortfall = bundle_bytes + HEADROOM_BYTES - summary.free_bytes
    if shortfall <= 0:
        return partition_bytes
    grown = max(partition_bytes, summary.size_bytes) + int(shortfall * GROWTH_MARGIN)
    return -(-grown // _GROWTH_ALIGN_BYTES) * _GROWTH_ALIGN_BYTES


def is_block_device(path: Path) -> bool:
    return stat.S_ISBLK(path.stat().st_mode)


@contextlib.contextmanager
def working_copy(volume: Ext4Volume, grown_bytes: int) -> Iterator[Ext4Volume]:
    """The volume to change: in place for a block device or when the partition keeps its size; for an image file
    whose partition grows (see the module: resize2fs), a copy of the partition in a temporary file beside it,
    `grown_bytes` long, copied back over the partition when the block ends without an error. The image file must
    already be long enough for the grown partition."""
    if grown_bytes == volume.size_bytes or is_block_device(volume.path):
        yield replace(volume, size_bytes=grown_bytes)
        return
    with tempfile.TemporaryDirectory(prefix=".spine-flash-", dir=volume.path.parent) as scratch:
        copy = Path(scratch) / "root.ext4"
        copy_range(volume.path, volume.offset_bytes, volume.size_bytes, copy)
        with copy.open("r+b") as stream:
            stream.truncate(grown_bytes)
        yield Ext4Volume(path=copy, offset_bytes=0, size_bytes=grown_bytes)
        copy_range(copy, 0, grown_bytes, volume.path, destination_offset_bytes=volume.offset_bytes)


def grow(volume: Ext4Volume) -> Ext4Summary:
    """Check the filesystem (`e2fsck -fp`: resize2fs requires it) and grow it to fill its partition
    (`volume.size_bytes`); return the new space figures."""
    prepare = run_tool(
        ["e2fsck", "-fp", volume.spec], what="checking the root filesystem before growing it", check=False
    )
    if prepare.returncode not in (0, 1):  # 1: problems found and fixed (preen mode fixes only safe ones)
        raise ToolError(
            f"the root filesystem of the image has errors e2fsck cannot fix safely ({tool_words(prepare)}): "
            "download the image again"
        )
    summary = read_summary(volume)
    blocks = volume.size_bytes // summary.block_bytes
    if blocks > summary.block_count:
        run_tool(
            ["resize2fs", volume.spec, f"{blocks * summary.block_bytes // 1024}K"],
            what=f"growing the root filesystem to {volume.size_bytes // MIB} MiB",
        )
    return read_summary(volume)


def write_file(volume: Ext4Volume, local: Path, destination: str, mode: int = 0o600) -> None:
    """Write the local file into the filesystem at `destination` (absolute), owned by root with `mode`,
    creating its missing parent directories (root's, mode 0755, the deepest 0700), replacing a file already there;
    then read it back and compare its sha256."""
    target = PurePosixPath(destination)
    if not target.is_absolute() or ".." in target.parts or len(target.parts) < 2:
        raise ValueError(f"not an absolute file path: {destination}")
    if any(character.isspace() for character in destination):
        raise ValueError(f"debugfs commands cannot hold a name with white space: {destination!r}")
    parents = [str(parent) for parent in reversed(target.parents) if str(parent) != "/"]
    # Only the missing ones: debugfs 1.47.0's mkdir of an existing directory can leave an allocated, unlinked
    # inode behind (e2fsck then finds an "unconnected directory").
    missing = [parent for parent in parents if not exists(volume, parent)]
    commands = [f"mkdir {parent}" for parent in missing]
    commands += [f"sif {missing[-1]} mode 040700"] if missing else []
    with tempfile.TemporaryDirectory(prefix="spine-flash-link-") as scratch:
        # debugfs reads its commands split at white space: the local file goes in through a plain-named link.
        link = Path(scratch) / "source"
        link.symlink_to(local.resolve())
        commands += [
            f"cd {target.parent}",
            f"rm {target.name}",
            f"write {link} {target.name}",
            f"sif {target.name} mode 0{0o100000 | mode:o}",
            f"sif {target.name} uid 0",
            f"sif {target.name} gid 0",
        ]
        _debugfs(volume, commands, writable=True, what=f"writing {destination} into the root filesystem")
    expected = _sha256_of(local)
    found = file_sha256(volume, destination)
    if found != expected:
        raise ToolError(
            f"{destination} in the root filesystem of {volume.path} does not read back as written "
            f"(sha256 {found or 'missing'}, expected {expected}): the card may be failing; try another card"
        )


def exists(volume: Ext4Volume, path: str) -> bool:
    """Whether `path` names anything in the filesystem."""
    result = run_tool(["debugfs", "-R", f"stat {path}", volume.spec], what=f"looking up {path}", check=False)
    if b"File not found" in result.stderr:
        return False
    if result.returncode != 0 or b"Inode:" not in result.stdout:
        raise ToolError(f"looking up {path} in the root filesystem failed: debugfs said: {tool_words(result)}")
    return True


def file_sha256(volume: Ext4Volume, path: str) -> str | None:
    """The sha256 of file `path` in the filesystem (dumped with debugfs), or None when it is not there."""
    with tempfile.TemporaryDirectory(prefix="spine-flash-dump-") as scratch:
        dumped = Path(scratch) / "file"
        result = run_tool(
            ["debugfs", "-R", f"dump {path} {dumped}", volume.spec],
            what=f"reading {path} from the root filesystem",
            check=False,
        )
        if not dumped.exists() or b"not found" in result.stderr.lower():
            return None
        return _sha256_of(dumped)


def read_text(volume: Ext4Volume, path: str, *, max_links: int = 8) -> str | None:
    """The text of file `path` in the filesystem (debugfs `cat`), following symbolic links as the system would
    (/etc/os-release is one, to ../usr/lib/os-release); None when it is not there or cannot be read (a partly
    decompressed copy, say)."""
    current = PurePosixPath(path)
    for _ in range(max_links):
        shown = run_tool(["debugfs", "-R", f"stat {current}", volume.spec], what=f"looking up {current}", check=False)
        described = shown.stdout.decode(errors="replace")
        if "Type: symlink" not in described:
            if "Type: regular" not in described:
                return None
            result = run_tool(["debugfs", "-R", f"cat {current}", volume.spec], what=f"reading {current}", check=False)
            return result.stdout.decode("utf-8", errors="replace") if result.returncode == 0 else None
        fast = re.search(r'^Fast link dest: "(.*)"$', described, re.MULTILINE)
        if fast:
            link = fast.group(1)
        else:  # a long target is kept in a data block, which `cat` prints
            shown = run_tool(["debugfs", "-R", f"cat {current}", volume.spec], what=f"reading {current}", check=False)
            link = shown.stdout.decode(errors="replace")
        current = PurePosixPath(os.path.normpath(current.parent / link))
    return None


def check(volume: Ext4Volume) -> None:
    """`e2fsck -fn` (changes nothing); ToolError with its report when the filesystem is not clean."""
    result = run_tool(["e2fsck", "-fn", volume.spec], what="checking the root filesystem", check=False)
    if result.returncode != 0:
        raise ToolError(
            f"the root filesystem of {volume.path} is not clean after writing (e2fsck -fn: {tool_words(result)}): "
            "flash again; if it happens again, the image or the card is damaged"
        )


def _debugfs(volume: Ext4Volume, commands: list[str], *, writable: bool, what: str) -> None:
    """Run debugfs commands; ToolError on anything it reports but the benign messages. (debugfs exits 0 even
    when a command fails, so its words are what tell.)"""
    with tempfile.NamedTemporaryFile("w", prefix="spine-flash-debugfs-", suffix=".txt") as script:
        script.write("\n".join(commands) + "\n")
        script.flush()
        result = run_tool(["debugfs", *(["-w"] if writable else []), "-f", script.name, volume.spec], what=what)
    complaints = [
        line
        for line in result.stderr.decode(errors="replace").splitlines()
        if line.strip()
        and not line.startswith("debugfs ")  # its version banner
        and not line.lower().startswith(_DEBUGFS_BENIGN)
    ]
    if complaints:
        raise ToolError(f"{what} failed: debugfs said: {' / '.join(complaints)[:600]}")


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()
