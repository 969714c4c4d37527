"""Which Debian release a Raspberry Pi OS image and an offline bundle are for, and whether they go together.

A bundle installs on one release only: its wheels are built for that release's CPython (3.11 on Debian 12
bookworm, 3.13 on Debian 13 trixie) and its Debian packages come from that suite. `spine flash` reads the
image's os-release (VERSION_CODENAME, from its root filesystem) and the bundle's BUNDLE file, and refuses a
mismatch before anything is erased, rather than let the Pi's first boot fail.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from device.errors import UserError

SUPPORTED = {"bookworm": ("12", "3.11"), "trixie": ("13", "3.13")}
"""Codename -> (Debian version, its CPython): the releases scripts/bundle makes bundles for."""
_PYTHON_RELEASE = {python: codename for codename, (_, python) in SUPPORTED.items()}


class ReleaseMismatchError(UserError):
    """The image and the bundle are for different releases (or one is for none Spine supports)."""


@dataclass(frozen=True)
class ImageRelease:
    """What an image's os-release says."""

    codename: str
    """VERSION_CODENAME: bookworm, trixie, ..."""
    pretty_name: str

    def describe(self) -> str:
        """Its name and codename: `Debian GNU/Linux 13 (trixie), release trixie`."""
        return f"{self.pretty_name or 'Debian'}, release {self.codename}"


def parse_os_release(text: str) -> ImageRelease | None:
    """The release in an os-release file's text (os-release(5): shell-style KEY=value lines), or None when it
    names no VERSION_CODENAME (or is not text: a partly read file)."""
    if "\0" in text:
        return None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or not key or key.startswith("#"):
            continue
        try:
            words = shlex.split(value)
        except ValueError:
            continue
        fields[key] = words[0] if words else ""
    codename = fields.get("VERSION_CODENAME", "")
    if not codename:
        return None
    return ImageRelease(codename=codename, pretty_name=fields.get("PRETTY_NAME", ""))


def bundle_release(fields: dict[str, str]) -> str | None:
    """The release a bundle is for, from its BUNDLE fields: `release=` (scripts/bundle since there are two),
    else the suite in `debian=SUITE ARCH` (bookworm-only bundles), else the release of its `python_version`."""
    if fields.get("release"):
        return fields["release"]
    if fields.get("debian"):
        return fields["debian"].split()[0]
    return _PYTHON_RELEASE.get(fields.get("python_version", ""))


def check_match(image: ImageRelease, image_name: str, fields: dict[str, str], bundle_name: str) -> str:
    """The release both are for; ReleaseMismatchError saying which bundle to make (or image to take) when the
    image's release is not one Spine supports, or the bundle is for another."""
    if image.codename not in SUPPORTED:
        names = " or ".join(f"{codename} (Debian {version})" for codename, (version, _) in SUPPORTED.items())
        raise ReleaseMismatchError(
            f"{image_name} is {image.describe()}; Spine's bundles are for Raspberry Pi OS {names}: download a "
            "current Raspberry Pi OS Lite (64-bit)"
        )
    made_for = bundle_release(fields)
    if made_for != image.codename:
        python = fields.get("python_version", "?")
        raise ReleaseMismatchError(
            f"{bundle_name} is for {made_for or 'an unknown release'} (CPython {python}) but {image_name} is "
            f"{image.describe()}, whose first boot could not install it: make a bundle for the image with "
            f"`make bundle RELEASE={image.codename}` (scripts/bundle --release {image.codename})"
            + (f", or flash a {made_for} image with this bundle" if made_for in SUPPORTED else "")
        )
    return made_for
