"""Writing the image to the target and verifying it, with progress bars; and copying byte ranges between files.

Writing hashes the image bytes as they go (sha256). Verifying reads the target back and hashes the same number
of bytes: for a card, after `fsync`, with the kernel's cached copy dropped first (`BLKFLSBUF`, `posix_fadvise
DONTNEED`), so what is compared is what the card returns, not what the page cache still holds. A card is
written with `O_EXCL` (the kernel refuses it while any of its partitions is mounted) and synced every 64 MiB,
so the bar moves with the card rather than with memory.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
from pathlib import Path

from tqdm import tqdm

from device.errors import UserError
from device.flash.image import CHUNK_BYTES, SourceImage, human_bytes, read_chunks

BLKFLSBUF = 0x1261
"""ioctl: flush a block device's buffers and drop its cached pages."""
BLKRRPART = 0x125F
"""ioctl: have the kernel read a disk's partition table again."""
SYNC_EVERY_BYTES = 64 * 1024 * 1024


class WriteError(UserError):
    """Writing or verifying failed: the message says what to try."""


def write_image(image: SourceImage, target: Path, *, block_device: bool, progress: bool = True) -> str:
    """Write the image's bytes to the start of `target` (an image file is created or replaced); return their
    sha256 (hex)."""
    digest = hashlib.sha256()
    flags = os.O_WRONLY | os.O_CLOEXEC | (os.O_EXCL if block_device else os.O_CREAT | os.O_TRUNC)
    try:
        fd = os.open(target, flags, 0o600)  # an image file will hold the first boot's secrets, if any
    except OSError as error:
        raise _open_error(target, error, block_device) from None
    written = 0
    try:
        label = "write" if not image.compressed else "write (xz read)"
        with _bar(image.stored_bytes, label, progress) as bar:
            synced = 0
            for chunk in read_chunks(image, on_stored_bytes=bar.update):
                digest.update(chunk)
                _write_all(fd, chunk, target)
                written += len(chunk)
                if block_device and written - synced >= SYNC_EVERY_BYTES:
                    os.fdatasync(fd)
                    synced = written
        os.fsync(fd)
    except OSError as error:
        raise WriteError(
            f"writing {target} failed after {human_bytes(written)}: {error.strerror}; "
            + ("the card may be full, locked or failing: try another card" if block_device else "is the disk full?")
        ) from None
    finally:
        os.close(fd)
    return digest.hexdigest()


def verify(target: Path, image_bytes: int, expected_sha256: str, *, block_device: bool, progress: bool = True) -> None:
    """Read the first `image_bytes` of `target` back (not from the page cache) and compare their sha256 with the
    one the write computed; WriteError when they differ."""
    digest = hashlib.sha256()
    fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if block_device:
            fcntl.ioctl(fd, BLKFLSBUF)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        done = 0
        with _bar(image_bytes, "verify", progress) as bar:
            while done < image_bytes:
                chunk = os.read(fd, min(CHUNK_BYTES, image_bytes - done))
                if not chunk:
                    raise WriteError(f"{target} ends after {done} bytes, the image has {image_bytes}: flash again")
                digest.update(chunk)
                done += len(chunk)
                bar.update(len(chunk))
    finally:
        os.close(fd)
    if digest.hexdigest() != expected_sha256:
        raise WriteError(
            f"{target} reads back different from the image (sha256 {digest.hexdigest()[:16]}..., written "
            f"{expected_sha256[:16]}...): "
            + (
                "the card or the reader is failing (or the card is fake and smaller than it says): try another card"
                if block_device
                else "the disk is failing, or something else wrote to the file meanwhile: flash again"
            )
        )


def copy_range(
    source: Path,
    source_offset_bytes: int,
    size_bytes: int,
    destination: Path,
    destination_offset_bytes: int | None = None,
) -> None:
    """Copy `size_bytes` bytes of `source` from `source_offset_bytes` to `destination`: a new file when
    `destination_offset_bytes` is None, else into the existing file (or device) at that offset. In the kernel
    where it can (copy_file_range), else by reading and writing."""
    kernel_copy = True
    writing = os.O_WRONLY | os.O_CLOEXEC
    writing |= os.O_CREAT | os.O_TRUNC if destination_offset_bytes is None else 0
    reader = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        writer = os.open(destination, writing, 0o600)
        try:
            start = destination_offset_bytes or 0
            done = 0
            while done < size_bytes:
                want = min(CHUNK_BYTES * 2, size_bytes - done)
                if kernel_copy:
                    try:
                        count = os.copy_file_range(reader, writer, want, source_offset_bytes + done, start + done)
                    except OSError:
                        kernel_copy = False  # a block device, or two filesystems that cannot
                        continue
                else:
                    data = os.pread(reader, want, source_offset_bytes + done)
                    count = os.pwrite(writer, data, start + done) if data else 0
                if count == 0:
                    raise WriteError(f"{source} ends before byte {source_offset_bytes + size_bytes}: it was cut short")
                done += count
            os.fsync(writer)
        finally:
            os.close(writer)
    finally:
        os.close(reader)


def reread_partition_table(device: Path) -> bool:
    """Ask the kernel to read the card's partition table again (so /dev/sdX2 has its new size); False when it
    cannot now (a partition in use), which only matters until the card is next plugged in."""
    fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, BLKRRPART)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def _write_all(fd: int, chunk: bytes, target: Path) -> None:
    view = memoryview(chunk)
    while view:
        count = os.write(fd, view)
        if count == 0:
            raise WriteError(f"{target} took no more bytes: the card is smaller than the image")
        view = view[count:]


def _open_error(target: Path, error: OSError, block_device: bool) -> WriteError:
    if block_device and error.errno == errno.EBUSY:
        return WriteError(
            f"{target} is in use (a partition is mounted, or another program has it open): unmount its "
            f"partitions (sudo umount {target}*) and close what uses it, then run this again"
        )
    if error.errno in (errno.EACCES, errno.EPERM):
        return WriteError(
            f"cannot open {target} for writing: permission denied"
            + (
                " (writing a card needs root: run with sudo)"
                if block_device
                else " (check the directory's permissions)"
            )
        )
    if error.errno == errno.EROFS:
        return WriteError(f"{target} is read-only: slide the SD card's lock switch up (unlocked) and plug it in again")
    return WriteError(f"cannot open {target} for writing: {error.strerror}")


def _bar(total: int, label: str, progress: bool) -> tqdm:
    """A byte-counting progress bar on stderr (hidden when `progress` is False or stderr is not a terminal)."""
    return tqdm(
        total=total,
        desc=label,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=None if progress else True,
        dynamic_ncols=True,
    )
