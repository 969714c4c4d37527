"""`spine flash`'s decisions before anything is written: options, the target's kind, root and confirmation for a
card (on recorded lsblk output: no real disk is touched, and the write is replaced by a tripwire), --dry-run,
the image and bundle checks."""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from device.cli import build_parser
from device.errors import UserError
from device.flash import cli as flash_cli
from device.flash.partitions import LayoutError
from device.flash.release import ReleaseMismatchError
from device.flash.safety import UnsafeTargetError
from tests.flash_images import PiImage, build_pi_image, make_bundle

LSBLK = Path(__file__).parent / "data" / "lsblk"
PASSPHRASE = "correct horse battery"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq1O3Vx2mY0m0S6l0p3zJ1p1n1Lq0zHq0X0m7s3nUe5 ann@laptop"


class Tripwire(Exception):
    """Raised where a test's flash would have started writing."""


@pytest.fixture(scope="module")
def pi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PiImage, Path]]:
    folder = tmp_path_factory.mktemp("flash-cli")
    yield build_pi_image(folder, cloud_init=False), make_bundle(folder / "bundle.tar")


@pytest.fixture
def no_writes(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """Replace writing with a tripwire that records how it was called."""
    calls: list[dict[str, object]] = []

    def tripwire(*args: object, **kwargs: object) -> str:
        calls.append({"args": args, **kwargs})
        raise Tripwire

    monkeypatch.setattr("device.flash.write.write_image", tripwire)
    monkeypatch.setattr("device.flash.write.verify", tripwire)
    monkeypatch.setattr("device.flash.customise.customise", tripwire)
    return calls


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["flash", *argv])


def _as_card(monkeypatch: pytest.MonkeyPatch, fixture: str, *, euid: int = 0, lsblk_text: str | None = None) -> None:
    """Make the target count as a block device, on the machine the lsblk fixture recorded."""
    monkeypatch.setattr(flash_cli, "target_is_device", lambda target: True)
    monkeypatch.setattr("os.geteuid", lambda: euid)
    text = lsblk_text if lsblk_text is not None else (LSBLK / f"{fixture}.json").read_text()
    monkeypatch.setattr(flash_cli, "_lsblk", lambda: text)


def _never_asked(question: str) -> str | None:
    raise AssertionError(f"asked: {question}")


# --- --dry-run -----------------------------------------------------------------------------------------------


def test_dry_run_says_everything_and_writes_nothing(
    pi: tuple[PiImage, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, bundle = pi
    before = hashlib.sha256(image.path.read_bytes()).hexdigest()
    secret = tmp_path / "wifi.txt"
    secret.write_text(PASSPHRASE + "\n")
    target = tmp_path / "out.img"
    args = _args(
        str(image.path), str(target), "--bundle", str(bundle), "--dry-run", "--hostname", "kitchen",
        "--wifi-country", "GB", "--wifi-ssid", "Home", "--wifi-passphrase-file", str(secret),
    )  # fmt: skip
    assert flash_cli.flash(args, ask=_never_asked) == 0
    out = capsys.readouterr().out
    assert not target.exists()
    assert hashlib.sha256(image.path.read_bytes()).hexdigest() == before
    for expected in (
        "--dry-run: nothing is written",
        f"source:  {image.path} (96.5 MB (92.0 MiB) image)",
        "Debian GNU/Linux 12 (bookworm), release bookworm (its /etc/os-release); the bundle is for it too",
        "MiB), for bookworm) into the root filesystem",
        f"target:  {target} (an image file, created;",
        "then read it back and compare sha256",
        "grow partition 2 from 25.2 MB (24.0 MiB) to",
        "/var/lib/spine-firstboot/spine-bundle.tar",
        "first boot by firstrun",
        "create firstrun.sh",
        "create spine-wifi.nmconnection (",
        "holds secrets",
        "replace cmdline.txt",
        "systemd.run=/boot/firmware/firstrun.sh",
        "e2fsck -fn (root), fsck.vfat -n (boot)",
        "secrets: only in spine-wifi.nmconnection",
    ):
        assert expected in out, expected
    assert PASSPHRASE not in out


def test_dry_run_on_a_card_needs_no_root_and_lists_what_it_would_erase(
    pi: tuple[PiImage, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    image, bundle = pi
    _as_card(monkeypatch, "desktop-sata-usb-reader", euid=1000)
    assert flash_cli.flash(_args(str(image.path), "/dev/sdc", "--bundle", str(bundle), "--dry-run"), _never_asked) == 0
    out = capsys.readouterr().out
    assert "target:  /dev/sdc (a disk: everything on it would be erased)" in out
    assert '    /dev/sdc1: 536.9 MB (512.0 MiB), vfat, "bootfs", not mounted' in out
    assert "writing a card needs root: run the same command with sudo" in out


# --- a card: root, safety, confirmation ------------------------------------------------------------------


def test_a_card_is_not_written_without_root(
    pi: tuple[PiImage, Path], monkeypatch: pytest.MonkeyPatch, no_writes: list[dict[str, object]]
) -> None:
    image, bundle = pi
    _as_card(monkeypatch, "desktop-sata-usb-reader", euid=1000)
    with pytest.raises(UserError, match="writing /dev/sdc needs root: sudo spine flash"):
        flash_cli.flash(_args(str(image.path), "/dev/sdc", "--bundle", str(bundle)), _never_asked)
    assert no_writes == []


def test_a_card_needs_a_yes_or_yes_erase(
    pi: tuple[PiImage, Path], monkeypatch: pytest.MonkeyPatch, no_writes: list[dict[str, object]]
) -> None:
    image, bundle = pi
    _as_card(monkeypatch, "desktop-sata-usb-reader")
    args = _args(str(image.path), "/dev/sdc", "--bundle", str(bundle))
    with pytest.raises(UserError, match="no terminal to ask whether to erase /dev/sdc: add --yes-erase /dev/sdc"):
        flash_cli.flash(args, ask=lambda question: None)
    assert flash_cli.flash(args, ask=lambda question: "no") == 1
    assert no_writes == []
    questions: list[str] = []

    def answer_yes(question: str) -> str:
        questions.append(question)
        return "yes"

    with pytest.raises(Tripwire):
        flash_cli.flash(args, ask=answer_yes)
    assert questions == ["Erase /dev/sdc and everything on it (listed above)? Type yes to go on: "]
    assert no_writes[0]["block_device"] is True
    # --yes-erase naming it: no question.
    with pytest.raises(Tripwire):
        flash_cli.flash(
            _args(str(image.path), "/dev/sdc", "--bundle", str(bundle), "--yes-erase", "/dev/sdc"), _never_asked
        )


@pytest.mark.parametrize(
    ("fixture", "target", "extra", "expected"),
    [
        ("laptop-nvme-mounted-sd", "/dev/mmcblk0", ["--yes-erase", "/dev/mmcblk0"], "sudo umount /media/alice/bootfs"),
        ("laptop-nvme-mounted-sd", "/dev/nvme0n1", ["--yes-erase", "/dev/nvme0n1"], "holds the running system"),
        ("desktop-sata-usb-reader", "/dev/sdb", [], "add --yes-erase /dev/sdb"),
        ("desktop-sata-usb-reader", "/dev/sdb", ["--yes-erase", "/dev/sdc"], "--yes-erase names /dev/sdc"),
        ("nvme-only", "/dev/nvme1n1", ["--max-size-gb", "2000"], "not a removable disk"),
        ("sbc-sd-usb-ssd", "/dev/sda", [], r"larger \(1\.0 TB"),
    ],
)
def test_unsafe_cards_are_refused_before_any_question(
    pi: tuple[PiImage, Path],
    monkeypatch: pytest.MonkeyPatch,
    no_writes: list[dict[str, object]],
    fixture: str,
    target: str,
    extra: list[str],
    expected: str,
) -> None:
    image, bundle = pi
    _as_card(monkeypatch, fixture)
    with pytest.raises(UnsafeTargetError, match=expected):
        flash_cli.flash(_args(str(image.path), target, "--bundle", str(bundle), *extra), _never_asked)
    assert no_writes == []


def test_a_card_too_small_for_image_and_bundle_is_refused(
    pi: tuple[PiImage, Path], monkeypatch: pytest.MonkeyPatch, no_writes: list[dict[str, object]]
) -> None:
    image, bundle = pi
    document = json.loads((LSBLK / "desktop-sata-usb-reader.json").read_text())
    document["blockdevices"][2]["size"] = 120_000_000  # /dev/sdc: larger than the image, not than image + bundle
    _as_card(monkeypatch, "", lsblk_text=json.dumps(document))
    with pytest.raises(LayoutError, match=r"/dev/sdc holds 120\.0 MB.*too little for the image and the bundle"):
        flash_cli.flash(
            _args(str(image.path), "/dev/sdc", "--bundle", str(bundle), "--yes-erase", "/dev/sdc"), _never_asked
        )
    assert no_writes == []


# --- options -------------------------------------------------------------------------------------------------


def test_wifi_needs_all_three_options(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="Wi-Fi needs all three"):
        flash_cli.settings_from(_args("a.img", "b.img", "--bundle", "c.tar", "--wifi-ssid", "Home"))


def test_secrets_come_from_the_first_line_of_a_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(UserError, match="its first line is empty"):
        flash_cli.read_secret_line(empty, "--wifi-passphrase-file")
    with pytest.raises(UserError, match="no such file"):
        flash_cli.read_secret_line(tmp_path / "nope", "--wifi-passphrase-file")
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(b"secret words\r\nsecond line\r\n")
    assert flash_cli.read_secret_line(crlf, "--wifi-passphrase-file") == "secret words"


def test_a_password_file_is_hashed_and_only_the_hash_kept(tmp_path: Path) -> None:
    password = tmp_path / "pw.txt"
    password.write_text("opensesame\n")
    settings = flash_cli.settings_from(_args("a.img", "b.img", "--bundle", "c.tar", "--password-file", str(password)))
    assert settings.password_hash is not None and settings.password_hash.startswith("$6$")
    salt = settings.password_hash.split("$")[2]
    again = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, "opensesame"], capture_output=True, text=True)
    assert again.stdout.strip() == settings.password_hash
    hashed = tmp_path / "pw.hash"
    hashed.write_text(settings.password_hash + "\n")
    assert flash_cli.password_hash_from_file(hashed) == settings.password_hash


def test_ssh_keys_are_read_and_a_private_key_refused(tmp_path: Path) -> None:
    public = tmp_path / "id_ed25519.pub"
    public.write_text(f"# my laptop\n{KEY}\n\n")
    assert flash_cli.ssh_keys_from(public) == (KEY,)
    private = tmp_path / "id_ed25519"
    private.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n")
    with pytest.raises(UserError, match=r"is a private key: pass the public one \(.*id_ed25519\.pub\)"):
        flash_cli.ssh_keys_from(private)


def test_the_targets_kind(tmp_path: Path) -> None:
    existing = tmp_path / "old.img"
    existing.write_bytes(b"x")
    assert flash_cli.target_is_device(existing) is False
    assert flash_cli.target_is_device(tmp_path / "new.img") is False
    with pytest.raises(UserError, match="does not exist: plug the card in"):
        flash_cli.target_is_device(Path("/dev/spine-test-no-such-disk"))
    with pytest.raises(UserError, match="is not a directory"):
        flash_cli.target_is_device(tmp_path / "no-folder" / "new.img")
    with pytest.raises(UserError, match="neither a block device nor a regular file"):
        flash_cli.target_is_device(tmp_path)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda path: path.write_bytes(b"not a tar"), "is not a Spine bundle"),
        (lambda path: make_bundle(path, arch="x86_64"), r"is for x86_64.*scripts/bundle --arch aarch64"),
    ],
)
def test_the_bundle_is_checked(tmp_path: Path, make: object, expected: str) -> None:
    bundle = tmp_path / "bundle.tar"
    assert callable(make)
    make(bundle)
    with pytest.raises(UserError, match=expected):
        flash_cli.check_bundle(bundle)
    with pytest.raises(UserError, match="make bundle"):
        flash_cli.check_bundle(tmp_path / "missing.tar")


# --- the image -------------------------------------------------------------------------------------------


def test_an_image_that_is_not_raspberry_pi_os_is_refused_before_writing(
    pi: tuple[PiImage, Path], tmp_path: Path, no_writes: list[dict[str, object]]
) -> None:
    _, bundle = pi
    blank = tmp_path / "blank.img"
    blank.write_bytes(bytes(1024 * 1024))
    with pytest.raises(LayoutError, match=r"no MBR partition table.*Raspberry Pi OS Lite"):
        flash_cli.flash(_args(str(blank), str(tmp_path / "out.img"), "--bundle", str(bundle)), _never_asked)
    assert no_writes == []


def test_the_image_cannot_be_its_own_target(pi: tuple[PiImage, Path]) -> None:
    image, bundle = pi
    with pytest.raises(UserError, match="is the image itself"):
        flash_cli.flash(_args(str(image.path), str(image.path), "--bundle", str(bundle)), _never_asked)


def test_help_shows_a_whole_example() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    text = subparsers.choices["flash"].format_help()
    assert "sudo spine flash 2025-10-01-raspios-trixie-arm64-lite.img.xz /dev/sdc" in text
    assert "--bundle out/spine-bundle-0.1.0-trixie-aarch64.tar" in text
    assert "make bundle RELEASE=bookworm" in text or "RELEASE=bookworm for an older image" in text
    assert "--dry-run" in text and "docs/flash.md" in text


# --- the image's release and the bundle's --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image_release", "bundle_release", "expected"),
    [
        ("trixie", "bookworm", r"is for bookworm \(CPython 3.11\) but .* release trixie.*make bundle RELEASE=trixie"),
        ("bookworm", "trixie", r"is for trixie \(CPython 3.13\) but .* release bookworm.*make bundle RELEASE=bookworm"),
        ("bullseye", "bookworm", r"release bullseye; Spine's bundles are for .*bookworm.*trixie"),
    ],
)
def test_a_bundle_for_another_release_is_refused_before_writing(
    tmp_path: Path, no_writes: list[dict[str, object]], image_release: str, bundle_release: str, expected: str
) -> None:
    image = build_pi_image(tmp_path, cloud_init=image_release == "trixie", release=image_release)
    bundle = make_bundle(tmp_path / "bundle.tar", payload_mib=1, release=bundle_release)
    for dry_run in ([], ["--dry-run"]):
        args = _args(str(image.path), str(tmp_path / "out.img"), "--bundle", str(bundle), *dry_run)
        with pytest.raises(ReleaseMismatchError, match=expected):
            flash_cli.flash(args, _never_asked)
    assert no_writes == []
    assert not (tmp_path / "out.img").exists()


def test_a_trixie_image_as_img_xz_takes_a_trixie_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The release is read from the decompressed root, tried every MiB here (every 256 MiB for real images)."""
    monkeypatch.setattr("device.flash.plan._RELEASE_TRY_BYTES", 1024 * 1024)
    image = build_pi_image(tmp_path, cloud_init=True)
    subprocess.run(["xz", "-T1", "-0", "-k", str(image.path)], check=True)
    bundle = make_bundle(tmp_path / "bundle.tar", payload_mib=1, release="trixie")
    args = _args(f"{image.path}.xz", str(tmp_path / "out.img"), "--bundle", str(bundle), "--dry-run")
    assert flash_cli.flash(args, _never_asked) == 0
    out = capsys.readouterr().out
    assert "Debian GNU/Linux 13 (trixie), release trixie (its /etc/os-release)" in out, out
    assert "first boot by cloud-init" in out


def test_an_image_without_os_release_is_refused(tmp_path: Path, no_writes: list[dict[str, object]]) -> None:
    image = build_pi_image(tmp_path, cloud_init=False, os_release=False)
    bundle = make_bundle(tmp_path / "bundle.tar", payload_mib=1)
    args = _args(str(image.path), str(tmp_path / "out.img"), "--bundle", str(bundle))
    with pytest.raises(LayoutError, match=r"no /etc/os-release naming a VERSION_CODENAME.*Raspberry Pi OS Lite"):
        flash_cli.flash(args, _never_asked)
    assert no_writes == []
