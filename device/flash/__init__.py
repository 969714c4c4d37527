"""`spine flash`: write an official Raspberry Pi OS image to an SD card (or an image file), verify it, and set it
up so that the Pi's first boot installs and starts Spine from the offline bundle, with no network.

The parts, each usable alone: `image` (the source image, `.img` or `.img.xz`, streamed), `partitions` (the MBR:
boot FAT partition 1, root ext4 partition 2), `write` (write and verify, with progress bars), `safety` (which
block devices may be erased, decided over `lsblk --json` output), `fatfs` and `rootfs` (files on the boot and
root filesystems without mounting: mtools, debugfs, resize2fs), `firstboot` (what the first boot runs), `plan`
(what will happen, printed before anything is written and by `--dry-run`) and `cli` (`spine flash`).
See docs/flash.md.
"""
