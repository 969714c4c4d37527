"""`spine flash` end to end into image files: a synthetic Raspberry Pi OS image (sfdisk, mkfs.vfat, mke2fs) of
each first-boot kind is flashed, and the result is checked with the tools themselves: the image bytes verified,
the boot partition holding exactly the files the first-boot renderer gives (mtools), cmdline.txt as expected,
the bundle in the root filesystem byte for byte (debugfs dump), both filesystems clean (e2fsck -fn, fsck.vfat
-n), the partition table sfdisk reads. No device is touched."""

from __future__ import annotations

import hashlib
import lzma
import os
import re
import subprocess
from pathlib import Path

import pytest

from device.cli import build_parser, main
from device.flash.cli import settings_from
from device.flash.firstboot import ROOTFS_BUNDLE_PATH, FirstBootMechanism, first_boot_files
from tests.flash_images import CLOUD_INIT_FILES, CMDLINE, SECTOR, build_pi_image, fat_file, make_bundle, run
from tests.flash_images import sfdisk_json as read_table

pytestmark = pytest.mark.slow

PASSPHRASE = "correct horse battery"
PASSWORD_HASH = "$6$spinetest$Nq3Iq7pB8kB3a9L5wq8sV0v1m2ZpQXb9cJm0ytL6R9gkq1h7N0xXz1r0o2KqJc1QfL7yWk5c3mFz0uD9P8e1a/"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq1O3Vx2mY0m0S6l0p3zJ1p1n1Lq0zHq0X0m7s3nUe5 ann@laptop"


def _flash(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["flash", *argv]) == 0
    return capsys.readouterr().out


def _options(tmp_path: Path) -> list[str]:
    wifi = tmp_path / "wifi.txt"
    wifi.write_text(PASSPHRASE + "\n")
    key = tmp_path / "id_ed25519.pub"
    key.write_text(KEY + "\n")
    config = tmp_path / "spine.toml"
    config.write_text("[wake]\nthreshold = 0.6\n")
    return [
        "--hostname", "kitchen", "--user", "ann", "--password-hash", PASSWORD_HASH, "--ssh-key", str(key),
        "--wifi-country", "GB", "--wifi-ssid", "Home", "--wifi-passphrase-file", str(wifi),
        "--config", str(config), "--input-device", "USB", "--output-device", "USB",
    ]  # fmt: skip


def _expected_files(argv: list[str], mechanism: FirstBootMechanism) -> dict[str, bytes]:
    """What the first-boot renderer gives for these options and the source's cmdline.txt."""
    settings = settings_from(build_parser().parse_args(["flash", *argv]))
    return first_boot_files(settings, mechanism, CMDLINE)


def _check_filesystems(target: Path, root_start_sector: int, root_sectors: int, tmp_path: Path) -> None:
    """e2fsck -fn and fsck.vfat -n, run here on the result (not through spine flash's own checks)."""
    run("e2fsck", "-fn", f"{target}?offset={root_start_sector * SECTOR}")
    boot = tmp_path / "boot.vfat"
    with target.open("rb") as stream:
        stream.seek(8192 * SECTOR)
        boot.write_bytes(stream.read((root_start_sector - 8192) * SECTOR))
    run("fsck.vfat", "-n", str(boot))
    assert root_sectors > 0


def _bundle_in_root(target: Path, root_start_sector: int, tmp_path: Path) -> tuple[str, str]:
    """(sha256 of the bundle dumped from the root filesystem, its `debugfs stat` text)."""
    spec = f"{target}?offset={root_start_sector * SECTOR}"
    dumped = tmp_path / "dumped.tar"
    run("debugfs", "-R", f"dump {ROOTFS_BUNDLE_PATH} {dumped}", spec)
    stat = run("debugfs", "-R", f"stat {ROOTFS_BUNDLE_PATH}", spec).stdout.decode()
    return hashlib.sha256(dumped.read_bytes()).hexdigest(), stat


def test_firstrun_image_xz_into_an_image_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = build_pi_image(tmp_path, cloud_init=False)
    compressed = tmp_path / "raspios.img.xz"
    compressed.write_bytes(lzma.compress(source.path.read_bytes(), preset=0))
    image_sha256 = hashlib.sha256(source.path.read_bytes()).hexdigest()
    bundle = make_bundle(tmp_path / "spine-bundle.tar", payload_mib=6)
    target = tmp_path / "flashed.img"
    argv = [str(compressed), str(target), "--bundle", str(bundle), *_options(tmp_path)]

    out = _flash(argv, capsys)

    assert f"flash: verified: sha256 {image_sha256}" in out
    assert "first boot by firstrun" in out
    assert PASSPHRASE not in out and PASSWORD_HASH not in out
    # The root grew for the bundle: partition 2 (and the file) are longer, partition 1 and the disk id unchanged.
    assert read_table(target)["id"] == "0x5e3da1b7"
    boot, root = _partitions(target)
    assert boot == (source.boot_start_sector, source.boot_sectors, "c")
    root_start, root_sectors, root_type = root
    assert (root_start, root_type) == (source.root_start_sector, "83")
    assert root_sectors > source.root_sectors
    assert target.stat().st_size == (root_start + root_sectors) * SECTOR
    assert os.stat(target).st_mode & 0o777 == 0o600  # it holds the Wi-Fi key and the password hash
    # The boot partition has exactly what the renderer gives, cmdline.txt included.
    expected = _expected_files(argv, FirstBootMechanism.FIRSTRUN)
    assert {"firstrun.sh", "cmdline.txt", "spine-firstboot.sh", "spine-wifi.nmconnection"} <= set(expected)
    for name, content in expected.items():
        assert fat_file(target, source.boot_start_sector * SECTOR, name) == content, name
    cmdline = fat_file(target, source.boot_start_sector * SECTOR, "cmdline.txt")
    assert cmdline is not None
    assert cmdline.decode().startswith(CMDLINE.strip() + " ")
    assert "systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot" in cmdline.decode()
    # What was there stays.
    assert fat_file(target, source.boot_start_sector * SECTOR, "kernel8.img") == fat_file(
        source.path, source.boot_start_sector * SECTOR, "kernel8.img"
    )
    # The bundle, byte for byte, root's and private.
    digest, stat = _bundle_in_root(target, root_start, tmp_path)
    assert digest == hashlib.sha256(bundle.read_bytes()).hexdigest()
    assert re.search(r"Mode:\s+0600", stat) and re.search(r"User:\s+0\s+Group:\s+0", stat)
    _check_filesystems(target, root_start, root_sectors, tmp_path)


def test_cloud_init_image_whose_root_has_room(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = build_pi_image(tmp_path, cloud_init=True, root_mib=128)
    bundle = make_bundle(tmp_path / "spine-bundle.tar", payload_mib=4, release="trixie")
    target = tmp_path / "flashed.img"
    target.write_bytes(os.urandom(1024) * 300_000)  # an older, larger file there: replaced, not appended to
    argv = [str(source.path), str(target), "--bundle", str(bundle), *_options(tmp_path)]

    out = _flash(argv, capsys)

    assert "first boot by cloud-init" in out
    assert "partition 2 keeps its size" in out and "cmdline.txt unchanged" in out
    assert target.stat().st_size == source.path.stat().st_size
    assert _partitions(target) == _partitions(source.path)
    offset = source.boot_start_sector * SECTOR
    expected = _expected_files(argv, FirstBootMechanism.CLOUD_INIT)
    assert "cmdline.txt" not in expected
    for name, content in expected.items():
        assert fat_file(target, offset, name) == content, name
    assert fat_file(target, offset, "user-data") != CLOUD_INIT_FILES["user-data"].encode()
    assert fat_file(target, offset, "cmdline.txt") == CMDLINE.encode()
    digest, _ = _bundle_in_root(target, source.root_start_sector, tmp_path)
    assert digest == hashlib.sha256(bundle.read_bytes()).hexdigest()
    _check_filesystems(target, source.root_start_sector, source.root_sectors, tmp_path)


def test_the_command_line_entry_point_flashes_too(tmp_path: Path) -> None:
    """The command in a process of its own, as a user runs it (no options but the bundle)."""
    source = build_pi_image(tmp_path, cloud_init=False)
    bundle = make_bundle(tmp_path / "spine-bundle.tar", payload_mib=1)
    target = tmp_path / "flashed.img"
    spine = Path(os.environ.get("VIRTUAL_ENV", ".venv")) / "bin" / "spine"
    command = [
        str(spine if spine.exists() else "spine"),
        "flash",
        str(source.path),
        str(target),
        "--bundle",
        str(bundle),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "flash: done:" in result.stdout
    assert "secrets: none given" in result.stdout
    expected = first_boot_files(
        settings_from(build_parser().parse_args(["flash", "a", "b", "--bundle", "c"])),
        FirstBootMechanism.FIRSTRUN,
        CMDLINE,
    )
    for name, content in expected.items():
        assert fat_file(target, source.boot_start_sector * SECTOR, name) == content, name


def _partitions(image: Path) -> list[tuple[int, int, str]]:
    """(start, size, type) of each partition, as sfdisk reads them."""
    partitions = read_table(image)["partitions"]
    assert isinstance(partitions, list)
    return [(int(p["start"]), int(p["size"]), str(p["type"])) for p in partitions]
