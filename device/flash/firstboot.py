"""What a flashed Raspberry Pi runs at its first boot: the files `spine flash` writes to the boot (FAT) partition.

Two mechanisms, as current Raspberry Pi OS images have them (`detect_mechanism` tells which an image uses):

* CLOUD_INIT (Trixie images from late 2025): cloud-init's NoCloud files at the FAT's root. `user-data` names the
  host, renames the image's first user (keeping its groups and sudo), gives it the SSH keys and runs the Spine
  part; `network-config` (netplan v2) joins the Wi-Fi with its regulatory domain; `meta-data` gives the instance
  an id of its own.
* FIRSTRUN (Bookworm images): `firstrun.sh`, run once by `systemd.run=` in cmdline.txt, does the same with
  plain commands, writes the Wi-Fi as a NetworkManager connection and removes its `systemd.run=` again.

Either way the Spine part is the packaged script `firstboot.sh` (on the FAT as `spine-firstboot.sh`): it moves
itself and the Spine config into /var/lib/spine-firstboot, and a unit it installs writes /etc/spine/spine.toml
and runs `scripts/install --bundle` on the bundle `spine flash` put in the root filesystem; docs/flash-firstboot.md.

Secrets (the Wi-Fi key, the password hash) are in files the first boot moves into root-only places and then
overwrites and deletes on the FAT. The Wi-Fi passphrase itself is never written: the 256-bit PSK WPA2 derives
from it and the SSID is. Everything here is pure: settings in, file contents out.
"""

from __future__ import annotations

import enum
import hashlib
import json
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from importlib import resources

from device.flash.firstboot_checks import (
    FirstBootError,
    checked_bundle_path,
    checked_country,
    checked_device,
    checked_hostname,
    checked_passphrase,
    checked_password_hash,
    checked_ssh_key,
    checked_ssid,
    checked_user,
    spine_config_text,
)

__all__ = [
    "BOOT_MOUNT",
    "ROOTFS_BUNDLE_PATH",
    "FirstBootError",
    "FirstBootMechanism",
    "FirstBootSettings",
    "WifiSettings",
    "detect_mechanism",
    "first_boot_files",
]

ROOTFS_BUNDLE_PATH = "/var/lib/spine-firstboot/spine-bundle.tar"
"""Where `spine flash` writes the offline bundle in the root filesystem (ext4)."""

BOOT_MOUNT = "/boot/firmware"
"""Where Raspberry Pi OS (Bookworm and later) mounts the FAT partition; Spine needs Debian 12 or later."""

FIRSTRUN_SCRIPT = "firstrun.sh"
SPINE_SCRIPT = "spine-firstboot.sh"
SPINE_CONFIG = "spine-firstboot.toml"
WIFI_SECRET = "spine-wifi.nmconnection"
PASSWORD_SECRET = "spine-password"
CLOUD_INIT_FILES = ("user-data", "meta-data", "network-config")

SYSTEMD_RUN = (
    f"systemd.run={BOOT_MOUNT}/{FIRSTRUN_SCRIPT}",
    "systemd.run_success_action=reboot",
    "systemd.unit=kernel-command-line.target",
)
"""What FIRSTRUN appends to cmdline.txt, and firstrun.sh removes: run the script once, then reboot."""
REGDOM_PARAMETER = "cfg80211.ieee80211_regdom="
"""The kernel's Wi-Fi regulatory domain at boot (kept: it is the country the Pi is in)."""


class FirstBootMechanism(enum.Enum):
    CLOUD_INIT = "cloud-init"
    """The boot partition has user-data / meta-data / network-config (Raspberry Pi OS Trixie, late 2025 on)."""
    FIRSTRUN = "firstrun"
    """Bookworm images: firstrun.sh run once via systemd.run= in cmdline.txt."""


@dataclass(frozen=True)
class WifiSettings:
    """The Wi-Fi network the Pi joins (WPA2-Personal). Checked when made; FirstBootError says how to fix."""

    country: str
    """ISO 3166-1 alpha-2 code of the country the Pi is in (its regulatory domain); upper-cased."""
    ssid: str
    """The network's name: 1 to 32 bytes of UTF-8."""
    passphrase: str = field(repr=False)
    """8 to 63 printable ASCII characters, or the 64 hex digits of the PSK."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "country", checked_country(self.country))
        checked_ssid(self.ssid)
        object.__setattr__(self, "passphrase", checked_passphrase(self.passphrase))

    @property
    def psk_hex(self) -> str:
        """The 256-bit key WPA2-Personal derives from the passphrase and SSID (IEEE 802.11i: PBKDF2-SHA1, 4096
        rounds), as `wpa_passphrase` prints it. Written instead of the passphrase, which the user may use
        elsewhere; it still joins this network, so it is a secret all the same."""
        if len(self.passphrase) == 64:
            return self.passphrase
        key = hashlib.pbkdf2_hmac("sha1", self.passphrase.encode("ascii"), self.ssid.encode("utf-8"), 4096, 32)
        return key.hex()


@dataclass(frozen=True)
class FirstBootSettings:
    """Everything the first boot sets up. Checked when made; FirstBootError says what is wrong and how to fix."""

    hostname: str = "spine"
    """RFC 1123 label; the Pi answers as <hostname>.local."""
    user: str = "pi"
    """The login user (Raspberry Pi OS's first user, renamed to this; created where there is none), with sudo."""
    password_hash: str | None = field(default=None, repr=False)
    """crypt(3) hash ($6$, $5$ or $y$, e.g. from `openssl passwd -6`), or None: password login locked."""
    ssh_public_keys: tuple[str, ...] = ()
    """OpenSSH public key lines; any key enables sshd with key-only logins."""
    wifi: WifiSettings | None = None
    spine_config_toml: str | None = None
    """The text of a Spine config file, checked as `spine config --check` does."""
    input_device: str | None = None
    """Written into the Spine config's [audio] when given."""
    output_device: str | None = None
    bundle_path_on_device: str = ROOTFS_BUNDLE_PATH
    """Where the offline bundle is in the root filesystem; the first boot deletes it once installed."""
    spine_config: str | None = field(init=False, default=None, repr=False)
    """/etc/spine/spine.toml as the first boot writes it (the config with the devices), or None: the installer's
    defaults."""

    def __post_init__(self) -> None:
        checked_hostname(self.hostname)
        checked_user(self.user)
        if self.password_hash is not None:
            checked_password_hash(self.password_hash)
        keys = tuple(checked_ssh_key(key) for key in self.ssh_public_keys)
        object.__setattr__(self, "ssh_public_keys", keys)
        for device, which in ((self.input_device, "input"), (self.output_device, "output")):
            if device is not None:
                checked_device(device, which)
        checked_bundle_path(self.bundle_path_on_device)
        config = spine_config_text(self.spine_config_toml, self.input_device, self.output_device)
        object.__setattr__(self, "spine_config", config)


def detect_mechanism(boot_file_names: Collection[str], cmdline_txt: str) -> FirstBootMechanism:
    """Which first-boot mechanism the image uses, from the names of the files at its FAT partition's root and
    its cmdline.txt. FAT names compare without case (a tool may list them upper-cased)."""
    names = {name.lower() for name in boot_file_names}
    if names & set(CLOUD_INIT_FILES) or "ds=nocloud" in cmdline_txt:
        return FirstBootMechanism.CLOUD_INIT
    if "cmdline.txt" in names and "root=" in cmdline_txt:
        return FirstBootMechanism.FIRSTRUN
    raise FirstBootError(
        "the image's boot partition is not Raspberry Pi OS's: no cloud-init files (user-data, meta-data, "
        "network-config) and no cmdline.txt naming a root= partition; use an official Raspberry Pi OS Lite 64-bit "
        "image (Bookworm or later)"
    )


def first_boot_files(settings: FirstBootSettings, mechanism: FirstBootMechanism, cmdline_txt: str) -> dict[str, bytes]:
    """The files to write at the FAT partition's root (create or replace): name -> content. cmdline.txt is in it
    when it changes (FIRSTRUN: the systemd.run= parameters and the Wi-Fi country); CLOUD_INIT leaves it alone."""
    files: dict[str, str] = {SPINE_SCRIPT: spine_script()}
    if settings.spine_config is not None:
        files[SPINE_CONFIG] = settings.spine_config
    if settings.password_hash is not None:
        # chpasswd -e's input: the hash is applied to the user whatever mechanism made it.
        files[PASSWORD_SECRET] = f"{settings.user}:{settings.password_hash}\n"
    if mechanism is FirstBootMechanism.FIRSTRUN:
        files[FIRSTRUN_SCRIPT] = firstrun_script(settings)
        if settings.wifi is not None:
            files[WIFI_SECRET] = networkmanager_wifi(settings.wifi)
        files["cmdline.txt"] = firstrun_cmdline(cmdline_txt, settings.wifi)
    else:
        files["user-data"] = cloud_init_user_data(settings)
        if settings.wifi is not None:
            files["network-config"] = cloud_init_network_config(settings.wifi)
        files["meta-data"] = cloud_init_meta_data(settings, files)
    return {name: text.encode("utf-8") for name, text in files.items()}


def spine_script() -> str:
    """The packaged first-boot script (device/flash/firstboot.sh)."""
    return resources.files("device.flash").joinpath("firstboot.sh").read_text(encoding="utf-8")


# --- FIRSTRUN -----------------------------------------------------------------------------------------------


def firstrun_cmdline(cmdline_txt: str, wifi: WifiSettings | None) -> str:
    """cmdline.txt with the systemd.run= parameters at the end (any earlier ones replaced) and, with Wi-Fi, the
    regulatory domain. The firmware reads the first line only; the others are kept as they are."""
    first, _, rest = cmdline_txt.partition("\n")
    words = first.split()
    if not any(word.startswith("root=") for word in words):
        raise FirstBootError("cmdline.txt names no root= partition: this is not a Raspberry Pi OS boot partition")
    words = [word for word in words if not word.startswith(("systemd.run", "systemd.unit="))]
    if wifi is not None:
        words = [word for word in words if not word.startswith(REGDOM_PARAMETER)]
        words.append(REGDOM_PARAMETER + wifi.country)
    return " ".join([*words, *SYSTEMD_RUN]) + "\n" + rest


def restore_cmdline_sed() -> str:
    """The sed program firstrun.sh runs on cmdline.txt: removes exactly what `firstrun_cmdline` appended."""
    return ";".join(f"s# {_sed_literal(word)}##" for word in SYSTEMD_RUN)


def _sed_literal(text: str) -> str:
    return "".join(f"\\{char}" if char in ".[]*^$\\#" else char for char in text)


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def firstrun_script(settings: FirstBootSettings) -> str:
    """firstrun.sh: the first boot of a Bookworm image, run by systemd before the normal boot (see the module).

    It always ends by wiping the secrets from the FAT, restoring cmdline.txt and deleting itself, also when a
    step failed (logged), so it runs once; a power cut before that runs it again, and every step may run twice.
    """
    keys = "\n".join(settings.ssh_public_keys)
    country = settings.wifi.country if settings.wifi is not None else ""
    return FIRSTRUN_TEMPLATE.format(
        boot=BOOT_MOUNT,
        firstrun=FIRSTRUN_SCRIPT,
        hostname=_sh_quote(settings.hostname),
        user=_sh_quote(settings.user),
        keys=_sh_quote(keys),
        country=_sh_quote(country),
        wifi_secret=WIFI_SECRET,
        password_secret=PASSWORD_SECRET,
        spine_script=SPINE_SCRIPT,
        bundle=_sh_quote(settings.bundle_path_on_device),
        restore_sed=_sh_quote(restore_cmdline_sed()),
    )


FIRSTRUN_TEMPLATE = """\
#!/bin/sh
# Written by `spine flash`: the first boot of this Raspberry Pi (Raspberry Pi OS Bookworm). systemd runs it once,
# before the normal boot, because cmdline.txt says systemd.run={boot}/{firstrun}; it then reboots.
# It sets the host name, the user, SSH keys and the Wi-Fi, and hands Spine's part to {spine_script}, which
# installs Spine from the offline bundle at the next boot. Log: /var/log/spine-firstboot.log. docs/flash-firstboot.md
set -u
BOOT={boot}
HOSTNAME_NEW={hostname}
USER_NEW={user}
SSH_KEYS={keys}
COUNTRY={country}
BUNDLE={bundle}
LOG=/var/log/spine-firstboot.log

log() {{ echo "firstrun: $*" | tee -a "$LOG"; }}
fail() {{ log "FAILED: $*"; logger -p user.err -t spine-firstboot "firstrun: FAILED: $*" 2> /dev/null; }}
warn() {{ log "warning: $*"; logger -p user.warning -t spine-firstboot "firstrun: warning: $*" 2> /dev/null; }}

wipe() {{  # overwrite, then delete (FAT on flash memory may keep old blocks: docs/flash-firstboot.md)
  for file in "$@"; do
    [ -e "$file" ] || continue
    shred -u "$file" 2> /dev/null && continue
    dd if=/dev/zero of="$file" bs=1k count=64 conv=notrunc 2> /dev/null
    rm -f "$file"
  done
  sync
}}

finish() {{  # always: no secret left on the FAT, and cmdline.txt as it was, so this runs once
  wipe "$BOOT/{wifi_secret}" "$BOOT/{password_secret}"
  sed -i {restore_sed} "$BOOT/cmdline.txt"
  rm -f "$BOOT/{firstrun}"
  sync
  log "done; rebooting"
}}

set_hostname() {{
  echo "$HOSTNAME_NEW" > /etc/hostname
  if grep -q '^127\\.0\\.1\\.1' /etc/hosts; then
    sed -i "s/^127\\.0\\.1\\.1.*/127.0.1.1\\t$HOSTNAME_NEW/" /etc/hosts
  else
    printf '127.0.1.1\\t%s\\n' "$HOSTNAME_NEW" >> /etc/hosts
  fi
  hostname "$HOSTNAME_NEW" 2> /dev/null || true
  log "host name: $HOSTNAME_NEW"
}}

set_user() {{
  first=$(getent passwd 1000 | cut -d: -f1)
  if [ -x /usr/lib/userconf-pi/userconf ]; then
    # Raspberry Pi OS's own: renames the first user (with its groups and sudo rule), ends the rename wizard.
    /usr/lib/userconf-pi/userconf "$USER_NEW" "" || fail "userconf $USER_NEW"
  elif getent passwd "$USER_NEW" > /dev/null; then
    :
  elif [ -n "$first" ]; then
    usermod -l "$USER_NEW" -m -d "/home/$USER_NEW" "$first" && groupmod -n "$USER_NEW" "$first" \\
      || fail "renaming $first"
  else
    groups=""
    for group in sudo adm audio video plugdev users netdev gpio i2c spi input render; do
      getent group "$group" > /dev/null && groups="$groups${{groups:+,}}$group"
    done
    useradd -m -s /bin/bash ${{groups:+-G "$groups"}} "$USER_NEW" || fail "useradd $USER_NEW"
  fi
  if [ -f "$BOOT/{password_secret}" ]; then
    chpasswd -e < "$BOOT/{password_secret}" && log "user $USER_NEW: password set" || fail "setting the password"
  else
    usermod -L "$USER_NEW" 2> /dev/null
    # No password to give sudo: the key holder administers the Pi, as Raspberry Pi OS's first user does.
    if [ -d /etc/sudoers.d ] && ! [ -f /usr/lib/userconf-pi/userconf ]; then
      echo "$USER_NEW ALL=(ALL) NOPASSWD: ALL" > "/etc/sudoers.d/010_spine-$USER_NEW-nopasswd"
      chmod 0440 "/etc/sudoers.d/010_spine-$USER_NEW-nopasswd"
    fi
    log "user $USER_NEW: password login locked"
  fi
}}

set_ssh_keys() {{
  [ -n "$SSH_KEYS" ] || return 0
  home=$(getent passwd "$USER_NEW" | cut -d: -f6)
  install -d -m 0700 -o "$USER_NEW" -g "$USER_NEW" "$home/.ssh" || {{ fail "no home for $USER_NEW"; return; }}
  printf '%s\\n' "$SSH_KEYS" > "$home/.ssh/authorized_keys"
  chown "$USER_NEW:$USER_NEW" "$home/.ssh/authorized_keys"
  chmod 0600 "$home/.ssh/authorized_keys"
  if [ -d /etc/ssh/sshd_config.d ]; then
    echo "PasswordAuthentication no" > /etc/ssh/sshd_config.d/spine-keys-only.conf
  fi
  systemctl enable ssh 2> /dev/null || fail "enabling ssh (is openssh-server installed?)"
  log "ssh: $(printf '%s\\n' "$SSH_KEYS" | wc -l) key(s) for $USER_NEW, password logins off"
}}

set_wifi() {{
  [ -f "$BOOT/{wifi_secret}" ] || return 0
  install -d -m 0700 /etc/NetworkManager/system-connections
  install -m 0600 "$BOOT/{wifi_secret}" /etc/NetworkManager/system-connections/spine-wifi.nmconnection \\
    || {{ fail "writing the Wi-Fi connection"; return; }}
  command -v NetworkManager > /dev/null || warn "no NetworkManager here: the Wi-Fi connection is written but unused"
  # Raspberry Pi OS keeps Wi-Fi blocked until a country is set; the country is on the kernel command line now.
  command -v rfkill > /dev/null && rfkill unblock wifi
  for state in /var/lib/systemd/rfkill/*:wlan; do
    [ -e "$state" ] && echo 0 > "$state"
  done
  log "Wi-Fi: connection written (country $COUNTRY)"
}}

main() {{
  install -d -m 0755 "$(dirname "$LOG")"
  log "started $(date -u +%FT%TZ)"
  trap finish EXIT
  set_hostname
  set_user
  set_ssh_keys
  set_wifi
  sh "$BOOT/{spine_script}" stage "$BOOT" "$BUNDLE" || fail "staging Spine's first boot (above)"
  exit 0
}}

main "$@"; exit 0
"""


def networkmanager_wifi(wifi: WifiSettings) -> str:
    """A NetworkManager keyfile for the network (root-only in /etc/NetworkManager/system-connections)."""
    # An SSID of digits and ";" alone would be read as a byte list; write it as one.
    ssid = (
        ";".join(str(byte) for byte in wifi.ssid.encode()) + ";"
        if set(wifi.ssid) <= set("0123456789;")
        else _keyfile_escape(wifi.ssid)
    )
    connection_uuid = uuid.uuid5(uuid.NAMESPACE_URL, f"spine-wifi:{wifi.ssid}")
    return (
        "# Written by `spine flash`; moved off the boot partition at first boot.\n"
        f"[connection]\nid=spine-wifi\nuuid={connection_uuid}\ntype=wifi\nautoconnect=true\n\n"
        f"[wifi]\nmode=infrastructure\nssid={ssid}\n\n"
        f"[wifi-security]\nkey-mgmt=wpa-psk\npsk={wifi.psk_hex}\n\n"
        "[ipv4]\nmethod=auto\n\n[ipv6]\naddr-gen-mode=default\nmethod=auto\n"
    )


def _keyfile_escape(text: str) -> str:
    """A GLib key file string value: backslashes doubled, a leading space kept (control characters were refused)."""
    escaped = text.replace("\\", "\\\\")
    return "\\s" + escaped[1:] if escaped.startswith(" ") else escaped


# --- CLOUD_INIT ---------------------------------------------------------------------------------------------


def _yaml(text: str) -> str:
    """A YAML double-quoted scalar (a JSON string is one): no value is ever read as a number or boolean."""
    return json.dumps(text, ensure_ascii=False)


def _flow(*words: str) -> str:
    return "[" + ", ".join(_yaml(word) for word in words) + "]"


def cloud_init_user_data(settings: FirstBootSettings) -> str:
    """user-data: the host name, the first user, SSH, and the Spine part in `runcmd`.

    `user:` (not `users:`) renames and extends the image's default user, which keeps its groups and its sudo
    rule; the password hash is not in this file, which stays on the FAT, but in a secret file `runcmd` applies
    and wipes.
    """
    boot, script = BOOT_MOUNT, f"{BOOT_MOUNT}/{SPINE_SCRIPT}"
    lines = [
        "#cloud-config",
        "# Written by `spine flash` (docs/flash-firstboot.md). No secrets here: this file stays on the boot partition.",
        f"hostname: {_yaml(settings.hostname)}",
        "manage_etc_hosts: true",
        "user:",
        f"  name: {_yaml(settings.user)}",
        "  shell: /bin/bash",
        "  lock_passwd: true",
    ]
    if settings.ssh_public_keys:
        lines.append("  ssh_authorized_keys:")
        lines += [f"    - {_yaml(key)}" for key in settings.ssh_public_keys]
        lines.append("ssh_pwauth: false")
    lines.append("runcmd:")
    if settings.ssh_public_keys:
        # cloud-init writes the keys but does not enable sshd, which Raspberry Pi OS ships disabled.
        lines.append(f"  - {_flow('systemctl', 'enable', '--now', 'ssh')}")
    if settings.password_hash is not None:
        lines.append(f"  - {_flow('sh', '-c', f'chpasswd -e < {boot}/{PASSWORD_SECRET}')}")
        lines.append(f"  - {_flow('sh', script, 'wipe', f'{boot}/{PASSWORD_SECRET}')}")
    if settings.wifi is not None:
        # Applied by now (cloud-init's network stage is long over): the key goes, and later boots leave the
        # network alone rather than read a network-config without it.
        lines.append(f"  - {_flow('sh', script, 'wipe', f'{boot}/network-config')}")
        retired = f"printf 'network:\\n  config: disabled\\n' > {boot}/network-config"
        lines.append(f"  - {_flow('sh', '-c', retired)}")
    lines.append(f"  - {_flow('sh', script, 'stage', boot, settings.bundle_path_on_device, '--start')}")
    return "\n".join(lines) + "\n"


def cloud_init_network_config(wifi: WifiSettings) -> str:
    """network-config (netplan v2): Ethernet by DHCP as before, and the Wi-Fi with its regulatory domain."""
    return (
        "# Written by `spine flash`. Holds the Wi-Fi key: replaced by `config: disabled` once applied at first boot.\n"
        "network:\n"
        "  version: 2\n"
        "  ethernets:\n"
        "    eth0:\n"
        "      dhcp4: true\n"
        "      optional: true\n"
        "  wifis:\n"
        "    wlan0:\n"
        "      dhcp4: true\n"
        "      optional: true\n"
        f"      regulatory-domain: {_yaml(wifi.country)}\n"
        "      access-points:\n"
        f"        {_yaml(wifi.ssid)}:\n"
        f"          password: {_yaml(wifi.psk_hex)}\n"
    )


def cloud_init_meta_data(settings: FirstBootSettings, files: dict[str, str]) -> str:
    """meta-data: an instance id of these settings' own (a new id is what makes cloud-init run its per-instance
    modules), and the host name."""
    digest = hashlib.sha256()
    for name in ("user-data", "network-config"):
        digest.update(files.get(name, "").encode())
    return f"instance-id: {_yaml('spine-' + digest.hexdigest()[:16])}\nlocal-hostname: {_yaml(settings.hostname)}\n"
