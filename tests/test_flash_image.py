"""The source image of `spine flash`: .img and .img.xz, the size from the xz index, streaming and its errors."""

from __future__ import annotations

import gzip
import hashlib
import lzma
import random
import subprocess
from pathlib import Path

import pytest

from device.flash.image import ImageError, human_bytes, open_source, read_chunks

SECTORS = 2048 * 3 + 5
"""An image size that is a whole number of sectors but not of the read chunk."""


def _image_bytes(size: int = SECTORS * 512) -> bytes:
    rng = random.Random(7)
    # Half random, half zeros: like a disk image, and small once compressed.
    return rng.randbytes(size // 2) + bytes(size - size // 2)


def _digest(chunks: list[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def test_a_raw_image_is_read_as_it_is(tmp_path: Path) -> None:
    data = _image_bytes()
    path = tmp_path / "disk.img"
    path.write_bytes(data)
    image = open_source(path)
    assert (image.compressed, image.image_bytes, image.stored_bytes) == (False, len(data), len(data))
    counted: list[int] = []
    chunks = list(read_chunks(image, on_stored_bytes=counted.append, chunk_bytes=1 << 20))
    assert _digest(chunks) == hashlib.sha256(data).hexdigest()
    assert sum(counted) == len(data)


@pytest.mark.parametrize(
    "xz_args",
    [
        ["-0"],  # one stream, one block
        ["-0", "-T2", "--block-size=1MiB"],  # one stream, several blocks (as multi-threaded xz writes)
    ],
)
def test_the_size_of_an_xz_image_comes_from_its_index(tmp_path: Path, xz_args: list[str]) -> None:
    data = _image_bytes()
    raw = tmp_path / "disk.img"
    raw.write_bytes(data)
    subprocess.run(["xz", *xz_args, "-k", str(raw)], check=True)
    image = open_source(tmp_path / "disk.img.xz")
    assert image.compressed
    assert image.image_bytes == len(data)
    assert image.stored_bytes == (tmp_path / "disk.img.xz").stat().st_size
    counted: list[int] = []
    chunks = list(read_chunks(image, on_stored_bytes=counted.append))
    assert _digest(chunks) == hashlib.sha256(data).hexdigest()
    # The write progress bar counts compressed bytes: all of the file, once.
    assert sum(counted) == image.stored_bytes


def test_concatenated_xz_streams_with_padding_add_up(tmp_path: Path) -> None:
    first, second = _image_bytes(512 * 100), _image_bytes(512 * 60)
    path = tmp_path / "two.img.xz"
    path.write_bytes(lzma.compress(first) + bytes(8) + lzma.compress(second) + bytes(4))
    image = open_source(path)
    assert image.image_bytes == len(first) + len(second)
    assert b"".join(read_chunks(image)) == first + second


def test_read_chunks_can_stop_early(tmp_path: Path) -> None:
    data = _image_bytes()
    path = tmp_path / "disk.img.xz"
    path.write_bytes(lzma.compress(data))
    image = open_source(path)
    assert b"".join(read_chunks(image, end_bytes=1000)) == data[:1000]


def test_a_cut_xz_file_is_refused_before_writing(tmp_path: Path) -> None:
    whole = lzma.compress(_image_bytes())
    path = tmp_path / "cut.img.xz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ImageError, match=r"not a readable \.xz file.*download it again"):
        open_source(path)


def test_xz_damaged_inside_is_found_while_reading(tmp_path: Path) -> None:
    whole = bytearray(lzma.compress(_image_bytes()))
    whole[200] ^= 0xFF  # inside the compressed data: the index at the end still reads
    path = tmp_path / "damaged.img.xz"
    path.write_bytes(bytes(whole))
    image = open_source(path)
    with pytest.raises(ImageError, match="damaged"):
        list(read_chunks(image))


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("disk.img.gz", gzip.compress(bytes(1024)), "gzip-compressed"),
        ("disk.zip", b"PK\x03\x04" + bytes(1020), "zip archive"),
        ("odd.img", bytes(1000), "not a whole number of 512-byte sectors"),
        ("empty.img", b"", "empty"),
    ],
)
def test_what_is_not_an_image_is_refused_with_a_fix(tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageError, match=expected):
        open_source(path)


def test_a_missing_image_says_where_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="Raspberry Pi OS Lite"):
        open_source(tmp_path / "nope.img.xz")


def test_human_bytes_reads_like_a_card_label() -> None:
    assert human_bytes(31914983424) == "31.9 GB (29.7 GiB)"
    assert human_bytes(2000398934016) == "2.0 TB (1.8 TiB)"
    assert human_bytes(512) == "512 B"
