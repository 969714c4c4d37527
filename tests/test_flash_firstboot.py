"""The first-boot files `spine flash` writes (device/flash/firstboot.py) and the script that runs on the Pi
(device/flash/firstboot.sh), without a Pi.

Detection runs on the boot partitions' file lists and cmdline.txt of both image generations; the rendered files
are parsed back (YAML with PyYAML's safe loader, from this Python or the system's; NetworkManager's keyfile as an
INI file; shell with `sh -n` and by running its assignments); the cmdline.txt restore is the sed program
firstrun.sh runs, run here with sed; every check on the settings is shown refusing a bad value with a message that
says what to do. firstboot.sh runs for real with `sh` (dash, as on Raspberry Pi OS) in a temporary directory
standing in for / (SPINE_FIRSTBOOT_ROOT), with a stub bundle whose installer succeeds or fails on demand.
"""

from __future__ import annotations

import base64
import configparser
import importlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from device.flash.firstboot import (
    BOOT_MOUNT,
    ROOTFS_BUNDLE_PATH,
    SYSTEMD_RUN,
    FirstBootError,
    FirstBootMechanism,
    FirstBootSettings,
    WifiSettings,
    detect_mechanism,
    first_boot_files,
    firstrun_cmdline,
    networkmanager_wifi,
    restore_cmdline_sed,
    spine_script,
)
from device.flash.firstboot_checks import ISO_COUNTRIES

# The FAT partition's root of Raspberry Pi OS Lite 64-bit images (2024-11-19 Bookworm, 2025-12 Trixie), as mdir
# lists it (names only; overlays/ is a directory).
BOOKWORM_FILES = [
    "bcm2710-rpi-3-b.dtb",
    "bcm2710-rpi-3-b-plus.dtb",
    "bcm2710-rpi-zero-2-w.dtb",
    "bcm2711-rpi-4-b.dtb",
    "bcm2711-rpi-400.dtb",
    "bcm2711-rpi-cm4.dtb",
    "bcm2712-rpi-5-b.dtb",
    "bcm2712-rpi-cm5-cm5io.dtb",
    "bootcode.bin",
    "cmdline.txt",
    "config.txt",
    "fixup.dat",
    "fixup4.dat",
    "fixup_cd.dat",
    "initramfs8",
    "initramfs_2712",
    "issue.txt",
    "kernel8.img",
    "kernel_2712.img",
    "LICENCE.broadcom",
    "overlays",
    "start.elf",
    "start4.elf",
    "start_cd.elf",
]
TRIXIE_FILES = [*BOOKWORM_FILES, "meta-data", "network-config", "user-data"]
BOOKWORM_CMDLINE = (
    "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait "
    "quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n"
)
TRIXIE_CMDLINE = (
    "console=serial0,115200 console=tty1 root=PARTUUID=7c5a31a3-02 rootfstype=ext4 fsck.repair=yes rootwait\n"
)
# openssl passwd -6 -salt spinetestsalt 'correct horse'
PASSWORD_HASH = (
    "$6$spinetestsalt$OjoPIR.qFTLAw13.HZNoIDUn1Faf3HOl/0AkeJFBQNOxYRw4RY7DbwyndPDTrCChFnCZk/c31QB/l/RZal14x0"
)
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINwk+ibqVJN5QC7YdN66PkjN5sfnvcuoEiEyIpgDCsz7 test@spine"
PASSPHRASE = "correct horse battery"


def key_line(key_type: str, comment: str = "me@laptop", blob_type: str | None = None) -> str:
    """An OpenSSH public key line: the base64 blob starts with the key type as a length-prefixed string."""
    name = (blob_type or key_type).encode()
    blob = struct.pack(">I", len(name)) + name + struct.pack(">I", 32) + bytes(range(32))
    return f"{key_type} {base64.b64encode(blob).decode()} {comment}"


def settings(**changes: Any) -> FirstBootSettings:
    base: dict[str, Any] = {
        "hostname": "kitchen-pi",
        "user": "alice",
        "password_hash": PASSWORD_HASH,
        "ssh_public_keys": (SSH_KEY,),
        "wifi": WifiSettings(country="gb", ssid="Home Net", passphrase=PASSPHRASE),
        "spine_config_toml": "[wake]\nthreshold = 0.6\n",
        "input_device": "USB",
        "output_device": "USB",
    }
    return FirstBootSettings(**(base | changes))


def texts(files: dict[str, bytes]) -> dict[str, str]:
    return {name: content.decode("utf-8") for name, content in files.items()}


def load_yaml(text: str) -> Any:
    """YAML parsed by PyYAML's safe loader: this interpreter's if it has PyYAML, else the system Python's."""
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        system_python = shutil.which("python3", path="/usr/bin")
        probe = subprocess.run([system_python or "false", "-c", "import yaml"], capture_output=True)
        if probe.returncode != 0:
            pytest.skip("no PyYAML here or in /usr/bin/python3 (apt install python3-yaml) to parse the YAML")
        script = "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))"
        parsed = subprocess.run([str(system_python), "-c", script], input=text, capture_output=True, text=True)
        assert parsed.returncode == 0, parsed.stderr
        return json.loads(parsed.stdout)
    return yaml.safe_load(text)


# --- detect_mechanism -----------------------------------------------------------------------------------------


def test_a_bookworm_image_uses_firstrun() -> None:
    assert detect_mechanism(BOOKWORM_FILES, BOOKWORM_CMDLINE) is FirstBootMechanism.FIRSTRUN


def test_a_trixie_image_with_cloud_init_files_uses_cloud_init() -> None:
    assert detect_mechanism(TRIXIE_FILES, TRIXIE_CMDLINE) is FirstBootMechanism.CLOUD_INIT


def test_fat_names_listed_upper_case_are_still_found() -> None:
    upper = [name.upper() for name in TRIXIE_FILES]
    assert detect_mechanism(upper, TRIXIE_CMDLINE) is FirstBootMechanism.CLOUD_INIT
    assert detect_mechanism([name.upper() for name in BOOKWORM_FILES], BOOKWORM_CMDLINE) is FirstBootMechanism.FIRSTRUN


def test_a_nocloud_datasource_on_the_command_line_means_cloud_init() -> None:
    cmdline = TRIXIE_CMDLINE.rstrip() + " ds=nocloud;i=rpi-imager-1760000000000\n"
    assert detect_mechanism(BOOKWORM_FILES, cmdline) is FirstBootMechanism.CLOUD_INIT


def test_a_boot_partition_that_is_not_raspberry_pi_os_is_refused() -> None:
    with pytest.raises(FirstBootError, match="official Raspberry Pi OS Lite"):
        detect_mechanism(["EFI", "startup.nsh"], "")
    with pytest.raises(FirstBootError, match=re.escape("no cmdline.txt naming a root=")):
        detect_mechanism(BOOKWORM_FILES, "console=tty1 quiet\n")


# --- FIRSTRUN ---------------------------------------------------------------------------------------------------


def test_firstrun_files() -> None:
    files = texts(first_boot_files(settings(), FirstBootMechanism.FIRSTRUN, BOOKWORM_CMDLINE))
    assert set(files) == {
        "firstrun.sh",
        "spine-firstboot.sh",
        "spine-firstboot.toml",
        "spine-wifi.nmconnection",
        "spine-password",
        "cmdline.txt",
    }
    assert files["spine-firstboot.sh"] == spine_script()
    assert files["spine-password"] == f"alice:{PASSWORD_HASH}\n"
    assert (
        files["spine-firstboot.toml"]
        == '[wake]\nthreshold = 0.6\n\n[audio]\ninput_device = "USB"\noutput_device = "USB"\n'
    )


def test_the_firstrun_cmdline_runs_the_script_once_and_reboots() -> None:
    cmdline = firstrun_cmdline(BOOKWORM_CMDLINE, settings().wifi)
    assert cmdline.endswith(
        " cfg80211.ieee80211_regdom=GB systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot"
        " systemd.unit=kernel-command-line.target\n"
    )
    assert cmdline.startswith(BOOKWORM_CMDLINE.rstrip("\n") + " ")
    assert cmdline.count("\n") == 1


def test_customising_twice_gives_the_same_cmdline() -> None:
    once = firstrun_cmdline(BOOKWORM_CMDLINE, settings().wifi)
    other_country = WifiSettings(country="DE", ssid="x", passphrase=PASSPHRASE)
    assert firstrun_cmdline(firstrun_cmdline(BOOKWORM_CMDLINE, other_country), settings().wifi) == once


def test_lines_after_the_first_are_kept() -> None:
    cmdline = firstrun_cmdline(BOOKWORM_CMDLINE + "# a note the firmware ignores\n", None)
    assert cmdline.splitlines()[1:] == ["# a note the firmware ignores"]
    assert "cfg80211" not in cmdline


@pytest.mark.parametrize("wifi", [None, WifiSettings(country="US", ssid="a", passphrase=PASSPHRASE)])
def test_firstrun_restores_the_cmdline_but_keeps_the_country(wifi: WifiSettings | None, tmp_path: Path) -> None:
    """The sed program firstrun.sh runs, on the cmdline.txt we wrote: the original again, plus the country."""
    script = texts(first_boot_files(settings(wifi=wifi), FirstBootMechanism.FIRSTRUN, BOOKWORM_CMDLINE))["firstrun.sh"]
    program = restore_cmdline_sed()
    assert f"sed -i '{program}' \"$BOOT/cmdline.txt\"" in script
    cmdline = tmp_path / "cmdline.txt"
    cmdline.write_text(firstrun_cmdline(BOOKWORM_CMDLINE, wifi))
    subprocess.run(["sed", "-i", program, str(cmdline)], check=True)
    country = f" cfg80211.ieee80211_regdom={wifi.country}" if wifi else ""
    assert cmdline.read_text() == BOOKWORM_CMDLINE.rstrip("\n") + country + "\n"
    for word in SYSTEMD_RUN:
        assert word not in cmdline.read_text()


def test_firstrun_script_is_valid_shell_and_quotes_what_it_is_given(tmp_path: Path) -> None:
    quoted_key = key_line("ssh-ed25519", comment="o'brien@laptop $(reboot)")
    script = texts(
        first_boot_files(settings(ssh_public_keys=(SSH_KEY, quoted_key)), FirstBootMechanism.FIRSTRUN, BOOKWORM_CMDLINE)
    )["firstrun.sh"]
    path = tmp_path / "firstrun.sh"
    path.write_text(script)
    assert subprocess.run(["sh", "-n", str(path)], capture_output=True).returncode == 0
    # Its settings, as sh reads them: everything up to the first function.
    assignments = script.split("\nlog()")[0]
    shown = subprocess.run(
        [
            "sh",
            "-c",
            assignments + '\nprintf "%s|%s|%s|%s|%s" "$HOSTNAME_NEW" "$USER_NEW" "$COUNTRY" "$BUNDLE" "$SSH_KEYS"',
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert shown == f"kitchen-pi|alice|GB|{ROOTFS_BUNDLE_PATH}|{SSH_KEY}\n{quoted_key}"


def test_no_secret_is_in_a_file_that_stays_on_the_boot_partition() -> None:
    wifi = settings().wifi
    assert wifi is not None
    for mechanism in FirstBootMechanism:
        files = texts(first_boot_files(settings(), mechanism, BOOKWORM_CMDLINE))
        for name, text in files.items():
            assert PASSPHRASE not in text, name  # only the PSK derived from it is ever written
            if name not in ("spine-password", "spine-wifi.nmconnection", "network-config"):
                assert PASSWORD_HASH not in text and wifi.psk_hex not in text, name


def test_the_networkmanager_connection() -> None:
    wifi = WifiSettings(country="GB", ssid=" Café \\ net", passphrase=PASSPHRASE)
    keyfile = configparser.ConfigParser(interpolation=None)
    keyfile.read_string(networkmanager_wifi(wifi))
    assert keyfile["connection"]["type"] == "wifi"
    assert keyfile["wifi"]["ssid"] == "\\sCafé \\\\ net"  # GLib key file escapes: leading space, backslash
    assert keyfile["wifi-security"]["key-mgmt"] == "wpa-psk"
    assert keyfile["wifi-security"]["psk"] == wifi.psk_hex
    digits = configparser.ConfigParser(interpolation=None)
    digits.read_string(networkmanager_wifi(WifiSettings(country="GB", ssid="12;3", passphrase=PASSPHRASE)))
    assert digits["wifi"]["ssid"] == "49;50;59;51;"  # NetworkManager would read "12;3" as bytes 12 and 3


def test_the_psk_is_wpa2s_derivation() -> None:
    # IEEE 802.11i-2004, H.4.2: passphrase "password", SSID "IEEE".
    assert (
        WifiSettings(country="GB", ssid="IEEE", passphrase="password").psk_hex
        == "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"
    )
    given = "AB" * 32
    assert WifiSettings(country="GB", ssid="x", passphrase=given).psk_hex == given.lower()


# --- CLOUD_INIT -------------------------------------------------------------------------------------------------


def test_cloud_init_files_and_the_cmdline_left_alone() -> None:
    files = texts(first_boot_files(settings(), FirstBootMechanism.CLOUD_INIT, TRIXIE_CMDLINE))
    assert set(files) == {
        "user-data",
        "meta-data",
        "network-config",
        "spine-firstboot.sh",
        "spine-firstboot.toml",
        "spine-password",
    }
    assert files["user-data"].startswith("#cloud-config\n")


def test_user_data() -> None:
    boot = BOOT_MOUNT
    data = load_yaml(texts(first_boot_files(settings(), FirstBootMechanism.CLOUD_INIT, TRIXIE_CMDLINE))["user-data"])
    assert data["hostname"] == "kitchen-pi"
    assert data["user"] == {
        "name": "alice",
        "shell": "/bin/bash",
        "lock_passwd": True,
        "ssh_authorized_keys": [SSH_KEY],
    }
    assert data["ssh_pwauth"] is False
    assert data["runcmd"] == [
        ["systemctl", "enable", "--now", "ssh"],
        ["sh", "-c", f"chpasswd -e < {boot}/spine-password"],
        ["sh", f"{boot}/spine-firstboot.sh", "wipe", f"{boot}/spine-password"],
        ["sh", f"{boot}/spine-firstboot.sh", "wipe", f"{boot}/network-config"],
        ["sh", "-c", f"printf 'network:\\n  config: disabled\\n' > {boot}/network-config"],
        ["sh", f"{boot}/spine-firstboot.sh", "stage", boot, ROOTFS_BUNDLE_PATH, "--start"],
    ]


def test_user_data_without_keys_password_or_wifi_only_stages_spine() -> None:
    bare = settings(password_hash=None, ssh_public_keys=(), wifi=None)
    files = texts(first_boot_files(bare, FirstBootMechanism.CLOUD_INIT, TRIXIE_CMDLINE))
    assert "network-config" not in files and "spine-password" not in files
    data = load_yaml(files["user-data"])
    assert "ssh_pwauth" not in data and "ssh_authorized_keys" not in data["user"]
    assert data["runcmd"] == [
        ["sh", f"{BOOT_MOUNT}/spine-firstboot.sh", "stage", BOOT_MOUNT, ROOTFS_BUNDLE_PATH, "--start"]
    ]


def test_values_yaml_would_read_as_numbers_or_booleans_stay_strings() -> None:
    odd = settings(hostname="1234", wifi=WifiSettings(country="NO", ssid="yes", passphrase=PASSPHRASE))
    files = texts(first_boot_files(odd, FirstBootMechanism.CLOUD_INIT, TRIXIE_CMDLINE))
    assert load_yaml(files["user-data"])["hostname"] == "1234"
    wlan = load_yaml(files["network-config"])["network"]["wifis"]["wlan0"]
    assert wlan["regulatory-domain"] == "NO"  # YAML 1.1 reads a bare NO as false
    assert list(wlan["access-points"]) == ["yes"]


def test_network_config() -> None:
    wifi = WifiSettings(country="de", ssid='Café "Wi-Fi" ☕', passphrase=PASSPHRASE)
    files = texts(first_boot_files(settings(wifi=wifi), FirstBootMechanism.CLOUD_INIT, TRIXIE_CMDLINE))
    network = load_yaml(files["network-config"])["network"]
    assert network["version"] == 2
    assert network["ethernets"]["eth0"]["dhcp4"] is True
    wlan = network["wifis"]["wlan0"]
    assert wlan["regulatory-domain"] == "DE"
    assert wlan["access-points"] == {'Café "Wi-Fi" ☕': {"password": wifi.psk_hex}}
    assert wlan["optional"] is True


def test_meta_data_names_an_instance_of_these_settings() -> None:
    def meta(**changes: Any) -> Any:
        files = texts(first_boot_files(settings(**changes), FirstBootMechanism.CLOUD_INIT, TRIXIE_CMDLINE))
        return load_yaml(files["meta-data"])

    first = meta()
    assert first == meta()  # pure: the same settings, the same files
    assert first["local-hostname"] == "kitchen-pi"
    assert first["instance-id"].startswith("spine-")
    assert meta(hostname="other")["instance-id"] != first["instance-id"]


# --- the Spine config -------------------------------------------------------------------------------------------


def test_devices_go_into_an_existing_audio_table() -> None:
    config = settings(spine_config_toml="[audio]  # the card\nperiod_ms = 20\n\n[wake]\nthreshold = 0.6\n")
    assert config.spine_config == (
        '[audio]  # the card\ninput_device = "USB"\noutput_device = "USB"\nperiod_ms = 20\n\n[wake]\nthreshold = 0.6\n'
    )


def test_devices_alone_make_a_config() -> None:
    only = settings(spine_config_toml=None, input_device='Mic "2"', output_device=None)
    assert only.spine_config == '[audio]\ninput_device = "Mic \\"2\\""\n'
    assert settings(spine_config_toml=None, input_device=None, output_device=None).spine_config is None


@pytest.mark.parametrize(
    ("config", "message", "where"),
    [
        ("[audio]\ninput_device = 1\n", "sets [audio] input_device already", "the Spine config:2"),
        ("audio = { period_ms = 20 }\n", "in a form the devices cannot be added to", "the Spine config:1"),
        ("[wake]\nthreshhold = 0.6\n", "threshhold", "the Spine config:2"),
        ("[wake\n", "TOML syntax error", "the Spine config:1"),
        ('[tts]\nvoice = "nobody"\n', "not a voice in the model manifest", "the Spine config:2"),
    ],
)
def test_a_config_that_would_not_load_is_refused_at_its_line(config: str, message: str, where: str) -> None:
    with pytest.raises(FirstBootError, match=re.escape(message)) as raised:
        settings(spine_config_toml=config)
    assert raised.value.where == where


def test_a_relation_between_settings_is_checked_as_spine_run_checks_it() -> None:
    with pytest.raises(FirstBootError) as raised:
        settings(spine_config_toml="[vad]\noff_threshold = 0.0\n", input_device=None, output_device=None)
    assert "off_threshold" in str(raised.value) and raised.value.where == "the Spine config:2"


# --- the checks -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"hostname": "-pi"}, "not starting or ending with a hyphen"),
        ({"hostname": "pi.local"}, "without dots"),
        ({"hostname": "a" * 64}, "1 to 63"),
        ({"hostname": ""}, "1 to 63"),
        ({"hostname": "localhost"}, "choose another"),
        ({"user": "Alice"}, "lower-case letter first"),
        ({"user": "1pi"}, "lower-case letter first"),
        ({"user": "a" * 33}, "32 characters at most"),
        ({"user": "root"}, "system account"),
        ({"user": "spine"}, "system account"),
        ({"password_hash": "hunter22"}, "plain password is never written"),
        ({"password_hash": "$6$salt$short"}, "openssl passwd -6"),
        ({"password_hash": "$1$abc$" + "a" * 22}, "not a complete"),
        ({"ssh_public_keys": ("ssh-dss AAAAB3NzaC1kc3M= old",)}, "not a key type"),
        ({"ssh_public_keys": ('from="10.0.0.1" ' + SSH_KEY,)}, "without authorized_keys options"),
        ({"ssh_public_keys": ("-----BEGIN OPENSSH PRIVATE KEY-----",)}, "private key"),
        ({"ssh_public_keys": ("ssh-ed25519",)}, "no base64 key"),
        ({"ssh_public_keys": ("ssh-ed25519 AAAA!!",)}, "no base64 key"),
        ({"ssh_public_keys": (SSH_KEY[:40],)}, "cut or damaged"),
        ({"ssh_public_keys": (key_line("ssh-rsa", blob_type="ssh-ed25519"),)}, "holds a 'ssh-ed25519' key"),
        ({"ssh_public_keys": (SSH_KEY + "\nssh-ed25519 AAAA",)}, "one line"),
        ({"input_device": "  "}, "spine devices"),
        ({"output_device": "USB\n"}, "control character"),
        ({"bundle_path_on_device": "bundle.tar"}, "absolute path"),
        ({"bundle_path_on_device": "/var/lib/my bundle.tar"}, "absolute path"),
        ({"bundle_path_on_device": "/var/../etc/x.tar"}, "absolute path"),
    ],
)
def test_a_bad_setting_is_refused_saying_how_to_fix_it(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(FirstBootError, match=re.escape(message)):
        settings(**changes)


@pytest.mark.parametrize(
    ("wifi", "message"),
    [
        ({"country": "UK"}, 'use "GB"'),
        ({"country": "XX"}, "ISO 3166-1"),
        ({"country": "GBR"}, "ISO 3166-1"),
        ({"ssid": ""}, "1 to 32"),
        ({"ssid": "é" * 17}, "is 34 bytes"),
        ({"ssid": "tab\there"}, "control character"),
        ({"passphrase": "short"}, "8 to 63"),
        ({"passphrase": "x" * 64}, "8 to 63"),
        ({"passphrase": "pässword123"}, "printable ASCII"),
    ],
)
def test_a_bad_wifi_setting_is_refused_saying_how_to_fix_it(wifi: dict[str, str], message: str) -> None:
    given = {"country": "GB", "ssid": "Home", "passphrase": PASSPHRASE} | wifi
    with pytest.raises(FirstBootError, match=re.escape(message)):
        WifiSettings(**given)


def test_good_settings_are_accepted_as_given() -> None:
    made = settings(
        hostname="Kitchen-Pi-2",
        user="pi_admin",
        password_hash="$y$j9T$Fy4nQ7VdIeYUUXx8jC9Qv.$" + "A" * 43,
        ssh_public_keys=tuple(
            key_line(kind) for kind in ("ssh-rsa", "ecdsa-sha2-nistp256", "sk-ssh-ed25519@openssh.com")
        ),
    )
    assert made.hostname == "Kitchen-Pi-2" and made.user == "pi_admin"
    assert WifiSettings(country=" fr ", ssid="x", passphrase=PASSPHRASE).country == "FR"


def test_the_country_list_is_iso_3166() -> None:
    tab = Path("/usr/share/zoneinfo/iso3166.tab")
    if not tab.exists():
        pytest.skip("no tzdata here to compare with (apt install tzdata)")
    codes = {line.split("\t")[0] for line in tab.read_text().splitlines() if line and not line.startswith("#")}
    assert codes == ISO_COUNTRIES


def test_secrets_are_not_in_the_repr() -> None:
    shown = repr(settings())
    assert PASSWORD_HASH not in shown and PASSPHRASE not in shown


# --- firstboot.sh, run by sh in a stand-in root -----------------------------------------------------------------


class Device:
    """A temporary directory standing in for the Pi's /, with /boot/firmware and a stub bundle."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "root"
        self.boot = self.root / "boot" / "firmware"
        self.boot.mkdir(parents=True)
        self.state = self.root / "var" / "lib" / "spine-firstboot"
        self.bundle = self.root / "var" / "lib" / "spine-firstboot" / "spine-bundle.tar"
        self.tools = tmp_path / "tools"
        self.tools.mkdir()
        # logger: records its arguments instead of writing to this machine's journal.
        logger = self.tools / "logger"
        logger.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/journal\n')
        logger.chmod(0o755)
        self.journal = tmp_path / "journal"
        self.log = self.root / "var" / "log" / "spine-firstboot.log"

    def flash(self, config: str | None = "[wake]\nthreshold = 0.6\n") -> None:
        (self.boot / "spine-firstboot.sh").write_text(spine_script())
        if config is not None:
            (self.boot / "spine-firstboot.toml").write_text(config)

    def make_bundle(self, tmp_path: Path, python_version: str | None = None) -> None:
        """A tar with spine-bundle/scripts/install that records how it ran (and what config it found), and
        exits with the status in $STUB_EXIT; its BUNDLE names this Python's version unless told another."""
        stub = tmp_path / "spine-bundle" / "scripts" / "install"
        stub.parent.mkdir(parents=True, exist_ok=True)
        version = python_version or "{}.{}".format(*sys.version_info[:2])
        (tmp_path / "spine-bundle" / "BUNDLE").write_text(
            f"spine_version=0.1.0\narch=x86_64\npython_version={version}\n"
        )
        stub.write_text(
            "#!/bin/sh\n"
            f'echo "install $*" >> {self.root}/install-calls\n'
            f"cat {self.root}/etc/spine/spine.toml > {self.root}/config-seen-by-install 2> /dev/null\n"
            'echo "install: [1/7] pretending"\n'
            "exit ${STUB_EXIT:-0}\n"
        )
        stub.chmod(0o755)
        self.bundle.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(self.bundle, "w") as tar:
            tar.add(tmp_path / "spine-bundle", arcname="spine-bundle")

    def script(self, *arguments: str, stub_exit: int = 0) -> subprocess.CompletedProcess[str]:
        script = self.state / "firstboot.sh"
        if not script.exists():
            script = self.boot / "spine-firstboot.sh"
        environment = {
            "PATH": f"{self.tools}:{os.environ['PATH']}",
            "SPINE_FIRSTBOOT_ROOT": str(self.root),
            "STUB_EXIT": str(stub_exit),
        }
        return subprocess.run(["sh", str(script), *arguments], capture_output=True, text=True, env=environment)

    def stage(self) -> subprocess.CompletedProcess[str]:
        return self.script("stage", str(self.boot), str(self.bundle))


@pytest.fixture
def device(tmp_path: Path) -> Device:
    made = Device(tmp_path)
    made.make_bundle(tmp_path)
    return made


def test_stage_moves_the_script_and_config_off_the_boot_partition_and_enables_the_unit(device: Device) -> None:
    device.flash()
    staged = device.stage()
    assert staged.returncode == 0, staged.stdout + staged.stderr
    assert sorted(path.name for path in device.boot.iterdir()) == []
    assert (device.state / "firstboot.sh").read_text() == spine_script()
    assert (device.state / "spine.toml").read_text() == "[wake]\nthreshold = 0.6\n"
    assert (device.state / "spine.toml").stat().st_mode & 0o777 == 0o600
    assert (device.state / "bundle-path").read_text() == f"{device.bundle}\n"
    units = device.root / "etc" / "systemd" / "system"
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.read_string((units / "spine-firstboot.service").read_text())
    assert unit["Service"]["ExecStart"] == "/bin/sh /var/lib/spine-firstboot/firstboot.sh run"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    wants = units / "multi-user.target.wants" / "spine-firstboot.service"
    assert os.readlink(wants) == "/etc/systemd/system/spine-firstboot.service"
    assert "spine-firstboot.service enabled" in device.log.read_text()


def test_stage_runs_again_after_a_power_cut(device: Device) -> None:
    device.flash()
    assert device.stage().returncode == 0
    again = device.stage()  # firstrun.sh ran again: the FAT copies are gone, the staged ones stay
    assert again.returncode == 0, again.stdout
    assert (device.state / "spine.toml").read_text() == "[wake]\nthreshold = 0.6\n"


def test_run_writes_the_config_before_installing_then_deletes_the_bundle(device: Device) -> None:
    device.flash()
    device.stage()
    ran = device.script("run")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (device.root / "config-seen-by-install").read_text() == "[wake]\nthreshold = 0.6\n"
    assert (device.root / "install-calls").read_text() == f"install --bundle {device.bundle}\n"
    assert not device.bundle.exists()
    assert (device.state / "done").exists()
    assert not (device.root / "etc/systemd/system/multi-user.target.wants/spine-firstboot.service").exists()
    log = device.log.read_text()
    assert "install: [1/7] pretending" in log  # the installer's output is in the log
    assert "done: Spine is installed and running" in log
    assert not device.journal.exists()  # nothing went wrong


def test_without_a_config_the_installer_writes_its_own(device: Device) -> None:
    device.flash(config=None)
    device.stage()
    assert device.script("run").returncode == 0
    assert not (device.root / "etc" / "spine" / "spine.toml").exists()


def test_a_second_run_after_success_does_nothing(device: Device) -> None:
    device.flash()
    device.stage()
    device.script("run")
    again = device.script("run")
    assert again.returncode == 0 and "already done" in again.stdout
    assert (device.root / "install-calls").read_text().count("install") == 1


def test_a_failing_install_is_retried_at_boot_then_given_up(device: Device) -> None:
    device.flash()
    device.stage()
    for attempt in (1, 2, 3):
        ran = device.script("run", stub_exit=1)
        assert ran.returncode == 1
        assert (device.state / "attempts").read_text() == f"{attempt}\n"
        assert (device.state / "gave-up").exists() == (attempt == 3)
    log = device.log.read_text()
    assert "FAILED: scripts/install exited 1" in log
    assert "FAILED: attempt 1 of 3" in log and "it runs again at the next boot" in log
    assert "FAILED: gave up after 3 attempts" in log and "firstboot.sh retry" in log
    journal = device.journal.read_text()
    assert "-p user.err -t spine-firstboot FAILED: gave up after 3 attempts" in journal
    assert device.bundle.exists()  # kept for a retry
    refused = device.script("run")
    assert refused.returncode == 1 and "gave up earlier" in refused.stdout
    retried = device.script("retry")
    assert retried.returncode == 0, retried.stdout
    assert (device.state / "done").exists() and not device.bundle.exists()


def test_a_missing_bundle_is_a_clear_failure(device: Device) -> None:
    device.flash()
    device.stage()
    device.bundle.unlink()
    ran = device.script("run")
    assert ran.returncode == 1
    assert f"FAILED: no bundle at '{device.bundle}'" in ran.stdout


def test_a_bundle_for_another_python_is_refused_before_installing(device: Device, tmp_path: Path) -> None:
    device.make_bundle(tmp_path, python_version="3.13")
    device.flash()
    device.stage()
    ran = device.script("run")
    assert ran.returncode == 1
    here = "{}.{}".format(*sys.version_info[:2])
    assert f"FAILED: the bundle is for Python 3.13 but this Pi has Python {here}" in ran.stdout
    assert not (device.root / "install-calls").exists()


def test_wipe_overwrites_before_it_deletes(device: Device) -> None:
    secret = device.boot / "spine-password"
    secret.write_text(f"alice:{PASSWORD_HASH}\n")
    second_name = device.root / "hardlink"  # the same inode: shows what became of the file's content
    os.link(secret, second_name)
    device.flash()
    wiped = device.script("wipe", str(secret))
    assert wiped.returncode == 0
    assert not secret.exists()
    assert PASSWORD_HASH not in second_name.read_text(errors="replace")


def test_an_unknown_command_shows_the_usage(device: Device) -> None:
    device.flash()
    shown = device.script("frobnicate")
    assert shown.returncode == 2 and "usage:" in shown.stderr


def test_a_bundle_for_another_release_is_refused_before_installing(device: Device, tmp_path: Path) -> None:
    """The image is Trixie (its os-release), the bundle Bookworm's: the message names the bundle to make."""
    described = tmp_path / "spine-bundle" / "BUNDLE"
    described.write_text(described.read_text() + "release=bookworm\n")
    with tarfile.open(device.bundle, "w") as tar:
        tar.add(tmp_path / "spine-bundle", arcname="spine-bundle")
    (device.root / "etc").mkdir(exist_ok=True)
    (device.root / "etc" / "os-release").write_text(
        'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nVERSION_CODENAME=trixie\n'
    )
    device.flash()
    device.stage()
    ran = device.script("run")
    assert ran.returncode == 1
    assert (
        "FAILED: the bundle is for Debian bookworm but this Pi runs trixie: flash it again with a bundle for trixie "
        "(make bundle RELEASE=trixie)"
    ) in ran.stdout
    assert not (device.root / "install-calls").exists()
