"""The MBR partition table of a Raspberry Pi OS image (or of the card it was written to): partition 1 the FAT32
boot partition, partition 2 the ext4 root filesystem, nothing else.

Parsed and edited here, in the first 512-byte sector, rather than with sfdisk: `spine flash` only ever reads the
two entries and lengthens the second, and doing it on bytes works the same on an image file and on a card, with
nothing to parse from another tool's output. The disk identifier (bytes 440-443) is kept: cmdline.txt names the
root as `root=PARTUUID=<identifier>-02`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from device.errors import UserError

SECTOR_BYTES = 512
_TABLE_OFFSET = 446
_ENTRY_BYTES = 16
_SIGNATURE = b"\x55\xaa"
_DISK_ID_OFFSET = 440
FAT32_TYPES = (0x0B, 0x0C)
"""FAT32 with CHS addressing, and with LBA (Raspberry Pi OS uses 0x0c)."""
LINUX_TYPE = 0x83
_GPT_PROTECTIVE_TYPE = 0xEE
_MAX_CHS = (1023, 254, 63)
"""The largest cylinder/head/sector an MBR entry can hold: what an entry ending past 8 GB records."""
_HEADS = 255
_SECTORS_PER_TRACK = 63


class LayoutError(UserError):
    """The image (or card) is not laid out as a Raspberry Pi OS image: the message says what was found."""


@dataclass(frozen=True)
class Partition:
    """One MBR entry: its number (1-4), type byte and place, in 512-byte sectors."""

    number: int
    type_id: int
    start_sector: int
    sector_count: int

    @property
    def offset_bytes(self) -> int:
        return self.start_sector * SECTOR_BYTES

    @property
    def size_bytes(self) -> int:
        return self.sector_count * SECTOR_BYTES

    @property
    def end_sector(self) -> int:
        """The first sector after the partition."""
        return self.start_sector + self.sector_count

    @property
    def end_bytes(self) -> int:
        return self.end_sector * SECTOR_BYTES


@dataclass(frozen=True)
class PiLayout:
    """A Raspberry Pi OS disk: the MBR's disk identifier, the boot (FAT32) and root (ext4) partitions."""

    disk_id: int
    boot: Partition
    root: Partition

    @property
    def partuuid_prefix(self) -> str:
        """What cmdline.txt's `root=PARTUUID=` names before `-02`."""
        return f"{self.disk_id:08x}"


def parse_mbr(sector0: bytes, where: str) -> tuple[Partition, ...]:
    """The used primary partition entries of the MBR in `sector0` (the disk's first 512 bytes)."""
    if len(sector0) < SECTOR_BYTES:
        raise LayoutError(f"{where} is shorter than one sector: not a disk image")
    if sector0[510:512] != _SIGNATURE:
        raise LayoutError(
            f"{where} has no MBR partition table (no 55 AA signature in its first sector): it is not a Raspberry "
            "Pi OS image; download Raspberry Pi OS Lite (64-bit) and pass its .img.xz"
        )
    partitions = []
    for index in range(4):
        entry = sector0[_TABLE_OFFSET + index * _ENTRY_BYTES : _TABLE_OFFSET + (index + 1) * _ENTRY_BYTES]
        type_id = entry[4]
        start, count = struct.unpack_from("<II", entry, 8)
        if type_id == 0 or count == 0:
            continue
        partitions.append(Partition(number=index + 1, type_id=type_id, start_sector=start, sector_count=count))
    return tuple(partitions)


def pi_layout(sector0: bytes, where: str, disk_bytes: int) -> PiLayout:
    """The Raspberry Pi OS layout of the disk whose first sector is `sector0` and whose size is `disk_bytes`;
    LayoutError, saying what is there instead, for anything else."""
    partitions = parse_mbr(sector0, where)
    if any(partition.type_id == _GPT_PROTECTIVE_TYPE for partition in partitions):
        raise LayoutError(
            f"{where} has a GPT partition table: Raspberry Pi OS images use MBR; pass a Raspberry Pi OS Lite image"
        )
    found = ", ".join(f"{p.number}: type 0x{p.type_id:02x}" for p in partitions) or "none"
    expected = "partition 1 FAT32 (type 0x0c) boot and partition 2 Linux (type 0x83) root, nothing else"
    numbers = [partition.number for partition in partitions]
    if numbers != [1, 2]:
        raise LayoutError(
            f"{where} is not laid out as Raspberry Pi OS ({expected}); its partitions: {found}. "
            "Pass a Raspberry Pi OS (bookworm or later) image"
        )
    boot, root = partitions
    if boot.type_id not in FAT32_TYPES or root.type_id != LINUX_TYPE:
        raise LayoutError(
            f"{where} is not laid out as Raspberry Pi OS ({expected}); its partitions: {found}. "
            "Pass a Raspberry Pi OS (bookworm or later) image"
        )
    if root.start_sector < boot.end_sector:
        raise LayoutError(f"{where}: partition 2 starts inside partition 1; the image is damaged, download it again")
    if root.end_bytes > disk_bytes:
        raise LayoutError(
            f"{where}: partition 2 ends at byte {root.end_bytes}, past the image's end ({disk_bytes} bytes): "
            "the image was cut short; download it again"
        )
    (disk_id,) = struct.unpack_from("<I", sector0, _DISK_ID_OFFSET)
    return PiLayout(disk_id=disk_id, boot=boot, root=root)


def with_root_sectors(sector0: bytes, sector_count: int) -> bytes:
    """`sector0` with partition 2's length set to `sector_count` sectors (its start, its type and the disk
    identifier unchanged), and its CHS end address to match."""
    partitions = parse_mbr(sector0, "the first sector")
    root = next((partition for partition in partitions if partition.number == 2), None)
    if root is None:
        raise LayoutError("the partition table has no partition 2 to grow")
    entry = _TABLE_OFFSET + _ENTRY_BYTES
    updated = bytearray(sector0[:SECTOR_BYTES])
    updated[entry + 5 : entry + 8] = _chs_bytes(root.start_sector + sector_count - 1)
    struct.pack_into("<I", updated, entry + 12, sector_count)
    return bytes(updated)


def _chs_bytes(lba: int) -> bytes:
    """The 3-byte CHS address of sector `lba` (255 heads, 63 sectors a track), or the largest one past it."""
    cylinder, rest = divmod(lba, _HEADS * _SECTORS_PER_TRACK)
    head, sector = divmod(rest, _SECTORS_PER_TRACK)
    sector += 1
    if cylinder > _MAX_CHS[0]:
        cylinder, head, sector = _MAX_CHS
    return bytes((head, sector | ((cylinder >> 2) & 0xC0), cylinder & 0xFF))
