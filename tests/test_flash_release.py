"""The release check of `spine flash`: an image's os-release read from its ext4 root without mounting (links
followed as the system follows them), the release a bundle's BUNDLE names, and a mismatch refused with the
`make bundle RELEASE=...` that fixes it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from device.flash.release import ImageRelease, ReleaseMismatchError, bundle_release, check_match, parse_os_release
from device.flash.rootfs import Ext4Volume, read_text
from tests.flash_images import OS_RELEASES, tool

TRIXIE = ImageRelease("trixie", "Debian GNU/Linux 13 (trixie)")


def test_os_release_is_parsed_as_shell_assignments() -> None:
    parsed = parse_os_release(OS_RELEASES["trixie"])
    assert parsed == TRIXIE
    quoted = parse_os_release("# comment\nVERSION_CODENAME='bookworm'\nPRETTY_NAME=\"Raspbian GNU/Linux 12\"\n")
    assert quoted == ImageRelease("bookworm", "Raspbian GNU/Linux 12")
    assert parse_os_release('PRETTY_NAME="Debian GNU/Linux trixie/sid"\nID=debian\n') is None  # no codename
    assert parse_os_release("VERSION_CODENAME=trixie\n\0\0\0") is None  # a block not decompressed yet
    assert parse_os_release("") is None


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"release": "trixie", "debian": "trixie arm64", "python_version": "3.13"}, "trixie"),
        ({"debian": "bookworm arm64", "python_version": "3.11"}, "bookworm"),  # before --release existed
        ({"python_version": "3.11"}, "bookworm"),
        ({"python_version": "3.12"}, None),
        ({}, None),
    ],
)
def test_the_bundles_release(fields: dict[str, str], expected: str | None) -> None:
    assert bundle_release(fields) == expected


def test_a_match_passes_and_a_mismatch_says_which_bundle_to_make() -> None:
    assert check_match(TRIXIE, "pi.img", {"release": "trixie"}, "b.tar") == "trixie"
    with pytest.raises(ReleaseMismatchError) as raised:
        check_match(TRIXIE, "pi.img", {"release": "bookworm", "python_version": "3.11"}, "b.tar")
    assert str(raised.value) == (
        "b.tar is for bookworm (CPython 3.11) but pi.img is Debian GNU/Linux 13 (trixie), release trixie, whose "
        "first boot could not install it: make a bundle for the image with `make bundle RELEASE=trixie` "
        "(scripts/bundle --release trixie), or flash a bookworm image with this bundle"
    )
    with pytest.raises(ReleaseMismatchError, match=r"is for an unknown release .*RELEASE=trixie`[^,]*$"):
        check_match(TRIXIE, "pi.img", {}, "b.tar")
    with pytest.raises(ReleaseMismatchError, match="release buster; Spine's bundles are for Raspberry Pi OS"):
        check_match(ImageRelease("buster", "Raspbian 10"), "pi.img", {"release": "bookworm"}, "b.tar")


def _ext4_of(tree: Path, image: Path) -> Ext4Volume:
    subprocess.run(
        [tool("mke2fs"), "-q", "-t", "ext4", "-b", "4096", "-d", str(tree), str(image), "8M"],
        check=True,
        capture_output=True,
    )
    return Ext4Volume(image, 0, 8 * 1024 * 1024)


def test_a_file_is_read_through_relative_absolute_and_long_links(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "usr" / "lib").mkdir(parents=True)
    (tree / "etc").mkdir()
    (tree / "usr" / "lib" / "os-release").write_text(OS_RELEASES["bookworm"])
    (tree / "etc" / "os-release").symlink_to("../usr/lib/os-release")  # Debian's
    (tree / "etc" / "absolute").symlink_to("/usr/lib/os-release")
    long_dir = tree / ("d" * 70)  # a target of 60 bytes or more is kept in a data block, not the inode
    long_dir.mkdir()
    (long_dir / "os-release").write_text(OS_RELEASES["trixie"])
    (tree / "etc" / "long").symlink_to(f"/{long_dir.name}/os-release")
    (tree / "etc" / "loop").symlink_to("loop")
    volume = _ext4_of(tree, tmp_path / "root.ext4")
    assert read_text(volume, "/etc/os-release") == OS_RELEASES["bookworm"]
    assert read_text(volume, "/etc/absolute") == OS_RELEASES["bookworm"]
    assert read_text(volume, "/etc/long") == OS_RELEASES["trixie"]
    assert read_text(volume, "/etc/missing") is None
    assert read_text(volume, "/etc/loop") is None  # gives up after a few links
    assert read_text(volume, "/etc") is None  # a directory is no file


def test_a_root_partly_decompressed_reads_as_missing_not_as_another_release(tmp_path: Path) -> None:
    """What the .img.xz path relies on: blocks not written yet are zeros, and zeros never make a release."""
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "os-release").write_text(OS_RELEASES["trixie"])
    image = tmp_path / "root.ext4"
    volume = _ext4_of(tree, image)
    whole = image.read_bytes()
    found = []
    for cut_kib in (4, 64, 512, 2048, 8192):  # the first cut_kib KiB written, the rest zeros
        image.write_bytes(whole[: cut_kib * 1024] + bytes(len(whole) - cut_kib * 1024))
        found.append(parse_os_release(read_text(volume, "/etc/os-release") or ""))
    assert found[-1] == TRIXIE
    assert set(found) <= {None, TRIXIE}
