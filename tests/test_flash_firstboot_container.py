"""A flashed Raspberry Pi's first boot (the firstrun.sh mechanism of Bookworm images), booted in a container.

The boot partition's files come from `first_boot_files` for FIRSTRUN and go where Raspberry Pi OS mounts them,
/boot/firmware, in a writable overlay of the Debian 12 tree the service test boots too (tests/container_tree.py);
an x86_64 offline bundle made by scripts/bundle goes where `spine flash` puts it (ROOTFS_BUNDLE_PATH). Then the
container boots the way the Pi does, twice, with its kernel command line read from cmdline.txt each time (in a
container, systemd takes the kernel command line from its own arguments): the first boot has the systemd.run=
parameters, so systemd's kernel-command-line.service runs firstrun.sh before the normal boot and reboots
(systemd-nspawn exits with 133); the second is a normal boot, in which spine-firstboot.service installs Spine from
the bundle with no network.

Shown: spine.service active and READY with the flashed devices in /etc/spine/spine.toml, the bundle deleted, no
secret left on /boot/firmware, cmdline.txt as it was (plus the Wi-Fi country), the host name, the user with its
password hash and SSH key, the Wi-Fi connection root-only, the log; and that a failing first boot says so in
the journal and gives up after 3 attempts. Stand-ins: PulseAudio's null sink for a sound card (as in the service
test), an `ssh.service` that does nothing (the tree has no OpenSSH server), and no NetworkManager (the keyfile is
written, nothing reads it). Root only; skipped, with the reason, where nspawn cannot boot a container.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from device.flash.firstboot import (
    BOOT_MOUNT,
    ROOTFS_BUNDLE_PATH,
    FirstBootMechanism,
    FirstBootSettings,
    WifiSettings,
    first_boot_files,
)
from tests.container_tree import (
    BOOT_TIMEOUT_S,
    CACHE,
    MIRROR,
    Container,
    add_pulse_stand_in,
    cached_service_tree,
    leader_of,
    make_bundle,
    nspawn,
    power_off,
    wait_for,
    why_not_runnable,
)

pytestmark = pytest.mark.slow

# Raspberry Pi OS Bookworm's cmdline.txt once its own first boot (init=.../firstboot, the resize) has run.
PRISTINE_CMDLINE = (
    "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait quiet\n"
)
# openssl passwd -6 -salt spinetestsalt 'correct horse'
PASSWORD_HASH = (
    "$6$spinetestsalt$OjoPIR.qFTLAw13.HZNoIDUn1Faf3HOl/0AkeJFBQNOxYRw4RY7DbwyndPDTrCChFnCZk/c31QB/l/RZal14x0"
)
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINwk+ibqVJN5QC7YdN66PkjN5sfnvcuoEiEyIpgDCsz7 test@spine"
SETTINGS = FirstBootSettings(
    hostname="kitchen-pi",
    user="alice",
    password_hash=PASSWORD_HASH,
    ssh_public_keys=(SSH_KEY,),
    wifi=WifiSettings(country="GB", ssid="Spine Test Net", passphrase="correct horse battery"),
    spine_config_toml="[wake]\nthreshold = 0.6\n",
    input_device="pulse",
    output_device="pulse",
)
SPINE_DROP_IN = """\
# The test's sound server (PulseAudio's null sink stands in for a sound card).
[Unit]
Requires=pulseaudio.service
[Service]
SupplementaryGroups=pulse-access
Environment=PULSE_SERVER=unix:/run/pulse/native
"""
SSH_STAND_IN = """\
[Unit]
Description=Stand-in for OpenSSH's ssh.service (the test tree has no SSH server)
[Service]
Type=oneshot
ExecStart=/bin/true
[Install]
WantedBy=multi-user.target
"""
# Debian 13's cloud-init (25.1, as Raspberry Pi OS Trixie has) and netplan's Python API, which cloud-init uses to
# check a version 2 network-config (its own schema has no `wifis`).
CLOUD_INIT_SUITE = "trixie"
CLOUD_INIT_PACKAGES = "cloud-init,python3-netplan"
TMPFS_SIZE = "3g"
INSTALL_TIMEOUT_S = 420


@dataclass
class FirstBoot:
    """The tree after both boots, the second still running."""

    root: Path
    boot: Path
    first_boot_exit: int
    first_console: str
    container: Container
    wheel_files: list[str]
    """What the bundle's Spine wheel holds."""


def boot_words(root: Path) -> list[str]:
    """What the kernel would get: cmdline.txt's first line, read now (firstrun.sh rewrites it)."""
    return (root / BOOT_MOUNT.lstrip("/") / "cmdline.txt").read_text().splitlines()[0].split()


def boot_the_pi(root: Path, console: Path) -> subprocess.Popen[bytes]:
    """Boot `root` as the Pi boots, with the kernel command line in its cmdline.txt now."""
    return nspawn(root, console, f"spine-firstboot-{os.getpid()}", boot_words(root))


def prepare_tree(root: Path) -> Path:
    boot = root / BOOT_MOUNT.lstrip("/")
    boot.mkdir(parents=True)
    (boot / "cmdline.txt").write_text(PRISTINE_CMDLINE)
    (boot / "config.txt").write_text("arm_64bit=1\n")
    names = [path.name for path in boot.iterdir()]
    assert names  # what `spine flash` reads from the FAT before it writes
    for name, content in first_boot_files(SETTINGS, FirstBootMechanism.FIRSTRUN, PRISTINE_CMDLINE).items():
        (boot / name).write_bytes(content)
    for path in boot.iterdir():
        path.chmod(0o755)  # as every file on a FAT mounted with Raspberry Pi OS's `defaults` (umask 022) is
    units = add_pulse_stand_in(root, SPINE_DROP_IN)
    (units / "ssh.service").write_text(SSH_STAND_IN)
    (root / "etc" / "ssh" / "sshd_config.d").mkdir(parents=True)  # as Debian 12's openssh-server has it
    return boot


@contextlib.contextmanager
def scratch_root(base: Path) -> Iterator[Path]:
    """A writable copy of `base` to boot: an overlay on a tmpfs (nothing copied, nothing left on the disk; the
    Debian tree's changes, the bundle, the venv and models came to 0.9 GB), else a copy on the disk."""
    top = Path("/var/tmp") / f"spine-firstboot-{os.getpid()}"  # not /tmp: it may be a small tmpfs
    top.mkdir()
    mounted: list[Path] = []
    try:
        tmpfs = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0755", "tmpfs", str(top)])
        if tmpfs.returncode == 0:
            mounted.append(top)
            for name in ("upper", "work", "root"):
                (top / name).mkdir()
            layers = f"lowerdir={base},upperdir={top / 'upper'},workdir={top / 'work'}"
            overlay = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", layers, str(top / "root")])
            if overlay.returncode == 0:
                mounted.append(top / "root")
                yield top / "root"
                return
        subprocess.run(["cp", "-a", "--reflink=auto", str(base), str(top / "copy")], check=True)
        yield top / "copy"
    finally:
        for mount in reversed(mounted):
            subprocess.run(["umount", "--lazy", str(mount)], check=False)
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def first_boot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirstBoot]:
    reason = why_not_runnable()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("firstboot-container")
    with scratch_root(cached_service_tree()) as root:
        bundle = root / ROOTFS_BUNDLE_PATH.lstrip("/")  # where `spine flash` puts it
        bundle.parent.mkdir(parents=True)
        make_bundle(bundle, "--debian", "12")
        wheel_files = spine_wheel_files(bundle)
        boot = prepare_tree(root)
        # First boot: systemd.run= runs firstrun.sh, whose success reboots (nspawn exits 133).
        first_console = work / "console-1.log"
        first = boot_the_pi(root, first_console)
        try:
            first_exit = first.wait(timeout=BOOT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            first.kill()
            first.wait()
            pytest.fail(f"the first boot did not end in {BOOT_TIMEOUT_S} s: {first_console.read_text()[-2000:]}")
        if first_exit != 133 and "running in system mode" not in first_console.read_text():
            pytest.skip(f"systemd-nspawn cannot boot a container here: {first_console.read_text()[-1500:]}")
        # Second boot: the normal one, with cmdline.txt as firstrun.sh left it.
        process = boot_the_pi(root, work / "console-2.log")
        try:
            container = running(process, work / "console-2.log")
            state = root / "var" / "lib" / "spine-firstboot"
            wait_for(
                lambda: (state / "done").exists() or (state / "gave-up").exists() or process.poll() is not None,
                INSTALL_TIMEOUT_S,
                "spine-firstboot.service to finish",
            )
            finished = "systemctl show -p ActiveState --value spine-firstboot.service"
            wait_for(lambda: container.check(finished).strip() != "activating", 60, "spine-firstboot.service to end")
            yield FirstBoot(root, boot, first_exit, first_console.read_text(), container, wheel_files)
        finally:
            power_off(process)


def spine_wheel_files(bundle: Path) -> list[str]:
    with tarfile.open(bundle) as tar:
        member = next(m for m in tar.getmembers() if Path(m.name).name.startswith("spine-") and m.name.endswith(".whl"))
        wheel = tar.extractfile(member)
        assert wheel is not None
        with zipfile.ZipFile(wheel) as archive:
            return archive.namelist()


def running(process: subprocess.Popen[bytes], console: Path) -> Container:
    """The booted container, once its init answers (the boot itself waits for the first-boot install)."""
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    tick = threading.Event()
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the second boot ended: {console.read_text()[-2000:]}"
        leader = leader_of(process.pid)
        if leader is not None:
            container = Container(process, leader, console)
            if container.run("systemctl is-system-running").stdout.strip() not in ("", "offline"):
                return container
        tick.wait(0.5)
    pytest.fail(f"the second boot did not start in {BOOT_TIMEOUT_S} s: {console.read_text()[-2000:]}")


def test_the_wheel_carries_the_first_boot_script(first_boot: FirstBoot) -> None:
    """`spine flash` reads it from the installed package (pyproject.toml's package data)."""
    assert "device/flash/firstboot.sh" in first_boot.wheel_files


def log_of(first_boot: FirstBoot) -> str:
    return (first_boot.root / "var" / "log" / "spine-firstboot.log").read_text()


def test_the_first_boot_ran_firstrun_and_rebooted(first_boot: FirstBoot) -> None:
    assert first_boot.first_boot_exit == 133, first_boot.first_console[-2000:]  # 133: the container rebooted
    log = log_of(first_boot)
    assert "firstrun: done; rebooting" in log, log
    assert "firstrun: FAILED" not in log, log


def test_spine_was_installed_from_the_bundle_and_is_ready(first_boot: FirstBoot) -> None:
    log = log_of(first_boot)
    assert (first_boot.root / "var" / "lib" / "spine-firstboot" / "done").exists(), log[-4000:]
    assert "spine-firstboot: done: Spine is installed and running" in log
    container = first_boot.container
    shown = container.show("ActiveState", "SubState", "StatusText")
    assert (shown["ActiveState"], shown["SubState"]) == ("active", "running"), shown
    assert shown["StatusText"], "the daemon sent no STATUS= (READY comes first)"
    unit = container.check("systemctl show spine-firstboot.service -p Result -p ExecMainStatus")
    assert "Result=success" in unit and "ExecMainStatus=0" in unit, unit
    assert not (first_boot.root / ROOTFS_BUNDLE_PATH.lstrip("/")).exists(), "the bundle was not deleted"
    assert container.check("systemctl is-enabled spine-firstboot.service || true").strip() == "disabled"
    assert container.check("stat -c '%U %a' /var/lib/spine-firstboot").split() == ["root", "700"]


def test_the_spine_config_holds_the_flashed_config_and_devices(first_boot: FirstBoot) -> None:
    config = (first_boot.root / "etc" / "spine" / "spine.toml").read_text()
    assert config == SETTINGS.spine_config, config
    assert 'input_device = "pulse"' in config and "threshold = 0.6" in config
    assert "/etc/spine/spine.toml exists: left as it is" in log_of(first_boot)  # the installer kept it
    listed = first_boot.container.check("stat -c '%U %G %a' /etc/spine/spine.toml").split()
    assert listed == ["root", "spine", "640"]


def test_nothing_of_the_first_boot_is_left_on_the_boot_partition(first_boot: FirstBoot) -> None:
    left = sorted(path.name for path in first_boot.boot.iterdir())
    assert left == ["cmdline.txt", "config.txt"], left  # firstrun.sh, the Spine script and config, the secrets


def test_cmdline_is_restored_with_the_wifi_country_kept(first_boot: FirstBoot) -> None:
    cmdline = (first_boot.boot / "cmdline.txt").read_text()
    assert cmdline == PRISTINE_CMDLINE.rstrip("\n") + " cfg80211.ieee80211_regdom=GB\n", cmdline


def test_host_name_user_password_and_ssh_key(first_boot: FirstBoot) -> None:
    container = first_boot.container
    assert (first_boot.root / "etc" / "hostname").read_text() == "kitchen-pi\n"
    assert container.check("hostname").strip() == "kitchen-pi"
    assert "127.0.1.1\tkitchen-pi" in (first_boot.root / "etc" / "hosts").read_text()
    shadow = container.check("getent shadow alice").split(":")
    assert shadow[1] == PASSWORD_HASH
    keys = container.check("cat /home/alice/.ssh/authorized_keys")
    assert keys == SSH_KEY + "\n"
    assert container.check("stat -c '%U %a' /home/alice/.ssh /home/alice/.ssh/authorized_keys").split() == [
        "alice",
        "700",
        "alice",
        "600",
    ]
    assert container.check("systemctl is-enabled ssh.service").strip() == "enabled"
    assert "PasswordAuthentication no" in container.check("cat /etc/ssh/sshd_config.d/spine-keys-only.conf")


def test_the_wifi_connection_is_root_only(first_boot: FirstBoot) -> None:
    path = "/etc/NetworkManager/system-connections/spine-wifi.nmconnection"
    assert first_boot.container.check(f"stat -c '%U %a' {path}").split() == ["root", "600"]
    keyfile = first_boot.container.check(f"cat {path}")
    assert "ssid=Spine Test Net" in keyfile and f"psk={SETTINGS.wifi.psk_hex if SETTINGS.wifi else ''}" in keyfile
    assert "correct horse battery" not in keyfile  # the passphrase itself is never written


def test_a_failing_first_boot_says_so_and_gives_up(first_boot: FirstBoot) -> None:
    """The same script, in a scratch root inside the container, with no bundle where it says: three attempts,
    each a FAILED line in the log and an error in the journal, then the give-up marker the unit checks."""
    container = first_boot.container
    scratch = "/var/tmp/failing-first-boot"
    state = f"{scratch}/var/lib/spine-firstboot"
    container.check(f"mkdir -p {state} && echo /nowhere.tar > {state}/bundle-path")
    run = f"SPINE_FIRSTBOOT_ROOT={scratch} sh /var/lib/spine-firstboot/firstboot.sh run"
    for _ in range(3):
        assert container.run(run).returncode == 1
    assert container.run(f"test -f {state}/gave-up").returncode == 0
    journal = container.check("journalctl --no-pager -o cat -t spine-firstboot -p err")
    assert "FAILED: no bundle at '/nowhere.tar'" in journal, journal
    assert "FAILED: gave up after 3 attempts" in journal, journal


def cloud_init_tree() -> Path:
    """A Debian 13 tree with cloud-init, made once (~1.5 min) and kept like the service test's; never booted."""
    key = hashlib.sha256(f"{CLOUD_INIT_SUITE} {MIRROR} {CLOUD_INIT_PACKAGES}".encode()).hexdigest()[:12]
    tree = CACHE / f"root-{CLOUD_INIT_SUITE}-cloud-init-{key}"
    if not (tree / "usr" / "bin" / "cloud-init").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = CACHE / f"{tree.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        command = ["mmdebstrap", "--variant=minbase", f"--include={CLOUD_INIT_PACKAGES}", CLOUD_INIT_SUITE]
        made = subprocess.run([*command, str(partial), MIRROR], capture_output=True, text=True, timeout=900)
        if made.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            pytest.fail(f"mmdebstrap failed: {made.stderr[-2000:]}")
        partial.rename(tree)
    return tree


def test_cloud_init_accepts_the_user_data_and_network_config() -> None:
    """cloud-init's own `schema` check (with netplan's parser for network-config) on the CLOUD_INIT files, run in
    a chroot; cloud-init itself cannot run the first boot there (no Raspberry Pi OS, no boot)."""
    reason = why_not_runnable()
    if reason:
        pytest.skip(reason)
    tree = cloud_init_tree()
    files = first_boot_files(SETTINGS, FirstBootMechanism.CLOUD_INIT, PRISTINE_CMDLINE)
    broken = {
        "user-data": files["user-data"].replace(b"lock_passwd: true", b"lock_passwd: [true]"),
        "network-config": files["network-config"].replace(b"regulatory-domain", b"regulatory-domian"),
    }
    inside = Path("/tmp") / f"spine-cloud-init-{os.getpid()}"
    (tree / inside.relative_to("/")).mkdir()
    try:
        for name, kind in (("user-data", "cloud-config"), ("network-config", "network-config")):
            (tree / inside.relative_to("/") / name).write_bytes(files[name])
            (tree / inside.relative_to("/") / f"broken-{name}").write_bytes(broken[name])
            check = ["chroot", str(tree), "cloud-init", "schema", "--schema-type", kind, "--config-file"]
            valid = subprocess.run([*check, str(inside / name)], capture_output=True, text=True, timeout=120)
            assert valid.returncode == 0 and "Valid schema" in valid.stdout, valid.stdout + valid.stderr
            assert "deprecat" not in (valid.stdout + valid.stderr).lower(), valid.stdout + valid.stderr
            invalid = subprocess.run([*check, str(inside / f"broken-{name}")], capture_output=True, text=True)
            assert invalid.returncode == 1, invalid.stdout + invalid.stderr  # the check reads the file
    finally:
        shutil.rmtree(tree / inside.relative_to("/"), ignore_errors=True)
