"""The boot (FAT, mtools) and root (ext4, e2fsprogs) filesystems of a flashed image, changed without mounting,
and the write/verify/copy primitives, on a small synthetic Raspberry Pi OS image (tests/flash_images.py)."""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
from pathlib import Path

import pytest

from device.flash import fatfs, rootfs
from device.flash.fatfs import FatVolume
from device.flash.image import open_source
from device.flash.rootfs import HEADROOM_BYTES, Ext4Summary, Ext4Volume, needed_partition_bytes
from device.flash.tools import ToolError, require_tools
from device.flash.write import WriteError, copy_range, verify, write_image
from tests.flash_images import CMDLINE, SECTOR, PiImage, build_pi_image, run

MIB = 1024 * 1024


@pytest.fixture
def image(tmp_path: Path) -> PiImage:
    return build_pi_image(tmp_path, cloud_init=False, boot_mib=40, root_mib=16)


def _boot(image: PiImage) -> FatVolume:
    return FatVolume(image.path, image.boot_start_sector * SECTOR, image.boot_sectors * SECTOR)


def _root(image: PiImage) -> Ext4Volume:
    return Ext4Volume(image.path, image.root_start_sector * SECTOR, image.root_sectors * SECTOR)


# --- FAT ---------------------------------------------------------------------------------------------------


def test_the_boot_partition_is_listed_and_read_in_place(image: PiImage) -> None:
    boot = _boot(image)
    names = fatfs.root_names(boot)
    assert {"cmdline.txt", "config.txt", "kernel8.img", "overlays", "bcm2712-rpi-5-b.dtb"} <= set(names)
    assert fatfs.read_file(boot, "cmdline.txt") == CMDLINE.encode()
    assert fatfs.read_file(boot, "CMDLINE.TXT") == CMDLINE.encode()  # FAT ignores case
    assert fatfs.read_file(boot, "user-data") is None


def test_files_are_created_and_replaced_then_the_fat_is_clean(
    image: PiImage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    boot = _boot(image)
    secret = b"psk=" + random.Random(3).randbytes(32).hex().encode()
    fatfs.write_files(boot, {"cmdline.txt": b"replaced\n", "spine-wifi.nmconnection": secret})
    assert fatfs.read_file(boot, "cmdline.txt") == b"replaced\n"
    assert fatfs.read_file(boot, "spine-wifi.nmconnection") == secret
    assert list(scratch.iterdir()) == []  # the secret's passage through a temporary file left nothing
    fatfs.check(boot)


def test_a_damaged_fat_fails_the_check(image: PiImage) -> None:
    boot = _boot(image)
    with image.path.open("r+b") as stream:  # the first FAT's entry for a cluster, now unlike the second FAT's
        stream.seek(boot.offset_bytes + 32 * SECTOR + 64)
        stream.write(b"\x77\x77\x77\x00")
    with pytest.raises(ToolError, match=r"not clean after writing \(fsck\.vfat -n"):
        fatfs.check(boot)


# --- ext4 --------------------------------------------------------------------------------------------------


def test_the_superblock_gives_the_roots_space(image: PiImage) -> None:
    summary = rootfs.read_summary(_root(image))
    assert summary.block_bytes == 4096
    assert summary.size_bytes == 16 * MIB
    assert 0 < summary.free_bytes < summary.size_bytes
    dumped = run("dumpe2fs", "-h", _root(image).spec).stdout.decode()
    assert f"Free blocks:              {summary.free_blocks}\n" in dumped


def test_growth_is_what_the_bundle_and_headroom_lack() -> None:
    summary = Ext4Summary(block_bytes=4096, block_count=25_600, free_blocks=12_800, reserved_blocks=1_280)
    free = (12_800 - 1_280) * 4096
    partition = 100 * MIB
    assert needed_partition_bytes(summary, partition, free - HEADROOM_BYTES) == partition  # fits: no growth
    grown = needed_partition_bytes(summary, partition, free - HEADROOM_BYTES + 10 * MIB)
    assert grown % (4 * MIB) == 0
    assert partition + 10 * MIB * 1.10 <= grown < partition + 10 * MIB * 1.10 + 4 * MIB


def test_a_file_goes_in_with_its_parents_and_reads_back(image: PiImage, tmp_path: Path) -> None:
    local = tmp_path / "my downloads" / "spine bundle.tar"  # white space: debugfs splits its commands at it
    local.parent.mkdir()
    local.write_bytes(random.Random(4).randbytes(2 * MIB))
    root = _root(image)
    rootfs.write_file(root, local, "/var/lib/spine-firstboot/spine-bundle.tar")
    assert rootfs.file_sha256(root, "/var/lib/spine-firstboot/spine-bundle.tar") == _sha256(local)
    listing = run("debugfs", "-R", "ls -l /var/lib/spine-firstboot", root.spec).stdout.decode()
    assert _entry(listing, "spine-bundle.tar") == ["100600", "(1)", "0", "0", "2097152"]  # root's, 0600
    listing = run("debugfs", "-R", "ls -l /var/lib", root.spec).stdout.decode()
    assert _entry(listing, "spine-firstboot")[:4] == ["40700", "(2)", "0", "0"]
    # Written again (a second flash into the same image), it is replaced, not refused.
    local.write_bytes(random.Random(5).randbytes(MIB))
    rootfs.write_file(root, local, "/var/lib/spine-firstboot/spine-bundle.tar")
    assert rootfs.file_sha256(root, "/var/lib/spine-firstboot/spine-bundle.tar") == _sha256(local)
    rootfs.check(root)


def test_a_bundle_too_big_for_the_root_is_reported(image: PiImage, tmp_path: Path) -> None:
    local = tmp_path / "big.tar"
    local.write_bytes(random.Random(9).randbytes(40 * MIB))  # random: zeros would go in as a sparse file
    with pytest.raises(ToolError, match=r"debugfs said: .*(allocate|space)"):
        rootfs.write_file(_root(image), local, "/var/lib/spine-firstboot/spine-bundle.tar")


def test_growing_an_image_files_root_keeps_the_file_whole(image: PiImage) -> None:
    # resize2fs truncates a regular file to the filesystem's size as if it started at byte 0: done in place,
    # this would cut the image at 24 MiB, inside partition 1. The working copy avoids it.
    root = _root(image)
    grown_bytes = 24 * MIB
    end = root.offset_bytes + grown_bytes
    os.truncate(image.path, end)
    with rootfs.working_copy(root, grown_bytes) as work:
        assert work.path != image.path
        summary = rootfs.grow(work)
    assert image.path.stat().st_size == end
    assert summary.size_bytes == grown_bytes
    after = rootfs.read_summary(Ext4Volume(image.path, root.offset_bytes, grown_bytes))
    assert after == summary
    rootfs.check(Ext4Volume(image.path, root.offset_bytes, grown_bytes))
    assert fatfs.read_file(_boot(image), "cmdline.txt") == CMDLINE.encode()


def test_a_damaged_root_fails_the_check(image: PiImage) -> None:
    root = _root(image)
    with image.path.open("r+b") as stream:  # the first block group's descriptor
        stream.seek(root.offset_bytes + 4096)
        stream.write(bytes(64))
    with pytest.raises(ToolError, match=r"not clean after writing \(e2fsck -fn"):
        rootfs.check(root)


# --- write, verify, copy -----------------------------------------------------------------------------------


def test_write_then_verify_and_a_changed_byte_is_caught(image: PiImage, tmp_path: Path) -> None:
    source = open_source(image.path)
    target = tmp_path / "out.img"
    target.write_bytes(bytes(300 * MIB // 100))  # an older, different file there: replaced
    digest = write_image(source, target, block_device=False, progress=False)
    assert digest == _sha256(image.path)
    verify(target, source.image_bytes, digest, block_device=False, progress=False)
    with target.open("r+b") as stream:
        stream.seek(source.image_bytes - 1)
        stream.write(b"\x01")
    with pytest.raises(WriteError, match="reads back different from the image"):
        verify(target, source.image_bytes, digest, block_device=False, progress=False)


def test_copy_range_into_a_new_file_and_into_an_existing_one(tmp_path: Path) -> None:
    data = random.Random(6).randbytes(3 * MIB + 17)
    source = tmp_path / "source"
    source.write_bytes(data)
    piece = tmp_path / "piece"
    copy_range(source, 1000, 2 * MIB, piece)
    assert piece.read_bytes() == data[1000 : 1000 + 2 * MIB]
    copy_range(piece, 0, 100, source, destination_offset_bytes=5)
    assert source.read_bytes() == data[:5] + data[1000:1100] + data[105:]


def test_a_missing_tool_names_its_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("device.flash.tools.find_tool", lambda name: None if name in ("mcopy", "debugfs") else name)
    with pytest.raises(ToolError, match=r"needs mcopy, debugfs, .*sudo apt install mtools e2fsprogs$"):
        require_tools(["mcopy", "debugfs", "e2fsck"])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _entry(listing: str, name: str) -> list[str]:
    """mode, links, uid, gid, size of `name` in a `debugfs ls -l` listing."""
    for line in listing.splitlines():
        words = line.split()
        if words and words[-1] == name:
            return words[1:6]
    raise AssertionError(f"{name} not in {listing!r}")
