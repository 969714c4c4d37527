"""The source image of `spine flash`: a raw disk image (`.img`) or one compressed with xz (`.img.xz`, as Raspberry
Pi OS images are published), read as a stream of image bytes.

An `.img.xz` is never decompressed to disk: it is decompressed while it is written. Its image size is known before
that from the xz index at the end of the file (each block's uncompressed size), so the target's size can be
checked, and the progress bar shown, before the first byte is written.
"""

from __future__ import annotations

import io
import lzma
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from device.errors import UserError

XZ_MAGIC = b"\xfd7zXZ\x00"
_XZ_FOOTER_MAGIC = b"YZ"
_XZ_HEADER_BYTES = 12
_XZ_FOOTER_BYTES = 12
SECTOR_BYTES = 512
CHUNK_BYTES = 4 * 1024 * 1024
"""What is read (and written) at a time: large enough for an SD card's erase blocks, small for the progress bar."""

_OTHER_COMPRESSIONS = {
    b"PK\x03\x04": "a zip archive (unzip it and pass the .img inside)",
    b"\x1f\x8b": "gzip-compressed (gunzip it, or recompress it with xz)",
    b"(\xb5/\xfd": "zstd-compressed (unzstd it, or recompress it with xz)",
    b"BZh": "bzip2-compressed (bunzip2 it, or recompress it with xz)",
}


class ImageError(UserError):
    """The source image cannot be used: the message says why and what to pass instead."""


@dataclass(frozen=True)
class SourceImage:
    """An image to flash: where it is, whether it is xz-compressed, and its sizes."""

    path: Path
    compressed: bool
    image_bytes: int
    """The raw disk image's size (decompressed)."""
    stored_bytes: int
    """The file's size on disk (what the write progress bar counts for a compressed image)."""

    def describe(self) -> str:
        if self.compressed:
            return (
                f"{self.path} (xz, {human_bytes(self.stored_bytes)} compressed, {human_bytes(self.image_bytes)} image)"
            )
        return f"{self.path} ({human_bytes(self.image_bytes)} image)"


def open_source(path: Path) -> SourceImage:
    """Check that `path` is an image `spine flash` can write, and find its image size."""
    if not path.exists():
        raise ImageError(f"no image at {path}: download Raspberry Pi OS Lite (64-bit) as .img.xz and pass its path")
    if not path.is_file():
        raise ImageError(f"{path} is not a file: pass the .img or .img.xz file of a Raspberry Pi OS image")
    try:
        with path.open("rb") as stream:
            head = stream.read(len(XZ_MAGIC))
            stored_bytes = stream.seek(0, 2)
            if head.startswith(XZ_MAGIC):
                image_bytes = xz_uncompressed_bytes(stream, stored_bytes, str(path))
                compressed = True
            else:
                _refuse_other_compression(head, path)
                image_bytes = stored_bytes
                compressed = False
    except PermissionError:
        raise ImageError(f"cannot read {path}: permission denied (check its permissions)") from None
    if image_bytes == 0:
        raise ImageError(f"{path} is empty: download the image again")
    if image_bytes % SECTOR_BYTES:
        raise ImageError(
            f"{path} holds {image_bytes} bytes, not a whole number of 512-byte sectors: it is not a disk image "
            "(or it was cut short: download it again)"
        )
    return SourceImage(path=path, compressed=compressed, image_bytes=image_bytes, stored_bytes=stored_bytes)


def _refuse_other_compression(head: bytes, path: Path) -> None:
    for magic, what in _OTHER_COMPRESSIONS.items():
        if head.startswith(magic):
            raise ImageError(f"{path} is {what}: spine flash reads .img and .img.xz images")


def read_chunks(
    image: SourceImage,
    on_stored_bytes: Callable[[int], None] | None = None,
    end_bytes: int | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[bytes]:
    """The image's bytes, decompressed when it is an .img.xz, in chunks of at most `chunk_bytes`.

    `end_bytes`: stop once that many bytes were given (None: the whole image, checked against its size).
    `on_stored_bytes(n)` is called as `n` more bytes of the file are read (compressed bytes for an .img.xz): what
    the write progress bar counts. Raises ImageError when an .img.xz is damaged or its size differs from its index.
    """
    end = image.image_bytes if end_bytes is None else min(end_bytes, image.image_bytes)
    done = 0
    with image.path.open("rb", buffering=0) as raw:
        counted = io.BufferedReader(_CountingReader(raw, on_stored_bytes), CHUNK_BYTES)
        pieces = _xz_pieces(counted, chunk_bytes) if image.compressed else iter(lambda: counted.read(chunk_bytes), b"")
        try:
            for piece in pieces:
                chunk = piece[: end - done]
                done += len(piece)
                if chunk:
                    yield chunk
                if done >= end:
                    break
        except (lzma.LZMAError, EOFError) as error:
            raise ImageError(
                f"{image.path} is damaged after {done} bytes of image ({error}): download it again"
            ) from None
    if done != end and not (end_bytes is not None and done > end):
        raise ImageError(
            f"{image.path} gave {done} bytes of image where its size is {end}: it changed while being read, or it "
            "is damaged; download it again"
        )


def _xz_pieces(compressed: BinaryIO, piece_bytes: int) -> Iterator[bytes]:
    """Decompressed pieces (at most `piece_bytes` each) of an xz file: every stream, the zero padding between
    streams skipped (Python's LZMAFile stops at padding and drops the streams after it)."""
    decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    while True:
        if decompressor.eof:
            feed = decompressor.unused_data.lstrip(b"\0")
            while not feed:
                more = compressed.read(CHUNK_BYTES)
                if not more:
                    return
                feed = more.lstrip(b"\0")
            decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        elif decompressor.needs_input:
            feed = compressed.read(CHUNK_BYTES)
            if not feed:
                raise EOFError("the file ends inside an xz stream")
        else:
            feed = b""
        piece = decompressor.decompress(feed, max_length=piece_bytes)
        if piece:
            yield piece


def read_head(image: SourceImage, head_bytes: int) -> bytes:
    """The first `head_bytes` bytes of the image (all of it if it is shorter), decompressing only what it needs."""
    return b"".join(read_chunks(image, end_bytes=head_bytes))


class _CountingReader(io.RawIOBase):
    """A raw reader over a file that reports how many bytes were read from it (for a progress bar)."""

    def __init__(self, raw: io.FileIO, on_bytes: Callable[[int], None] | None) -> None:
        super().__init__()
        self._raw = raw
        self._on_bytes = on_bytes

    def readinto(self, buffer: Any) -> int:
        count = self._raw.readinto(buffer) or 0
        if count and self._on_bytes is not None:
            self._on_bytes(count)
        return count

    def readable(self) -> bool:
        return True


# --- the xz index ---------------------------------------------------------------------------------------------
# An .xz file is one or more streams, each: a 12-byte header, blocks, an index (each block's unpadded and
# uncompressed size), a 12-byte footer whose "backward size" says how long the index is; streams may be followed
# by zero padding in multiples of 4 bytes. Reading from the end finds every stream's index without decompressing.


def xz_uncompressed_bytes(stream: BinaryIO, stored_bytes: int, name: str) -> int:
    """The total uncompressed size of the xz file open in `stream` (of `stored_bytes` bytes), from its indexes."""
    end = stored_bytes
    total = 0
    while end > 0:
        end = _skip_stream_padding(stream, end, name)
        if end == 0:
            break
        stream_bytes, uncompressed = _xz_stream_sizes(stream, end, name)
        total += uncompressed
        end -= stream_bytes
    return total


def _skip_stream_padding(stream: BinaryIO, end: int, name: str) -> int:
    while end >= 4:
        stream.seek(end - 4)
        if stream.read(4) != b"\0\0\0\0":
            return end
        end -= 4
    if end:
        raise _damaged_xz(name, "its size is not a multiple of 4 bytes")
    return end


def _xz_stream_sizes(stream: BinaryIO, end: int, name: str) -> tuple[int, int]:
    """(bytes the xz stream ending at `end` takes, its uncompressed bytes)."""
    if end < _XZ_HEADER_BYTES + _XZ_FOOTER_BYTES:
        raise _damaged_xz(name, "it is too short")
    stream.seek(end - _XZ_FOOTER_BYTES)
    footer = stream.read(_XZ_FOOTER_BYTES)
    if footer[10:12] != _XZ_FOOTER_MAGIC:
        raise _damaged_xz(name, "it has no xz stream footer (cut short?)")
    (backward_size,) = struct.unpack_from("<I", footer, 4)
    index_bytes = (backward_size + 1) * 4
    index_start = end - _XZ_FOOTER_BYTES - index_bytes
    if index_start < _XZ_HEADER_BYTES:
        raise _damaged_xz(name, "its index is larger than the stream")
    stream.seek(index_start)
    index = stream.read(index_bytes)
    blocks_bytes, uncompressed = _parse_xz_index(index, name)
    stream_bytes = _XZ_HEADER_BYTES + blocks_bytes + index_bytes + _XZ_FOOTER_BYTES
    if stream_bytes > end:
        raise _damaged_xz(name, "its index describes more blocks than the file holds")
    stream.seek(end - stream_bytes)
    if stream.read(len(XZ_MAGIC)) != XZ_MAGIC:
        raise _damaged_xz(name, "its index does not lead back to a stream header")
    return stream_bytes, uncompressed


def _parse_xz_index(index: bytes, name: str) -> tuple[int, int]:
    """(the blocks' bytes including their padding, their uncompressed bytes) from an xz index."""
    if not index or index[0] != 0:
        raise _damaged_xz(name, "its index has no index indicator")
    position = 1
    records, position = _xz_varint(index, position, name)
    blocks_bytes = 0
    uncompressed = 0
    for _ in range(records):
        unpadded, position = _xz_varint(index, position, name)
        size, position = _xz_varint(index, position, name)
        blocks_bytes += (unpadded + 3) // 4 * 4
        uncompressed += size
    return blocks_bytes, uncompressed


def _xz_varint(data: bytes, position: int, name: str) -> tuple[int, int]:
    """An xz multibyte integer (7 bits a byte, least significant first, at most 9 bytes) and where it ends."""
    value = 0
    for shift in range(0, 63, 7):
        if position >= len(data):
            raise _damaged_xz(name, "its index ends in the middle of a number")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
    raise _damaged_xz(name, "its index holds a number longer than 9 bytes")


def _damaged_xz(name: str, why: str) -> ImageError:
    return ImageError(f"{name} is not a readable .xz file: {why}; download it again")


def human_bytes(count: int) -> str:
    """`count` bytes for a person: 31.9 GB (29.7 GiB) style, decimal first as on card labels."""
    if count < 1000:
        return f"{count} B"
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= scale:
            decimal = f"{count / scale:.1f} {unit}"
            break
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{decimal} ({count / scale:.1f} {unit})"
    return decimal
