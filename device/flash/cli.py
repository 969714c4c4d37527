"""`spine flash IMAGE TARGET --bundle FILE`: a Raspberry Pi OS image onto a card (or into an image file), verified,
set up so that the Pi's first boot installs and starts Spine from the bundle with no network.

This module reads the options (secrets only from files), decides the target's kind and safety, makes the plan
(device/flash/plan.py), prints it, and with no --dry-run writes, verifies and customises. docs/flash.md.
"""

from __future__ import annotations

import argparse
import os
import stat
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from device.errors import UserError
from device.flash import safety

if TYPE_CHECKING:
    from device.flash.firstboot import FirstBootSettings

BUNDLE_ARCH = "aarch64"
"""Raspberry Pi OS 64-bit runs aarch64: a bundle for another architecture would fail at first boot."""

DESCRIPTION = """\
Write a Raspberry Pi OS Lite (64-bit) image to an SD card or USB disk (or into an image file), verify it, and
set it up so that the Pi's first boot installs and starts Spine from the offline bundle: no network needed on
the Pi. It picks the image's first-boot mechanism (cloud-init on newer images, firstrun.sh on Bookworm), puts
the bundle into the root filesystem (growing it as needed) and the first-boot files onto the boot partition,
all without mounting anything, then checks both filesystems.

A card is erased only when it is safe: never the disk this computer runs from, never a mounted disk (it says
what to unmount), and a disk that is not removable or is larger than --max-size-gb only with --yes-erase naming
it. It always shows what will be erased first, and asks (or needs --yes-erase when there is no terminal).
Secrets are read from files, never from the command line, and are wiped from the card at first boot.
"""

EPILOG = """\
example, a card in a USB reader (find it with `lsblk -o NAME,SIZE,MODEL,TRAN,RM`):
  make bundle        # out/spine-bundle-0.1.0-trixie-aarch64.tar (RELEASE=bookworm for an older image)
  openssl passwd -6 > pw.hash   # optional: the login password, as a hash (asks for it twice)
  sudo spine flash 2025-10-01-raspios-trixie-arm64-lite.img.xz /dev/sdc \\
      --bundle out/spine-bundle-0.1.0-trixie-aarch64.tar --hostname kitchen --user ann --password-file pw.hash \\
      --ssh-key ~/.ssh/id_ed25519.pub --wifi-country GB --wifi-ssid "Home" --wifi-passphrase-file wifi.txt \\
      --input-device USB --output-device USB

Add --dry-run to see every step first. An image file as TARGET (any path not under /dev) needs no root:
  spine flash raspios-lite.img.xz spine-pi.img --bundle out/spine-bundle-0.1.0-trixie-aarch64.tar --dry-run
The bundle must be for the image's release (read from its /etc/os-release): trixie for Raspberry Pi OS from
2025-10 on, bookworm before; spine flash checks this before writing anything.
More: docs/flash.md.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `spine flash` to the top-level parser."""
    parser = subparsers.add_parser(
        "flash",
        help="write Raspberry Pi OS to a card, set to install Spine from a bundle at first boot",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("image", type=Path, metavar="IMAGE", help="Raspberry Pi OS Lite 64-bit, .img or .img.xz")
    parser.add_argument(
        "target",
        type=Path,
        metavar="TARGET",
        help="the card's disk device (/dev/sdX, /dev/mmcblkN: the whole disk, not a partition), or an image "
        "file to create or replace",
    )
    parser.add_argument(
        "--bundle",
        type=Path,
        required=True,
        metavar="FILE",
        help="the offline bundle to install at first boot, made for the image's release (`make bundle`: "
        "out/spine-bundle-VERSION-trixie-aarch64.tar; `make bundle RELEASE=bookworm` for a bookworm image)",
    )
    pi = parser.add_argument_group("the Pi")
    pi.add_argument("--hostname", metavar="NAME", help="its host name (default spine: reach it as spine.local)")
    pi.add_argument("--user", metavar="NAME", help="the login user, with sudo (default pi)")
    password = pi.add_mutually_exclusive_group()
    password.add_argument(
        "--password-hash",
        metavar="HASH",
        help="the user's password as a crypt hash ($6$..., from `openssl passwd -6`); without a password option "
        "password logins are locked (use --ssh-key)",
    )
    password.add_argument(
        "--password-file",
        type=Path,
        metavar="FILE",
        help="a file whose first line is the password, or a crypt hash of it; a password is hashed here "
        "(openssl passwd -6) and only the hash is written",
    )
    pi.add_argument(
        "--ssh-key",
        type=Path,
        metavar="FILE",
        help="an OpenSSH public key file (~/.ssh/id_ed25519.pub; one key a line): turns on SSH, keys only",
    )
    pi.add_argument("--wifi-country", metavar="CC", help="the country the Pi is in, ISO 3166 (GB, US, DE...)")
    pi.add_argument("--wifi-ssid", metavar="SSID", help="the Wi-Fi network's name")
    pi.add_argument(
        "--wifi-passphrase-file",
        type=Path,
        metavar="FILE",
        help="a file whose first line is the Wi-Fi passphrase (8-63 characters, or the 64-hex-digit PSK)",
    )
    spine = parser.add_argument_group("Spine")
    spine.add_argument(
        "--config", type=Path, metavar="FILE", help="a Spine configuration to install as /etc/spine/spine.toml"
    )
    spine.add_argument("--input-device", metavar="DEV", help="the microphone: part of its name, or an index")
    spine.add_argument("--output-device", metavar="DEV", help="the speaker: part of its name, or an index")
    care = parser.add_argument_group("safety")
    care.add_argument(
        "--yes-erase",
        metavar="DEVICE",
        help="erase TARGET without asking, also when it is not removable or larger than --max-size-gb; must name "
        "exactly the TARGET disk",
    )
    care.add_argument(
        "--max-size-gb",
        type=float,
        default=safety.DEFAULT_MAX_SIZE_GB,
        metavar="GB",
        help="a larger disk needs --yes-erase (default %(default)g)",
    )
    care.add_argument("--dry-run", action="store_true", help="say exactly what would be done; write nothing")
    parser.set_defaults(func=run_flash)


def run_flash(args: argparse.Namespace) -> int:
    return flash(args, ask=_ask_terminal)


def flash(args: argparse.Namespace, ask: Callable[[str], str | None]) -> int:
    """The command. `ask(question)` returns the user's answer, or None when there is no terminal to ask."""
    # Imported here, not at the top: `spine --help` stays quick (device/cli.py).
    from device.flash.customise import customise
    from device.flash.image import open_source
    from device.flash.plan import describe_plan, inspect_source, make_plan
    from device.flash.release import check_match
    from device.flash.tools import FLASH_TOOLS, require_tools
    from device.flash.write import verify, write_image

    if args.max_size_gb <= 0:
        raise UserError("--max-size-gb must be more than 0")
    settings = settings_from(args)
    is_device = target_is_device(args.target)
    require_tools([*FLASH_TOOLS, *(["lsblk"] if is_device else [])])
    if is_device and not args.dry_run and os.geteuid() != 0:
        raise UserError(f"writing {args.target} needs root: sudo spine flash ... (or try it first with --dry-run)")
    source = open_source(args.image)
    _refuse_same_file(args.image, args.target, "the image")
    _refuse_same_file(args.bundle, args.target, "the bundle")
    bundle_fields = check_bundle(args.bundle)
    facts = inspect_source(source)
    check_match(facts.release, str(args.image), bundle_fields, str(args.bundle))

    erase_description, capacity = _check_card(args, source.image_bytes) if is_device else (None, None)
    plan = make_plan(
        source,
        facts,
        target=args.target,
        target_is_device=is_device,
        erase_description=erase_description,
        target_capacity_bytes=capacity,
        settings=settings,
        bundle=args.bundle,
    )
    print(describe_plan(plan, dry_run=args.dry_run), flush=True)
    if args.dry_run:
        return 0
    if is_device and args.yes_erase is None and not _confirmed(args.target, ask):
        print("nothing written")
        return 1

    _say(f"writing {source.path} to {args.target}")
    digest = write_image(source, args.target, block_device=is_device)
    if not is_device:
        os.chmod(args.target, 0o600)  # it will hold the first boot's secrets, if any were given
    _say("verifying (reading it back)")
    verify(args.target, source.image_bytes, digest, block_device=is_device)
    _say(f"verified: sha256 {digest}")
    customise(plan, _say)
    host = settings.hostname
    if is_device:
        check = f": `ssh {settings.user}@{host}.local systemctl status spine`" if settings.ssh_public_keys else ""
        _say(
            f"done: put the card in the Pi and power it on. The first boot installs Spine from the bundle "
            f"(several minutes, with reboots; log in /var/log/spine-firstboot.log), then the Pi answers as "
            f"{host}.local{check}"
        )
    else:
        _say(
            f"done: {args.target} is ready to write to a card (dd, or any flasher that takes an image file); "
            "keep it private if you gave a password or Wi-Fi key"
        )
    return 0


def _check_card(args: argparse.Namespace, image_bytes: int) -> tuple[str, int]:
    """The safety rules on lsblk's view of the card: (what will be erased, its size), or UnsafeTargetError."""
    yes_erase = os.path.realpath(args.yes_erase) if args.yes_erase else None
    safe = safety.check_target(
        safety.parse_lsblk(_lsblk()),
        os.path.realpath(args.target),
        image_bytes=image_bytes,
        max_size_bytes=int(args.max_size_gb * 10**9),
        yes_erase=yes_erase,
    )
    return safety.describe_disk(safe.disk), safe.disk.size_bytes


def _confirmed(target: Path, ask: Callable[[str], str | None]) -> bool:
    """The user's yes to erasing the card; UserError where there is no terminal to ask."""
    answer = ask(f"Erase {target} and everything on it (listed above)? Type yes to go on: ")
    if answer is None:
        raise UserError(
            f"no terminal to ask whether to erase {target}: add --yes-erase {target} once you have checked the "
            "list above"
        )
    return answer.strip().lower() == "yes"


def settings_from(args: argparse.Namespace) -> FirstBootSettings:
    """The first-boot settings from the options (FirstBootError, a UserError, when one is wrong)."""
    from device.flash.firstboot import FirstBootSettings, WifiSettings

    wifi_options = (args.wifi_country, args.wifi_ssid, args.wifi_passphrase_file)
    wifi = None
    if any(option is not None for option in wifi_options):
        if any(option is None for option in wifi_options):
            raise UserError(
                "Wi-Fi needs all three of --wifi-country, --wifi-ssid and --wifi-passphrase-file "
                "(or none: the Pi then uses Ethernet)"
            )
        passphrase = read_secret_line(args.wifi_passphrase_file, "--wifi-passphrase-file")
        wifi = WifiSettings(country=args.wifi_country, ssid=args.wifi_ssid, passphrase=passphrase)
    password_hash = args.password_hash
    if args.password_file is not None:
        password_hash = password_hash_from_file(args.password_file)
    named = {
        "hostname": args.hostname,
        "user": args.user,
        "input_device": args.input_device,
        "output_device": args.output_device,
    }
    return FirstBootSettings(
        **{key: value for key, value in named.items() if value is not None},
        password_hash=password_hash,
        ssh_public_keys=ssh_keys_from(args.ssh_key) if args.ssh_key else (),
        wifi=wifi,
        spine_config_toml=_read_text(args.config, "--config") if args.config else None,
    )


def read_secret_line(path: Path, option: str) -> str:
    """The first line of a secret's file, without its line ending."""
    text = _read_text(path, option)
    line = text.splitlines()[0] if text else ""
    if not line:
        raise UserError(f"{option} {path}: its first line is empty; put the secret on the first line")
    return line


def password_hash_from_file(path: Path) -> str:
    """The crypt hash for --password-file: its first line as it is when it is a hash, else that password hashed
    with `openssl passwd -6` (SHA-512 crypt, random salt)."""
    from device.flash.tools import run_tool

    line = read_secret_line(path, "--password-file")
    if line.startswith("$"):
        return line
    result = run_tool(["openssl", "passwd", "-6", "-stdin"], what="hashing the password", stdin=(line + "\n").encode())
    return result.stdout.decode().strip()


def ssh_keys_from(path: Path) -> tuple[str, ...]:
    """The key lines of an OpenSSH public key file (blank lines and comments left out)."""
    text = _read_text(path, "--ssh-key")
    if "PRIVATE KEY" in text:
        raise UserError(f"--ssh-key {path} is a private key: pass the public one ({path}.pub), never the private")
    keys = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    if not keys:
        raise UserError(f"--ssh-key {path} holds no key: pass a public key file such as ~/.ssh/id_ed25519.pub")
    return keys


def target_is_device(target: Path) -> bool:
    """True for a block device, False for an image file (existing or to create); UserError for anything else."""
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        if str(target).startswith("/dev/"):
            raise UserError(
                f"{target} does not exist: plug the card in and find its device with `lsblk -o NAME,SIZE,MODEL,TRAN,RM`"
            ) from None
        if not target.parent.is_dir():
            raise UserError(f"{target.parent} is not a directory: the image file cannot be created there") from None
        return False
    if stat.S_ISBLK(mode):
        return True
    if stat.S_ISREG(mode):
        return False
    raise UserError(f"{target} is neither a block device nor a regular file: give a card's device or an image path")


def check_bundle(bundle: Path) -> dict[str, str]:
    """The bundle's BUNDLE fields (arch, release, python_version...), after checking it is a Spine bundle for a
    64-bit Pi."""
    if not bundle.is_file():
        raise UserError(
            f"no bundle at {bundle}: make one with `make bundle` (out/spine-bundle-VERSION-RELEASE-aarch64.tar)"
        )
    try:
        with tarfile.open(bundle, "r:") as archive:
            member = archive.getmember("spine-bundle/BUNDLE")
            stream = archive.extractfile(member)
            text = stream.read().decode("utf-8", errors="replace") if stream else ""
    except (tarfile.TarError, KeyError, OSError):
        raise UserError(
            f"{bundle} is not a Spine bundle (an uncompressed tar with spine-bundle/BUNDLE): make one with "
            "`make bundle`"
        ) from None
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    arch = fields.get("arch", "")
    if arch != BUNDLE_ARCH:
        raise UserError(
            f"{bundle} is for {arch or 'an unknown architecture'}; a Raspberry Pi with 64-bit Raspberry Pi OS "
            f"needs {BUNDLE_ARCH}: scripts/bundle --arch {BUNDLE_ARCH}"
        )
    return fields


def _refuse_same_file(path: Path, target: Path, what: str) -> None:
    if path.exists() and target.exists() and os.path.samefile(path, target):
        raise UserError(f"TARGET {target} is {what} itself: give another path for the image file to write")


def _read_text(path: Path, option: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{option} {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{option} {path}: cannot read it ({error})") from None


def _lsblk() -> str:
    result = subprocess.run(list(safety.LSBLK_COMMAND), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise UserError(f"lsblk failed ({result.stderr.strip()}): is util-linux installed?")
    return result.stdout


def _ask_terminal(question: str) -> str | None:
    if not sys.stdin.isatty():
        return None
    try:
        return input(question)
    except EOFError:
        return None


def _say(message: str) -> None:
    print(f"flash: {message}", flush=True)
