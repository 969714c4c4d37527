"""Synthetic Raspberry Pi OS images and bundles for the `spine flash` tests, made with the real tools.

The layout is Raspberry Pi OS's: an MBR (sfdisk) with partition 1 FAT32 (type 0x0c, from sector 8192, made by
mkfs.vfat at its offset) holding config.txt, cmdline.txt, a kernel, a device tree and overlays/, and partition 2
ext4 (type 0x83, mke2fs -d at its offset, 4 KiB blocks, label rootfs) holding a small root tree with Debian's
os-release (/etc/os-release a link to ../usr/lib/os-release; bookworm's, or trixie's for the cloud-init variant,
which adds the NoCloud files user-data, meta-data, network-config to the FAT, as Trixie-based images do).
Sizes are small (a 64 MiB boot partition instead of 512 MiB) so that a test writes tens of megabytes, not gigabytes.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024
SECTOR = 512
BOOT_START_SECTOR = 8192
DISK_ID = 0x5E3DA1B7
CMDLINE = (
    f"console=serial0,115200 console=tty1 root=PARTUUID={DISK_ID:08x}-02 rootfstype=ext4 fsck.repair=yes "
    "rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n"
)
CONFIG_TXT = """\
# For more options and information see
# http://rptl.io/configtxt
dtparam=audio=on
camera_auto_detect=1
display_auto_detect=1
auto_initramfs=1
dtoverlay=vc4-kms-v3d
max_framebuffers=2
disable_fw_kms_setup=1
arm_64bit=1
disable_overscan=1
arm_boost=1

[cm4]
otg_mode=1

[all]
"""
CLOUD_INIT_FILES = {
    "user-data": "#cloud-config\n# This is the default user-data of the image: cloud-init reads it at first boot.\n",
    "meta-data": "instance-id: rpi-image\n",
    "network-config": "network:\n  version: 2\n",
}
_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
OS_RELEASES = {
    "bookworm": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n'
    'VERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n',
    "trixie": 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nNAME="Debian GNU/Linux"\nVERSION_ID="13"\n'
    'VERSION="13 (trixie)"\nVERSION_CODENAME=trixie\nDEBIAN_VERSION_FULL=13.1\nID=debian\n',
    "bullseye": 'PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\nVERSION_CODENAME=bullseye\nID=debian\n',
}
"""As base-files writes /usr/lib/os-release (Raspberry Pi OS keeps Debian's)."""


@dataclass(frozen=True)
class PiImage:
    path: Path
    boot_start_sector: int
    boot_sectors: int
    root_start_sector: int
    root_sectors: int

    @property
    def boot_spec(self) -> str:
        return f"{self.path}@@{self.boot_start_sector * SECTOR}"


def tool(name: str) -> str:
    """The path of a system tool (also in /usr/sbin, off a non-root PATH)."""
    found = shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    assert found, f"{name} is missing: scripts/setup.sh installs it"
    return found


def run(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([tool(args[0]), *args[1:]], check=True, capture_output=True, env=_ENV)


def build_pi_image(
    directory: Path,
    *,
    cloud_init: bool,
    boot_mib: int = 64,
    root_mib: int = 24,
    name: str = "raspios.img",
    release: str | None = None,
    os_release: bool = True,
) -> PiImage:
    """A Raspberry Pi OS-like disk image in `directory`, of `release` (default: trixie with cloud-init, else
    bookworm); `os_release=False` leaves os-release out."""
    boot_sectors = boot_mib * MIB // SECTOR
    root_start = BOOT_START_SECTOR + boot_sectors
    root_sectors = root_mib * MIB // SECTOR
    image = PiImage(directory / name, BOOT_START_SECTOR, boot_sectors, root_start, root_sectors)
    with image.path.open("wb") as stream:
        stream.truncate((root_start + root_sectors) * SECTOR)
    table = (
        f"label: dos\nlabel-id: 0x{DISK_ID:08x}\nunit: sectors\n\n"
        f"start={BOOT_START_SECTOR}, size={boot_sectors}, type=c\nstart={root_start}, size={root_sectors}, type=83\n"
    )
    subprocess.run([tool("sfdisk"), "-q", str(image.path)], input=table.encode(), check=True, capture_output=True)
    boot_kib = str(boot_mib * 1024)
    run("mkfs.vfat", "-F", "32", "-n", "bootfs", "--offset", str(BOOT_START_SECTOR), str(image.path), boot_kib)
    _fill_boot(image, directory, cloud_init)
    tree = directory / f"{name}.root"
    _root_tree(tree, (release or ("trixie" if cloud_init else "bookworm")) if os_release else None)
    run(
        "mke2fs", "-q", "-t", "ext4", "-b", "4096", "-L", "rootfs", "-d", str(tree),
        "-E", f"offset={root_start * SECTOR}", str(image.path), f"{root_mib}M",
    )  # fmt: skip
    shutil.rmtree(tree)
    return image


def _fill_boot(image: PiImage, directory: Path, cloud_init: bool) -> None:
    files = {
        "cmdline.txt": CMDLINE.encode(),
        "config.txt": CONFIG_TXT.encode(),
        "issue.txt": b"Raspberry Pi reference 2025-05-13\n",
        "kernel8.img": random.Random(8).randbytes(2 * MIB),
        "bcm2712-rpi-5-b.dtb": random.Random(5).randbytes(80_000),
    }
    if cloud_init:
        files.update({name: text.encode() for name, text in CLOUD_INIT_FILES.items()})
    staging = directory / f"{image.path.name}.boot"
    staging.mkdir()
    for name, content in files.items():
        (staging / name).write_bytes(content)
    run("mcopy", "-i", image.boot_spec, *(str(staging / name) for name in files), "::/")
    (staging / "overlays").mkdir()
    (staging / "overlays" / "README").write_text("overlays\n")
    run("mcopy", "-s", "-i", image.boot_spec, str(staging / "overlays"), "::/")
    shutil.rmtree(staging)


def _root_tree(tree: Path, release: str | None) -> None:
    for folder in ("etc", "usr/bin", "usr/lib/raspberrypi-sys-mods", "var/lib", "var/log", "home", "boot/firmware"):
        (tree / folder).mkdir(parents=True)
    (tree / "etc" / "hostname").write_text("raspberrypi\n")
    if release is not None:
        (tree / "usr" / "lib" / "os-release").write_text(OS_RELEASES[release])
        (tree / "etc" / "os-release").symlink_to("../usr/lib/os-release")
    (tree / "usr" / "lib" / "raspberrypi-sys-mods" / "firstboot").write_text("#!/bin/sh\n")
    (tree / "usr" / "bin" / "busybox").write_bytes(random.Random(1).randbytes(3 * MIB))


PYTHON_OF = {"bookworm": "3.11", "trixie": "3.13"}


def make_bundle(path: Path, *, payload_mib: int = 4, arch: str = "aarch64", release: str = "bookworm") -> Path:
    """A small stand-in for `make bundle`'s tar: spine-bundle/BUNDLE (as scripts/bundle writes it for `release`)
    and a few MB of payload."""
    debian = {"aarch64": "arm64", "x86_64": "amd64"}.get(arch, arch)
    described = (
        f"bundle_format=2\nspine_version=0.1.0\narch={arch}\npython_version={PYTHON_OF[release]}\n"
        f"release={release}\ndebian={release} {debian}\n"
    )
    with tarfile.open(path, "w") as archive:
        for name, content in (
            ("spine-bundle/BUNDLE", described.encode()),
            ("spine-bundle/wheels/payload.bin", random.Random(2).randbytes(payload_mib * MIB)),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return path


def fat_file(image: Path, offset_bytes: int, name: str) -> bytes | None:
    """A file at the FAT's root, read with mtools (None when missing)."""
    result = subprocess.run(
        [tool("mcopy"), "-n", "-i", f"{image}@@{offset_bytes}", f"::/{name}", "-"], capture_output=True, env=_ENV
    )
    return result.stdout if result.returncode == 0 else None


def sfdisk_json(image: Path) -> dict[str, object]:
    import json

    result = run("sfdisk", "--json", str(image))
    table: dict[str, object] = json.loads(result.stdout)["partitiontable"]
    return table
