"""After the image is written and verified: make the target boot into Spine's first boot, without mounting it.

In order: the target's partition table is read again and must be the source's; partition 2 is lengthened in the
MBR and its ext4 grown when the bundle needs the room (an image file is lengthened first); the bundle goes into
the root filesystem (debugfs) and is read back; the first-boot files go onto the boot partition (mtools) and are
read back; then `e2fsck -fn` and `fsck.vfat -n` must find both filesystems clean. On a card the kernel is last
asked to read the new partition table.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from device.flash import fatfs, rootfs
from device.flash.fatfs import FatVolume
from device.flash.firstboot import detect_mechanism
from device.flash.image import human_bytes
from device.flash.partitions import SECTOR_BYTES, pi_layout, with_root_sectors
from device.flash.plan import FlashPlan
from device.flash.rootfs import Ext4Volume
from device.flash.write import WriteError, reread_partition_table


def customise(plan: FlashPlan, say: Callable[[str], None]) -> None:
    """Carry out steps 2 to 5 of the plan on the written target; `say` is told each step."""
    target = plan.target
    sector0 = _read_sector0(target)
    layout = pi_layout(sector0, str(target), target_bytes(target))
    if layout != plan.facts.layout:
        raise WriteError(f"{target}'s partition table differs from the image's after writing: flash again")
    boot = FatVolume(target, layout.boot.offset_bytes, layout.boot.size_bytes)
    cmdline = fatfs.read_file(boot, "cmdline.txt") or b""
    if detect_mechanism(fatfs.root_names(boot), cmdline.decode("utf-8", errors="replace")) is not plan.mechanism:
        raise WriteError(f"{target}'s boot partition differs from the image's after writing: flash again")

    root = Ext4Volume(target, layout.root.offset_bytes, layout.root.size_bytes)
    if plan.grows_root:
        say(
            f"growing partition 2 to {human_bytes(plan.grown_root_bytes)}"
            + ("" if plan.target_is_device else f" (the image file to {human_bytes(plan.end_bytes)})")
        )
        if not plan.target_is_device and target_bytes(target) < plan.end_bytes:
            os.truncate(target, plan.end_bytes)
        _write_sector0(target, with_root_sectors(sector0, plan.grown_root_bytes // SECTOR_BYTES))
    with rootfs.working_copy(root, plan.grown_root_bytes) as work:
        if plan.grows_root:
            say("growing the root filesystem (e2fsck -fp, resize2fs)")
            grown = rootfs.grow(work)
            if grown.free_bytes < plan.bundle_bytes:
                raise WriteError(
                    f"the grown root filesystem has {human_bytes(grown.free_bytes)} free, less than the bundle's "
                    f"{human_bytes(plan.bundle_bytes)}: report this as a bug, with this line"
                )
        say(f"writing the bundle into the root filesystem as {plan.bundle_path_on_device}")
        rootfs.write_file(work, plan.bundle, plan.bundle_path_on_device)
    say(f"writing {', '.join(plan.boot_files)} to the boot partition")
    fatfs.write_files(boot, plan.boot_files)

    say("checking the filesystems (e2fsck -fn, fsck.vfat -n)")
    rootfs.check(Ext4Volume(target, layout.root.offset_bytes, plan.grown_root_bytes))
    fatfs.check(boot)
    if plan.target_is_device and not reread_partition_table(target):
        say("(the kernel still shows the old partition sizes until the card is plugged in again: harmless)")


def target_bytes(target: Path) -> int:
    """The size of an image file or a block device."""
    fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def _read_sector0(target: Path) -> bytes:
    fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.pread(fd, SECTOR_BYTES, 0)
    finally:
        os.close(fd)


def _write_sector0(target: Path, sector0: bytes) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)
    try:
        if os.pwrite(fd, sector0, 0) != SECTOR_BYTES:
            raise WriteError(f"could not write the partition table of {target}: flash again")
        os.fsync(fd)
    finally:
        os.close(fd)
