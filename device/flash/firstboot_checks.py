"""The checks on what `spine flash` is told to put on the first boot: host name, Wi-Fi, user, password hash, SSH
keys, the Spine config and the sound devices.

Each check takes the text as the user gave it and returns it (normalised where a spelling does not matter, as a
country code's case) or raises `FirstBootError` saying what is wrong and how to fix it. Nothing here touches the
image: a bad setting is refused before anything is written.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct

from device.config import Config, manifest_voices
from device.errors import UserError
from device.tomlfile import loads_dataclass
from device.tomlfile_lines import KeyLines
from device.tomlfile_writer import toml_value


class FirstBootError(UserError):
    """A first-boot setting that cannot work, with what to do instead."""


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
"""One RFC 1123 label: 1 to 63 letters, digits and hyphens, not starting or ending with a hyphen."""

# ISO 3166-1 alpha-2, the officially assigned codes (the same 249 as tzdata's iso3166.tab): the Wi-Fi regulatory
# domain, which decides the channels and power the radio may use.
ISO_COUNTRIES = _words(
    """AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY
    BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM
    FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT
    JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN
    MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT
    PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL
    TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW"""
)
COUNTRY_MISTAKES = {"UK": "GB", "EN": "GB", "EL": "GR"}
"""Codes people write for a country whose ISO code differs."""

SSID_MAX_BYTES = 32
PSK_HEX = re.compile(r"[0-9A-Fa-f]{64}")

USER = re.compile(r"[a-z][-a-z0-9_]*")
"""Debian adduser's default NAME_REGEX (without the trailing `$` it allows for Samba machine accounts)."""
USER_MAX_CHARS = 32
RESERVED_USERS = _words(
    # root, Debian's static system accounts (base-passwd), those Raspberry Pi OS and its services add, and
    # Spine's own service user.
    """root daemon bin sys sync games man lp mail news uucp proxy www-data backup list irc gnats nobody _apt
    systemd-network systemd-resolve systemd-timesync systemd-coredump messagebus sshd avahi polkitd rtkit
    pulse lightdm colord saned dnsmasq tss statd spine"""
)

# crypt(3) hashes that Raspberry Pi OS's PAM accepts: SHA-512 ($6$), SHA-256 ($5$), yescrypt ($y$, Debian 12's
# default).
CRYPT_B64 = r"[./A-Za-z0-9]"
PASSWORD_HASH = re.compile(
    rf"\$6\$(rounds=[0-9]+\$)?{CRYPT_B64}{{1,16}}\${CRYPT_B64}{{86}}"
    rf"|\$5\$(rounds=[0-9]+\$)?{CRYPT_B64}{{1,16}}\${CRYPT_B64}{{43}}"
    rf"|\$y\${CRYPT_B64}+\${CRYPT_B64}{{1,86}}\${CRYPT_B64}{{43}}"
)
HOW_TO_HASH = "make one with `openssl passwd -6` (or `mkpasswd -m yescrypt`) and give its output"

SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
ED25519_KEY_BYTES = 32

CONFIG_SOURCE = "the Spine config"
"""How messages name the Spine config text (the file's name is the caller's to add)."""

BUNDLE_PATH = re.compile(r"/[A-Za-z0-9._/-]+")
"""A plain absolute path: it is written into a shell script and a systemd unit unquoted-safe."""


def checked_hostname(hostname: str) -> str:
    if not HOSTNAME.fullmatch(hostname):
        raise FirstBootError(
            f"host name {hostname!r} is not valid: use 1 to 63 letters, digits and hyphens, not starting or ending "
            'with a hyphen and without dots (e.g. "spine" or "kitchen-pi"); the Pi is then <name>.local'
        )
    if hostname.lower() == "localhost":
        raise FirstBootError('host name "localhost" would hide the Pi on the network: choose another, e.g. "spine"')
    return hostname


def checked_country(country: str) -> str:
    code = country.strip().upper()
    if code in COUNTRY_MISTAKES:
        raise FirstBootError(f'Wi-Fi country "{country}" is not an ISO 3166 code: use "{COUNTRY_MISTAKES[code]}"')
    if code not in ISO_COUNTRIES:
        raise FirstBootError(
            f'Wi-Fi country "{country}" is not an ISO 3166-1 two-letter code (e.g. "GB", "DE", "US"): the Wi-Fi '
            "radio stays off until it knows the country it is in"
        )
    return code


def checked_ssid(ssid: str) -> str:
    size = len(ssid.encode("utf-8"))
    if not 1 <= size <= SSID_MAX_BYTES:
        raise FirstBootError(f"Wi-Fi SSID {ssid!r} is {size} bytes: an SSID has 1 to {SSID_MAX_BYTES} (UTF-8)")
    if not ssid.isprintable():
        raise FirstBootError(f"Wi-Fi SSID {ssid!r} has a control character: give the network's name as it is shown")
    return ssid


def checked_passphrase(passphrase: str) -> str:
    if PSK_HEX.fullmatch(passphrase):
        return passphrase.lower()
    printable_ascii = all(" " <= char <= "~" for char in passphrase)
    if not (8 <= len(passphrase) <= 63 and printable_ascii):
        raise FirstBootError(
            f"the Wi-Fi passphrase has {len(passphrase)} characters"
            + ("" if printable_ascii else ", not all of them printable ASCII")
            + ": WPA2 wants 8 to 63 printable ASCII characters, or the 64 hex digits of a PSK (wpa_passphrase)"
        )
    return passphrase


def checked_user(user: str) -> str:
    if not (USER.fullmatch(user) and len(user) <= USER_MAX_CHARS):
        raise FirstBootError(
            f"user name {user!r} is not valid: {USER_MAX_CHARS} characters at most, a lower-case letter first, "
            'then lower-case letters, digits, "-" or "_" (the rules of Debian\'s adduser), e.g. "pi"'
        )
    if user in RESERVED_USERS:
        raise FirstBootError(f'user name "{user}" is a system account on Raspberry Pi OS or Spine: choose another')
    return user


def checked_password_hash(password_hash: str) -> str:
    if PASSWORD_HASH.fullmatch(password_hash):
        return password_hash
    if password_hash.startswith("$"):
        raise FirstBootError(
            f"the password hash starting {password_hash[:4]!r} is not a complete SHA-512 ($6$), SHA-256 ($5$) or "
            f"yescrypt ($y$) crypt hash: {HOW_TO_HASH}"
        )
    raise FirstBootError(
        f"the password is not a crypt hash (a plain password is never written to the card): {HOW_TO_HASH}"
    )


def checked_ssh_key(line: str) -> str:
    key = line.strip()
    if "PRIVATE KEY" in key:
        raise FirstBootError("that is an SSH private key, which must never leave your computer: give the .pub file")
    fields = key.split(maxsplit=2)
    if not fields or fields[0] not in SSH_KEY_TYPES:
        shown = fields[0][:40] if fields else "an empty line"
        raise FirstBootError(
            f"SSH public key line starts with {shown!r}, not a key type ({', '.join(SSH_KEY_TYPES[:3])}, ...): give "
            "one line of a .pub file as `ssh-keygen -t ed25519` writes it, without authorized_keys options"
        )
    if len(fields) < 2 or not BASE64.fullmatch(fields[1]):
        raise FirstBootError(f"SSH public key ({fields[0]}) has no base64 key after its type: copy the whole line")
    if "\n" in key or "\r" in key:
        raise FirstBootError("an SSH public key is one line: give each key as its own line")
    try:
        blob_fields = _ssh_blob_fields(base64.b64decode(fields[1], validate=True))
        blob_type = blob_fields[0].decode("ascii")
    except (binascii.Error, ValueError):
        raise FirstBootError(f"SSH public key ({fields[0]}) is cut or damaged: copy the whole line again") from None
    if blob_type != fields[0]:
        raise FirstBootError(
            f"SSH public key says {fields[0]} but holds a {blob_type!r} key: copy the whole line again, unchanged"
        )
    if blob_type == "ssh-ed25519" and len(blob_fields[-1]) != ED25519_KEY_BYTES:
        raise FirstBootError("SSH public key (ssh-ed25519) is cut or damaged: copy the whole line again")
    return key


def _ssh_blob_fields(blob: bytes) -> list[bytes]:
    """The length-prefixed strings an OpenSSH public key blob is made of (RFC 4253 section 6.6); ValueError
    unless the blob is exactly such strings, at least two (the type, then the key)."""
    fields: list[bytes] = []
    offset = 0
    while offset < len(blob):
        if offset + 4 > len(blob):
            raise ValueError("a length cut short")
        (size,) = struct.unpack(">I", blob[offset : offset + 4])
        if offset + 4 + size > len(blob):
            raise ValueError("a string cut short")
        fields.append(blob[offset + 4 : offset + 4 + size])
        offset += 4 + size
    if len(fields) < 2:
        raise ValueError("no key after the type")
    return fields


def checked_device(device: str, which: str) -> str:
    if not device.strip() or not device.isprintable():
        raise FirstBootError(
            f"the {which} device {device!r} is empty or has a control character: give an index or part of its name "
            "as `spine devices` lists them on the Pi"
        )
    return device


def checked_bundle_path(path: str) -> str:
    if not BUNDLE_PATH.fullmatch(path) or "/../" in f"{path}/":
        raise FirstBootError(
            f"bundle path on the device {path!r} must be an absolute path of letters, digits and . _ - / only"
        )
    return path


def spine_config_text(config_toml: str | None, input_device: str | None, output_device: str | None) -> str | None:
    """The /etc/spine/spine.toml the first boot writes: the given config with the devices set in its `[audio]`
    table, checked as `spine run` loads it; None when neither a config nor a device is given (the installer then
    writes every setting at its default)."""
    if config_toml is None and input_device is None and output_device is None:
        return None
    text = config_toml or ""
    devices = {key: value for key, value in (("input_device", input_device), ("output_device", output_device)) if value}
    if devices:
        text = _with_audio_keys(text, devices)
    config = checked_spine_config(text)
    for key, value in devices.items():
        if getattr(config.audio, key) != value:  # the text was edited in a way TOML read otherwise
            raise FirstBootError(f"could not set [audio] {key} in {CONFIG_SOURCE}: set it there yourself")
    return text


def checked_spine_config(text: str) -> Config:
    """`text` loaded as `spine config --check` loads a file, except `[models] dir`, which names a directory on the
    Pi rather than here; every problem a FirstBootError at the line."""
    try:
        config = loads_dataclass(Config, text, CONFIG_SOURCE)
    except UserError as error:
        raise FirstBootError(
            f"{error.message} (check the file with `spine config --check FILE`)", error.where
        ) from None
    found = config.problem()
    if found is None and config.tts.voice not in manifest_voices():
        found = ((("tts", "voice"),), f'`[tts] voice` "{config.tts.voice}" is not a voice in the model manifest')
    if found is not None:
        keys, message = found
        lines = KeyLines(text)
        line = next((lines.lines[key] for key in keys if key in lines.lines), lines.line_of(keys[0]))
        raise FirstBootError(message, where=f"{CONFIG_SOURCE}:{line}")
    return config


def _with_audio_keys(text: str, keys: dict[str, str]) -> str:
    """`text` with `keys` added to its `[audio]` table (made at the end when there is none)."""
    lines = KeyLines(text)
    for key in keys:
        if ("audio", key) in lines.lines:
            raise FirstBootError(
                f"{CONFIG_SOURCE} sets [audio] {key} already (line {lines.lines[('audio', key)]}): give the device "
                "either there or as an option, not both",
                where=f"{CONFIG_SOURCE}:{lines.lines[('audio', key)]}",
            )
    added = [f"{key} = {toml_value(value)}" for key, value in keys.items()]
    text_lines = text.splitlines()
    header = lines.lines.get(("audio",))
    if header is None:
        separator = [""] if text_lines else []
        return "\n".join([*text_lines, *separator, "[audio]", *added]) + "\n"
    if not re.fullmatch(r"\s*\[\s*audio\s*\]\s*(#.*)?", text_lines[header - 1]):
        raise FirstBootError(
            f"{CONFIG_SOURCE} writes [audio] in a form the devices cannot be added to (line {header}): write it as "
            "an [audio] table, or set input_device and output_device in it yourself",
            where=f"{CONFIG_SOURCE}:{header}",
        )
    return "\n".join([*text_lines[:header], *added, *text_lines[header:]]) + "\n"
