"""What `spine flash` will do, worked out before anything is written, and said in words: the source image and its
layout, the target and what on it will be erased, the first-boot mechanism, each file for the boot partition,
the bundle and how far the root partition grows for it, and how the secrets are handled. `--dry-run` prints it
and stops; a real run prints it and carries it out (device/flash/customise.py).

Everything is read from the source image, not the target, so a wrong image is refused before a card is erased:
an .img in place (mtools at the boot partition's offset, debugfs at the root's); an .img.xz decompressed into
sparse temporary files (empty blocks are not written): the boot partition, and the root until its os-release
can be read (the release the bundle must be for).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from device.flash import fatfs
from device.flash.fatfs import FatVolume
from device.flash.firstboot import FirstBootMechanism, FirstBootSettings, detect_mechanism, first_boot_files
from device.flash.image import SourceImage, human_bytes, read_chunks
from device.flash.partitions import SECTOR_BYTES, LayoutError, PiLayout, pi_layout
from device.flash.release import ImageRelease, parse_os_release
from device.flash.rootfs import Ext4Summary, Ext4Volume, needed_partition_bytes, parse_superblock, read_text

_SUPERBLOCK_RANGE = (1024, 2048)
_SPARSE_BLOCK_BYTES = 64 * 1024
_RELEASE_TRY_BYTES = 256 * 1024 * 1024
"""How much more of an .img.xz's root is decompressed between attempts to read its os-release."""
OS_RELEASE = "/etc/os-release"


@dataclass(frozen=True)
class SourceFacts:
    """What the source image holds: its layout, its boot partition's root names and cmdline.txt, its root's space."""

    layout: PiLayout
    boot_names: tuple[str, ...]
    cmdline_txt: str
    root: Ext4Summary
    release: ImageRelease


@dataclass(frozen=True)
class FlashPlan:
    """Everything a flash will do, decided before the first write."""

    source: SourceImage
    facts: SourceFacts
    target: Path
    target_is_device: bool
    erase_description: str | None
    """For a card: what lsblk says is on it now (safety.describe_disk)."""
    target_capacity_bytes: int | None
    """A card's size; None for an image file (it grows as needed)."""
    mechanism: FirstBootMechanism
    boot_files: dict[str, bytes]
    secret_files: tuple[str, ...]
    bundle: Path
    bundle_bytes: int
    bundle_path_on_device: str
    grown_root_bytes: int
    """Partition 2's length after growing (its length in the image when the bundle fits already)."""

    @property
    def grows_root(self) -> bool:
        return self.grown_root_bytes > self.facts.layout.root.size_bytes

    @property
    def end_bytes(self) -> int:
        """Where the last partition ends once grown: the image file's size, the least a card must hold."""
        return max(self.source.image_bytes, self.facts.layout.root.offset_bytes + self.grown_root_bytes)


def inspect_source(image: SourceImage) -> SourceFacts:
    """Read the source's partition table, boot partition and root superblock; LayoutError (or FirstBootError
    from detect_mechanism's caller) when it is not a Raspberry Pi OS image."""
    with _boot_partition_of(image) as (layout, boot_volume, superblock, release):
        names = fatfs.root_names(boot_volume)
        cmdline = fatfs.read_file(boot_volume, "cmdline.txt")
    if cmdline is None:
        raise LayoutError(
            f"{image.path}: its boot partition has no cmdline.txt, so it is not a Raspberry Pi OS image; "
            "download Raspberry Pi OS Lite (64-bit)"
        )
    root = parse_superblock(superblock, f"partition 2 of {image.path}")
    if release is None:
        raise LayoutError(
            f"{image.path}: its root filesystem has no {OS_RELEASE} naming a VERSION_CODENAME, so its release "
            "(and the bundle it needs) is unknown: download Raspberry Pi OS Lite (64-bit)"
        )
    return SourceFacts(
        layout=layout,
        boot_names=names,
        cmdline_txt=cmdline.decode("utf-8", errors="replace"),
        root=root,
        release=release,
    )


def _release_of(root: Ext4Volume) -> ImageRelease | None:
    return parse_os_release(read_text(root, OS_RELEASE) or "")


@contextlib.contextmanager
def _boot_partition_of(image: SourceImage) -> Iterator[tuple[PiLayout, FatVolume, bytes, ImageRelease | None]]:
    """(the layout, the boot partition as mtools can open it, the root's superblock bytes, the root's release)."""
    head = b"".join(read_chunks(image, end_bytes=SECTOR_BYTES))
    layout = pi_layout(head, str(image.path), image.image_bytes)
    boot, root = layout.boot, layout.root
    superblock_start = root.offset_bytes + _SUPERBLOCK_RANGE[0]
    if not image.compressed:
        with image.path.open("rb") as stream:
            stream.seek(superblock_start)
            superblock = stream.read(_SUPERBLOCK_RANGE[1] - _SUPERBLOCK_RANGE[0])
        release = _release_of(Ext4Volume(image.path, root.offset_bytes, root.size_bytes))
        yield layout, FatVolume(image.path, boot.offset_bytes, boot.size_bytes), superblock, release
        return
    # Not /tmp, often a small tmpfs: a root's used blocks may be gigabytes before its os-release is read.
    scratch_parent = os.environ.get("TMPDIR") or ("/var/tmp" if os.path.isdir("/var/tmp") else None)
    with tempfile.TemporaryDirectory(prefix="spine-flash-source-", dir=scratch_parent) as scratch:
        copy, root_copy = Path(scratch) / "boot.vfat", Path(scratch) / "root.ext4"
        root_volume = Ext4Volume(root_copy, 0, root.size_bytes)
        found = bytearray()
        release = None
        position = 0
        next_try = root.offset_bytes + _SUPERBLOCK_RANGE[1]
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        root_fd = os.open(root_copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, boot.size_bytes)
            os.ftruncate(root_fd, root.size_bytes)  # what is not written yet reads as zeros, never as stale data
            for chunk in read_chunks(image, end_bytes=root.end_bytes):
                _write_sparse(fd, chunk, position, boot.offset_bytes, boot.end_bytes)
                _write_sparse(root_fd, chunk, position, root.offset_bytes, root.end_bytes)
                found += _slice(chunk, position, superblock_start, root.offset_bytes + _SUPERBLOCK_RANGE[1])
                position += len(chunk)
                # A complete os-release with a codename (parse_os_release refuses text with zeros in it) read
                # from the part decompressed so far is the image's: no need to decompress the rest.
                if position >= next_try or position >= root.end_bytes:
                    release = _release_of(root_volume)
                    if release is not None:
                        break
                    next_try = position + _RELEASE_TRY_BYTES
        finally:
            os.close(fd)
            os.close(root_fd)
        yield layout, FatVolume(copy, 0, boot.size_bytes), bytes(found), release


def _slice(chunk: bytes, position: int, start: int, end: int) -> bytes:
    """The part of `chunk` (which starts at image byte `position`) inside [start, end)."""
    return chunk[max(0, start - position) : max(0, end - position)]


def _write_sparse(fd: int, chunk: bytes, position: int, start: int, end: int) -> None:
    """Write the part of `chunk` inside [start, end) at its place relative to `start`, leaving all-zero blocks
    as holes (a fresh image's FAT is mostly empty)."""
    part = _slice(chunk, position, start, end)
    offset = max(position, start) - start
    zero = bytes(_SPARSE_BLOCK_BYTES)
    for index in range(0, len(part), _SPARSE_BLOCK_BYTES):
        block = part[index : index + _SPARSE_BLOCK_BYTES]
        if block != zero[: len(block)]:
            os.pwrite(fd, block, offset + index)


def make_plan(
    source: SourceImage,
    facts: SourceFacts,
    *,
    target: Path,
    target_is_device: bool,
    erase_description: str | None,
    target_capacity_bytes: int | None,
    settings: FirstBootSettings,
    bundle: Path,
) -> FlashPlan:
    """The plan for these inputs: the mechanism the image uses, the files B's renderer gives for it, the growth
    the bundle needs. Raises UserError (FirstBootError from the renderer) when something does not fit."""
    mechanism = detect_mechanism(facts.boot_names, facts.cmdline_txt)
    files = first_boot_files(settings, mechanism, facts.cmdline_txt)
    bundle_bytes = bundle.stat().st_size
    grown = needed_partition_bytes(facts.root, facts.layout.root.size_bytes, bundle_bytes)
    plan = FlashPlan(
        source=source,
        facts=facts,
        target=target,
        target_is_device=target_is_device,
        erase_description=erase_description,
        target_capacity_bytes=target_capacity_bytes,
        mechanism=mechanism,
        boot_files=files,
        secret_files=tuple(name for name, content in files.items() if _holds_secret(content, settings)),
        bundle=bundle,
        bundle_bytes=bundle_bytes,
        bundle_path_on_device=settings.bundle_path_on_device,
        grown_root_bytes=grown,
    )
    if target_capacity_bytes is not None and plan.end_bytes > target_capacity_bytes:
        raise LayoutError(
            f"{target} holds {human_bytes(target_capacity_bytes)}, too little for the image and the bundle: they "
            f"need {human_bytes(plan.end_bytes)} (image {human_bytes(source.image_bytes)}, bundle "
            f"{human_bytes(bundle_bytes)}); use a larger card"
        )
    return plan


def _holds_secret(content: bytes, settings: FirstBootSettings) -> bool:
    secrets = [settings.password_hash]
    if settings.wifi is not None:
        secrets += [settings.wifi.passphrase, settings.wifi.psk_hex]
    return any(secret and secret.encode() in content for secret in secrets)


def describe_plan(plan: FlashPlan, *, dry_run: bool) -> str:
    """The plan in words, for a person: what is read, what is erased, what is written where."""
    layout, root = plan.facts.layout, plan.facts.layout.root
    will = "would" if dry_run else "will"
    lines = [f"spine flash{' --dry-run: nothing is written' if dry_run else ''}", ""]
    lines.append(f"source:  {plan.source.describe()}")
    lines.append(f"         {plan.facts.release.describe()} (its {OS_RELEASE}); the bundle is for it too")
    lines.append(
        f"         MBR disk id {layout.partuuid_prefix}: boot FAT32 {human_bytes(layout.boot.size_bytes)} at sector "
        f"{layout.boot.start_sector}, root ext4 {human_bytes(root.size_bytes)} at sector {root.start_sector} "
        f"({human_bytes(plan.facts.root.free_bytes)} free)"
    )
    if plan.target_is_device:
        lines.append(f"target:  {plan.target} (a disk: everything on it {will} be erased)")
        lines.append(plan.erase_description or "")
    else:
        existing = plan.target.exists()
        lines.append(
            f"target:  {plan.target} (an image file, {'replaced' if existing else 'created'}; "
            f"{human_bytes(plan.end_bytes)})"
        )
    lines.append("")
    lines.append("steps:")
    lines.append(
        f"  1. write the image ({human_bytes(plan.source.image_bytes)}"
        f"{', decompressed as it goes' if plan.source.compressed else ''}), then read it back and compare sha256"
        f"{' (the card, not the page cache)' if plan.target_is_device else ''}"
    )
    if plan.grows_root:
        lines.append(
            f"  2. grow partition 2 from {human_bytes(root.size_bytes)} to {human_bytes(plan.grown_root_bytes)} "
            "and its ext4 (resize2fs) to hold the bundle"
            + ("" if plan.target_is_device else f"; the image file grows to {human_bytes(plan.end_bytes)}")
        )
    else:
        lines.append("  2. partition 2 keeps its size: the bundle fits in its free space")
    lines.append(
        f"  3. write the bundle {plan.bundle} ({human_bytes(plan.bundle_bytes)}, for {plan.facts.release.codename}) "
        "into the root filesystem as "
        f"{plan.bundle_path_on_device} (debugfs, no mounting), and read it back"
    )
    lines.append(
        f"  4. first boot by {plan.mechanism.value} ({_mechanism_words(plan.mechanism)}): on the boot partition"
    )
    existing_names = set(plan.facts.boot_names)
    for name, content in plan.boot_files.items():
        change = "replace" if name.lower() in existing_names else "create"
        secret = ", holds secrets" if name in plan.secret_files else ""
        lines.append(f"       {change} {name} ({len(content)} bytes{secret})")
    cmdline = plan.boot_files.get("cmdline.txt")
    if cmdline is not None:
        lines.append(f"       cmdline.txt now:   {plan.facts.cmdline_txt.strip()}")
        lines.append(f"       cmdline.txt after: {cmdline.decode('utf-8', errors='replace').strip()}")
    else:
        lines.append("       cmdline.txt unchanged")
    lines.append("  5. check both filesystems: e2fsck -fn (root), fsck.vfat -n (boot)")
    lines.append("")
    lines.append(f"secrets: {_secrets_words(plan)}")
    if dry_run and plan.target_is_device and os.geteuid() != 0:
        lines.append("")
        lines.append("writing a card needs root: run the same command with sudo and without --dry-run")
    return "\n".join(lines)


def _mechanism_words(mechanism: FirstBootMechanism) -> str:
    if mechanism is FirstBootMechanism.CLOUD_INIT:
        return "the image's cloud-init reads user-data, network-config and meta-data"
    return "cmdline.txt runs firstrun.sh once through systemd.run="


def _secrets_words(plan: FlashPlan) -> str:
    if not plan.secret_files:
        return "none given (no password, no Wi-Fi key)"
    return (
        f"only in {', '.join(plan.secret_files)} on the boot partition; the first boot moves them into root-only "
        "places and overwrites and deletes them on the boot partition. On the way they pass through a private "
        "temporary directory here (mode 0700), overwritten and deleted right after. None is printed"
        + ("; the image file is made readable by its owner only." if not plan.target_is_device else ".")
    )
