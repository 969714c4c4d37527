"""Which block device `spine flash` may erase, decided over `lsblk --json -b -O` output (pure: no I/O here).

The rules, in the order they are checked:
1. The target must be a whole disk lsblk lists (not a partition: the disk it belongs to is named), with a medium
   in it (a card reader's empty slot has size 0), writable (an SD card's lock switch), and at least as large as
   the image.
2. Never the disk the running system lives on: `/`, `/boot` (and below it), `/usr`, `/var` or swap on it or on
   anything inside it (partitions, LUKS, LVM). No option overrides this.
3. Never a disk with anything mounted: each mount is named, with the `umount` commands to run first.
4. A disk that is not removable (RM=0, not on USB or an SD/MMC slot, or an eMMC soldered to the board) or larger
   than `--max-size-gb` (default 256 GB: SD cards are smaller; a larger disk is more likely someone's backup
   drive) is erased only when `--yes-erase` names exactly that disk.

Whatever is decided, `describe_disk` says what will be erased: model, size, transport and each partition with
its filesystem, label and mount points.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from device.errors import UserError
from device.flash.image import human_bytes

DEFAULT_MAX_SIZE_GB = 256
SYSTEM_MOUNTPOINTS = ("/", "/boot", "/usr", "/var")
"""Mount points that mean the running system lives on the disk (and anything under /boot: /boot/efi,
/boot/firmware)."""
SWAP_MOUNTPOINT = "[SWAP]"
REMOVABLE_TRANSPORTS = ("usb", "mmc")
LSBLK_COMMAND = ("lsblk", "--json", "--bytes", "--output-all")


class UnsafeTargetError(UserError):
    """The target may not be erased (or not without --yes-erase): the message lists every reason and its fix."""


@dataclass(frozen=True)
class BlockDevice:
    """One node of lsblk's tree: a disk, a partition, or what is stacked on them (crypt, lvm)."""

    name: str
    path: str
    kind: str
    """lsblk's TYPE: disk, part, crypt, lvm, loop, rom..."""
    size_bytes: int
    removable: bool
    hotplug: bool
    read_only: bool
    transport: str | None
    subsystems: str | None
    model: str | None
    vendor: str | None
    fstype: str | None
    label: str | None
    partlabel: str | None
    mountpoints: tuple[str, ...]
    children: tuple[BlockDevice, ...]

    def descendants(self) -> Iterator[BlockDevice]:
        """This node and everything inside it, depth first."""
        yield self
        for child in self.children:
            yield from child.descendants()


@dataclass(frozen=True)
class SafeTarget:
    """A disk `check_target` allows, and whether that took `--yes-erase`."""

    disk: BlockDevice
    confirmed_by_name: bool


def parse_lsblk(text: str) -> tuple[BlockDevice, ...]:
    """The devices in `lsblk --json --bytes --output-all` output (util-linux 2.33 and later: booleans may be
    JSON booleans or "0"/"1", sizes numbers or strings)."""
    try:
        document = json.loads(text)
        return tuple(_device(node) for node in document["blockdevices"])
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(
            f"cannot read lsblk's output ({error}): is util-linux 2.33 or later installed? (lsblk --version)"
        ) from None


def _device(node: Mapping[str, Any]) -> BlockDevice:
    mountpoints = node.get("mountpoints")
    if mountpoints is None:
        mountpoints = [node.get("mountpoint")]
    return BlockDevice(
        name=str(node["name"]),
        path=str(node.get("path") or f"/dev/{node['name']}"),
        kind=str(node.get("type") or ""),
        size_bytes=int(node.get("size") or 0),
        removable=_flag(node.get("rm")),
        hotplug=_flag(node.get("hotplug")),
        read_only=_flag(node.get("ro")),
        transport=_text(node.get("tran")),
        subsystems=_text(node.get("subsystems")),
        model=_text(node.get("model")),
        vendor=_text(node.get("vendor")),
        fstype=_text(node.get("fstype")),
        label=_text(node.get("label")),
        partlabel=_text(node.get("partlabel")),
        mountpoints=tuple(str(point) for point in mountpoints if point),
        children=tuple(_device(child) for child in node.get("children") or ()),
    )


def _flag(value: object) -> bool:
    return value is True or value in ("1", 1, "true")


def _text(value: object) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def check_target(
    devices: Sequence[BlockDevice],
    target: str,
    *,
    image_bytes: int,
    max_size_bytes: int,
    yes_erase: str | None,
) -> SafeTarget:
    """Decide whether the disk at `target` (a /dev path, symlinks already resolved) may be erased to write an
    image of `image_bytes`. `yes_erase`: the device `--yes-erase` named (resolved), or None. Returns the disk, or
    raises UnsafeTargetError with every reason and how to fix it."""
    disk = _find_disk(devices, target)
    absolute = _absolute_refusals(devices, disk, image_bytes)
    if absolute:
        raise UnsafeTargetError(_refusal_text(disk, absolute))
    needs_name = _confirmation_reasons(devices, disk, max_size_bytes)
    if yes_erase is not None and yes_erase != disk.path:
        raise UnsafeTargetError(
            f"--yes-erase names {yes_erase} but the target is {disk.path}: it must name exactly the disk being "
            f"erased (--yes-erase {disk.path}), so that a typo in one of them cannot erase the wrong disk"
        )
    if needs_name and yes_erase is None:
        reasons = "; ".join(needs_name)
        raise UnsafeTargetError(
            f"{disk.path} is not erased without confirmation: {reasons}. If you are sure it is the right disk "
            f"(check the list below), add --yes-erase {disk.path}\n{describe_disk(disk)}"
        )
    return SafeTarget(disk=disk, confirmed_by_name=bool(needs_name))


def _refusal_text(disk: BlockDevice, reasons: Sequence[str]) -> str:
    listed = "\n".join(f"  - {reason}" for reason in reasons)
    return f"refusing to erase {disk.path}:\n{listed}\n{describe_disk(disk)}"


def _find_disk(devices: Sequence[BlockDevice], target: str) -> BlockDevice:
    for top in devices:
        for node in top.descendants():
            if target not in (node.path, f"/dev/{node.name}"):
                continue
            if node is top:
                return node
            raise UnsafeTargetError(
                f"{target} is a {_kind_name(node)} on {top.path}, not a whole disk: the image holds its own "
                f"partition table, so name the disk ({top.path}); everything on it will be erased"
            )
    known = ", ".join(top.path for top in devices if top.kind == "disk" and top.size_bytes) or "none"
    raise UnsafeTargetError(
        f"{target} is not a block device lsblk knows (disks here: {known}). Plug the card in, and find it with "
        "`lsblk -o NAME,SIZE,MODEL,TRAN,RM`; to write an image file instead, give a path that is not under /dev"
    )


def _kind_name(node: BlockDevice) -> str:
    return {"part": "partition", "crypt": "LUKS volume", "lvm": "LVM volume"}.get(node.kind, node.kind or "device")


def _absolute_refusals(devices: Sequence[BlockDevice], disk: BlockDevice, image_bytes: int) -> list[str]:
    """The reasons no option overrides, each with its fix."""
    if disk.kind not in ("disk", "loop"):
        return [f"it is a {disk.kind or 'device of unknown type'}, not a disk"]
    if disk.size_bytes == 0:
        return ["it has no medium (an empty card reader slot?): insert the card, then run this again"]
    reasons = []
    system = sorted({point for node in disk.descendants() for point in node.mountpoints if _is_system(point)})
    if system:
        reasons.append(
            f"it holds the running system ({', '.join(system)} on it): it is this computer's own disk, never "
            "erased; pick the card's device (`lsblk -o NAME,SIZE,MODEL,TRAN,RM`)"
        )
    else:
        mounted = [(node, point) for node in disk.descendants() for point in node.mountpoints]
        if mounted:
            where = ", ".join(f"{node.path} on {point}" for node, point in mounted)
            commands = " && ".join(f"sudo umount {point}" for point in dict.fromkeys(point for _, point in mounted))
            reasons.append(f"it is mounted ({where}): unmount it first: {commands}")
    if disk.read_only:
        reasons.append("it is read-only: slide the SD card's lock switch up (unlocked) and plug it in again")
    if disk.size_bytes < image_bytes:
        reasons.append(
            f"it is too small: {human_bytes(disk.size_bytes)}, the image needs {human_bytes(image_bytes)}; "
            "use a larger card"
        )
    return reasons


def _is_system(mountpoint: str) -> bool:
    return mountpoint in SYSTEM_MOUNTPOINTS or mountpoint.startswith("/boot/") or mountpoint == SWAP_MOUNTPOINT


def _confirmation_reasons(devices: Sequence[BlockDevice], disk: BlockDevice, max_size_bytes: int) -> list[str]:
    reasons = []
    if not is_removable(devices, disk):
        reasons.append(
            "it is not a removable disk (lsblk: RM=0, transport "
            f"{disk.transport or 'none'}{', an eMMC soldered to the board' if _is_emmc(devices, disk) else ''})"
        )
    if disk.size_bytes > max_size_bytes:
        reasons.append(
            f"it is larger ({human_bytes(disk.size_bytes)}) than --max-size-gb "
            f"({max_size_bytes // 10**9} GB), more than an SD card usually holds"
        )
    return reasons


def is_removable(devices: Sequence[BlockDevice], disk: BlockDevice) -> bool:
    """A card or a USB disk: removable or hotplug per lsblk, or on USB or an SD/MMC slot (the kernel marks an
    SD card in a laptop's built-in reader RM=0, and lsblk 2.38 gives it no transport: its subsystems say mmc),
    but not an eMMC soldered to the board (it has boot partitions, mmcblkNboot0)."""
    if _is_emmc(devices, disk):
        return False
    subsystems = (disk.subsystems or "").split(":")
    return (
        disk.removable
        or disk.hotplug
        or disk.transport in REMOVABLE_TRANSPORTS
        or any(transport in subsystems for transport in REMOVABLE_TRANSPORTS)
    )


def _is_emmc(devices: Sequence[BlockDevice], disk: BlockDevice) -> bool:
    return disk.name.startswith("mmcblk") and any(other.name == f"{disk.name}boot0" for other in devices)


def describe_disk(disk: BlockDevice) -> str:
    """What will be erased: the disk (model, size, transport, removable) and each partition, indented."""
    maker = " ".join(part for part in (disk.vendor, disk.model) if part)
    if not maker:
        maker = "SD/MMC card" if "mmc" in (disk.subsystems or "").split(":") else "unknown model"
    how = ", ".join(
        part
        for part in (
            disk.transport.upper() if disk.transport else None,
            "removable" if disk.removable or disk.hotplug else None,
            "read-only" if disk.read_only else None,
        )
        if part
    )
    lines = [f"  {disk.path}: {maker}, {human_bytes(disk.size_bytes)}{f', {how}' if how else ''}"]
    inside = [node for node in disk.descendants() if node is not disk]
    for node in inside:
        lines.append(f"    {node.path}: {_describe_node(node)}")
    if not inside:
        lines.append(f"    (no partitions{f'; {_describe_node(disk)}' if disk.fstype or disk.mountpoints else ''})")
    return "\n".join(lines)


def _describe_node(node: BlockDevice) -> str:
    label = node.label or node.partlabel
    parts = [
        _kind_name(node) if node.kind != "part" else None,
        human_bytes(node.size_bytes),
        node.fstype,
        f'"{label}"' if label else None,
        f"mounted on {', '.join(node.mountpoints)}" if node.mountpoints else "not mounted",
    ]
    return ", ".join(part for part in parts if part)
