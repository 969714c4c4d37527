"""The MBR of a Raspberry Pi OS image: parsed, checked for the layout, partition 2 lengthened; sfdisk agrees."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from device.flash.partitions import SECTOR_BYTES, LayoutError, parse_mbr, pi_layout, with_root_sectors
from tests.flash_images import DISK_ID, run, sfdisk_json, tool


def _disk(tmp_path: Path, table: str, size_mib: int = 64) -> Path:
    path = tmp_path / "disk.img"
    with path.open("wb") as stream:
        stream.truncate(size_mib * 1024 * 1024)
    subprocess.run([tool("sfdisk"), "-q", str(path)], input=table.encode(), check=True, capture_output=True)
    return path


PI_TABLE = (
    f"label: dos\nlabel-id: 0x{DISK_ID:08x}\nunit: sectors\n"
    "start=8192, size=32768, type=c\nstart=40960, size=20480, type=83\n"
)


def test_a_pi_layout_is_read_from_an_sfdisk_table(tmp_path: Path) -> None:
    path = _disk(tmp_path, PI_TABLE)
    layout = pi_layout(path.read_bytes()[:SECTOR_BYTES], str(path), path.stat().st_size)
    assert layout.partuuid_prefix == f"{DISK_ID:08x}"
    assert (layout.boot.start_sector, layout.boot.sector_count, layout.boot.type_id) == (8192, 32768, 0x0C)
    assert (layout.root.start_sector, layout.root.sector_count, layout.root.type_id) == (40960, 20480, 0x83)
    assert layout.root.offset_bytes == 40960 * 512


def test_lengthening_partition_2_keeps_the_rest_and_sfdisk_reads_it(tmp_path: Path) -> None:
    path = _disk(tmp_path, PI_TABLE, size_mib=200)
    sector0 = path.read_bytes()[:SECTOR_BYTES]
    grown = with_root_sectors(sector0, 300_000)
    assert grown[:446] == sector0[:446]  # boot code and the disk identifier
    assert grown[446:462] == sector0[446:462]  # partition 1
    with path.open("r+b") as stream:
        stream.write(grown)
    table = sfdisk_json(path)
    assert table["id"] == f"0x{DISK_ID:08x}"
    partitions = table["partitions"]
    assert isinstance(partitions, list)
    assert [(p["start"], p["size"], p["type"]) for p in partitions] == [(8192, 32768, "c"), (40960, 300_000, "83")]
    # sfdisk --verify finds nothing wrong (CHS end address included).
    assert "No errors detected" in run("sfdisk", "--verify", str(path)).stdout.decode()


def test_chs_end_address_saturates_past_8_gb() -> None:
    sector0 = bytearray(SECTOR_BYTES)
    sector0[510:] = b"\x55\xaa"
    struct.pack_into("<BBBBBBBBII", sector0, 446 + 16, 0, 0, 0, 0, 0x83, 0, 0, 0, 1_056_768, 1000)
    grown = with_root_sectors(bytes(sector0), 60_000_000)
    assert grown[446 + 16 + 5 : 446 + 16 + 8] == b"\xfe\xff\xff"


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("label: gpt\nunit: sectors\nstart=2048, size=8192\n", "GPT"),
        (
            "label: dos\nunit: sectors\nstart=2048, size=8192, type=83\nstart=10240, size=8192, type=83\n",
            "not laid out as Raspberry Pi OS",
        ),
        (
            "label: dos\nunit: sectors\nstart=8192, size=8192, type=c\nstart=16384, size=8192, type=83\n"
            "start=24576, size=8192, type=83\n",
            "its partitions: 1: type 0x0c, 2: type 0x83, 3: type 0x83",
        ),
        ("label: dos\nunit: sectors\nstart=8192, size=8192, type=c\n", "its partitions: 1: type 0x0c"),
    ],
)
def test_other_layouts_are_refused_saying_what_is_there(tmp_path: Path, table: str, expected: str) -> None:
    path = _disk(tmp_path, table)
    with pytest.raises(LayoutError, match=expected):
        pi_layout(path.read_bytes()[:SECTOR_BYTES], str(path), path.stat().st_size)


def test_no_partition_table_at_all_is_not_an_image() -> None:
    with pytest.raises(LayoutError, match="no MBR partition table"):
        parse_mbr(bytes(SECTOR_BYTES), "zeros.img")


def test_an_image_cut_short_is_refused(tmp_path: Path) -> None:
    path = _disk(tmp_path, PI_TABLE)
    with pytest.raises(LayoutError, match="cut short"):
        pi_layout(path.read_bytes()[:SECTOR_BYTES], str(path), 40960 * 512)
