"""Which disk `spine flash` may erase, decided on `lsblk --json -b -O` output of real machine layouts
(tests/data/lsblk/, described in its README.md). Nothing here touches a device."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from device.errors import UserError
from device.flash.safety import (
    BlockDevice,
    SafeTarget,
    UnsafeTargetError,
    check_target,
    describe_disk,
    is_removable,
    parse_lsblk,
)

FIXTURES = Path(__file__).parent / "data" / "lsblk"
IMAGE_BYTES = 2_759_852_032  # Raspberry Pi OS Lite 64-bit (2025-05-13), decompressed
GB = 10**9


def _devices(name: str) -> tuple[BlockDevice, ...]:
    return parse_lsblk((FIXTURES / f"{name}.json").read_text())


def _check(name: str, target: str, *, yes_erase: str | None = None, max_gb: int = 256) -> SafeTarget:
    return check_target(
        _devices(name), target, image_bytes=IMAGE_BYTES, max_size_bytes=max_gb * GB, yes_erase=yes_erase
    )


def _unmounted(device: BlockDevice) -> BlockDevice:
    return dataclasses.replace(device, mountpoints=(), children=tuple(_unmounted(c) for c in device.children))


def test_every_fixture_parses_with_every_disk_in_it() -> None:
    disks = {
        name: [d.path for d in _devices(name)]
        for name in ("laptop-nvme-mounted-sd", "desktop-sata-usb-reader", "sbc-sd-usb-ssd", "nvme-only")
    }
    assert disks == {
        "laptop-nvme-mounted-sd": ["/dev/mmcblk0", "/dev/nvme0n1"],
        "desktop-sata-usb-reader": ["/dev/sda", "/dev/sdb", "/dev/sdc", "/dev/sdd"],
        "sbc-sd-usb-ssd": ["/dev/sda", "/dev/mmcblk0", "/dev/zram0"],
        "nvme-only": ["/dev/nvme0n1", "/dev/nvme1n1"],
    }


# --- the system disk: never, whatever the options -----------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "target", "mounts"),
    [
        ("laptop-nvme-mounted-sd", "/dev/nvme0n1", "/, /boot/efi, [SWAP]"),
        ("desktop-sata-usb-reader", "/dev/sda", "/, /boot/efi"),
        ("sbc-sd-usb-ssd", "/dev/mmcblk0", "/, /boot/firmware"),
        ("nvme-only", "/dev/nvme0n1", "/, /boot, /boot/efi, [SWAP]"),  # / and swap on LVM on LUKS
        ("vm-virtio-recorded", "/dev/vda", "/"),  # a whole-disk filesystem, no partition table
    ],
)
def test_the_disk_the_system_runs_from_is_never_erased(fixture: str, target: str, mounts: str) -> None:
    for yes_erase in (None, target):  # not even when named
        with pytest.raises(UnsafeTargetError) as refused:
            _check(fixture, target, yes_erase=yes_erase, max_gb=100_000)
        assert f"it holds the running system ({mounts} on it)" in str(refused.value)
        assert "umount" not in str(refused.value)  # no advice to unmount the running system


def test_swap_alone_makes_a_disk_the_systems() -> None:
    with pytest.raises(UnsafeTargetError, match=r"running system \(\[SWAP\] on it\)"):
        _check("sbc-sd-usb-ssd", "/dev/zram0")


# --- mounted: refused, with the commands that unmount it ---------------------------------------------------


def test_a_mounted_card_is_refused_with_the_umount_commands() -> None:
    with pytest.raises(UnsafeTargetError) as refused:
        _check("laptop-nvme-mounted-sd", "/dev/mmcblk0", yes_erase="/dev/mmcblk0")
    message = str(refused.value)
    assert "/dev/mmcblk0p1 on /media/alice/bootfs, /dev/mmcblk0p2 on /media/alice/rootfs" in message
    assert "sudo umount /media/alice/bootfs && sudo umount /media/alice/rootfs" in message
    assert "running system" not in message


def test_the_same_card_once_unmounted_is_erased_without_confirmation() -> None:
    devices = tuple(_unmounted(d) if d.name == "mmcblk0" else d for d in _devices("laptop-nvme-mounted-sd"))
    safe = check_target(devices, "/dev/mmcblk0", image_bytes=IMAGE_BYTES, max_size_bytes=256 * GB, yes_erase=None)
    # A laptop's built-in reader: RM=0 and no transport in lsblk 2.38, but mmc in its subsystems.
    assert safe.disk.path == "/dev/mmcblk0" and not safe.disk.removable and safe.disk.transport is None
    assert not safe.confirmed_by_name


# --- removable and small: allowed -------------------------------------------------------------------------


def test_a_card_in_a_usb_reader_is_allowed_and_described() -> None:
    safe = _check("desktop-sata-usb-reader", "/dev/sdc")
    assert not safe.confirmed_by_name
    assert describe_disk(safe.disk).splitlines() == [
        "  /dev/sdc: Generic- SD/MMC, 63.9 GB (59.5 GiB), USB, removable",
        '    /dev/sdc1: 536.9 MB (512.0 MiB), vfat, "bootfs", not mounted',
        '    /dev/sdc2: 63.3 GB (59.0 GiB), ext4, "rootfs", not mounted',
    ]


def test_an_empty_reader_slot_has_no_medium() -> None:
    with pytest.raises(UnsafeTargetError, match="no medium"):
        _check("desktop-sata-usb-reader", "/dev/sdd", yes_erase="/dev/sdd")


def test_a_partition_is_refused_naming_its_disk() -> None:
    with pytest.raises(UnsafeTargetError, match=r"/dev/sdc1 is a partition on /dev/sdc.*name the disk \(/dev/sdc\)"):
        _check("desktop-sata-usb-reader", "/dev/sdc1")
    with pytest.raises(UnsafeTargetError, match="LVM volume on /dev/nvme0n1"):
        _check("nvme-only", "/dev/mapper/vg0-root")


def test_an_unknown_device_lists_the_disks_there_are() -> None:
    with pytest.raises(
        UnsafeTargetError, match=r"disks here: /dev/sda, /dev/sdb, /dev/sdc\)\. Plug the card in.*lsblk"
    ):
        _check("desktop-sata-usb-reader", "/dev/sde")


# --- not removable, or large: only with --yes-erase naming it ---------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "target", "reasons"),
    [
        ("desktop-sata-usb-reader", "/dev/sdb", ["not a removable disk", "larger (2.0 TB (1.8 TiB))"]),
        ("nvme-only", "/dev/nvme1n1", ["not a removable disk", "larger (1.0 TB (931.5 GiB))"]),
        ("sbc-sd-usb-ssd", "/dev/sda", ["larger (1.0 TB (931.5 GiB))"]),  # on USB: removable, but 1 TB
    ],
)
def test_a_fixed_or_large_disk_needs_yes_erase_naming_it(fixture: str, target: str, reasons: list[str]) -> None:
    with pytest.raises(UnsafeTargetError) as refused:
        _check(fixture, target)
    message = str(refused.value)
    for reason in reasons:
        assert reason in message
    assert f"add --yes-erase {target}" in message
    assert f"  {target}: " in message  # what would be erased is shown
    assert _check(fixture, target, yes_erase=target).confirmed_by_name


def test_yes_erase_naming_another_disk_is_refused() -> None:
    with pytest.raises(UnsafeTargetError, match="--yes-erase names /dev/sdc but the target is /dev/sdb"):
        _check("desktop-sata-usb-reader", "/dev/sdb", yes_erase="/dev/sdc")
    # Also where no confirmation was needed: a typo in either must not pass.
    with pytest.raises(UnsafeTargetError, match="--yes-erase names /dev/sdb but the target is /dev/sdc"):
        _check("desktop-sata-usb-reader", "/dev/sdc", yes_erase="/dev/sdb")


def test_a_higher_size_limit_lets_a_usb_ssd_through_without_naming_it() -> None:
    assert not _check("sbc-sd-usb-ssd", "/dev/sda", max_gb=1100).confirmed_by_name


def test_an_emmc_soldered_to_the_board_is_not_removable() -> None:
    card = BlockDevice(
        name="mmcblk0", path="/dev/mmcblk0", kind="disk", size_bytes=32 * GB, removable=False, hotplug=False,
        read_only=False, transport=None, subsystems="block:mmc:mmc_host:platform", model=None, vendor=None,
        fstype=None, label=None, partlabel=None, mountpoints=(), children=(),
    )  # fmt: skip
    boot0 = dataclasses.replace(card, name="mmcblk0boot0", path="/dev/mmcblk0boot0", size_bytes=4 * 1024 * 1024)
    assert is_removable([card], card)
    assert not is_removable([card, boot0], card)


def test_a_locked_card_and_a_too_small_one_are_refused() -> None:
    devices = _devices("desktop-sata-usb-reader")
    locked = tuple(dataclasses.replace(d, read_only=True) if d.name == "sdc" else d for d in devices)
    with pytest.raises(UnsafeTargetError, match="read-only: slide the SD card's lock switch"):
        check_target(locked, "/dev/sdc", image_bytes=IMAGE_BYTES, max_size_bytes=256 * GB, yes_erase="/dev/sdc")
    with pytest.raises(UnsafeTargetError, match=r"too small: 63\.9 GB.*the image needs 100\.0 GB"):
        check_target(devices, "/dev/sdc", image_bytes=100 * GB, max_size_bytes=256 * GB, yes_erase=None)


def test_older_lsblk_strings_for_booleans_and_sizes_are_read() -> None:
    text = json.dumps(
        {"blockdevices": [{"name": "sdb", "type": "disk", "size": "31914983424", "rm": "1", "ro": "0",
                           "tran": "usb", "mountpoint": None, "children": [
                               {"name": "sdb1", "type": "part", "size": "268435456", "rm": "1", "ro": "0",
                                "mountpoint": "/media/pi/boot"}]}]}
    )  # fmt: skip
    (disk,) = parse_lsblk(text)
    assert (disk.path, disk.size_bytes, disk.removable, disk.read_only) == ("/dev/sdb", 31914983424, True, False)
    assert disk.children[0].mountpoints == ("/media/pi/boot",)


def test_unreadable_lsblk_output_says_so() -> None:
    with pytest.raises(UserError, match="cannot read lsblk's output"):
        parse_lsblk("lsblk: unknown column")
