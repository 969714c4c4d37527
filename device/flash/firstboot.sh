#!/bin/sh
# Spine's part of a flashed Raspberry Pi's first boot (written to the boot partition by `spine flash` as
# spine-firstboot.sh; docs/flash-firstboot.md). Run as root:
#
#   spine-firstboot.sh stage BOOT_DIR BUNDLE [--start]
#       by firstrun.sh or cloud-init: copy this script and BOOT_DIR/spine-firstboot.toml (if any) to
#       /var/lib/spine-firstboot, wipe them from BOOT_DIR, and install and enable spine-firstboot.service,
#       which runs `run` at every boot until it succeeds (--start: start it now, without waiting)
#   spine-firstboot.sh run
#       the unit's job: write /etc/spine/spine.toml from the staged config, run the bundle's
#       `scripts/install --bundle BUNDLE`, and on success delete the bundle and mark it done
#   spine-firstboot.sh retry
#       after it gave up (3 failed attempts): try once more now
#   spine-firstboot.sh wipe FILE...
#       overwrite, then delete (secrets on the boot partition)
#
# Everything goes to /var/log/spine-firstboot.log and the journal. Re-runnable: a power cut at any point leaves
# the unit enabled, and the next boot starts over from what is already in place (the installer is idempotent).
# A failure is logged with what to do; after 3 failed attempts the unit stops trying (no boot loop).
set -u

ROOT=${SPINE_FIRSTBOOT_ROOT:-}  # tests only: a directory standing in for /
DEVICE_STATE=/var/lib/spine-firstboot
DEVICE_LOG=/var/log/spine-firstboot.log
STATE=$ROOT$DEVICE_STATE
UNITS=$ROOT/etc/systemd/system
UNIT=$UNITS/spine-firstboot.service
LOG=$ROOT$DEVICE_LOG
CONFIG=$ROOT/etc/spine/spine.toml
MAX_ATTEMPTS=3

log() { echo "spine-firstboot: $*" | tee -a "$LOG"; }
fail() {  # one line that says what failed and what to do, in the log and, as an error, in the journal
  log "FAILED: $*"
  logger -p user.err -t spine-firstboot "FAILED: $*" 2> /dev/null || true
}

wipe() {
  for file in "$@"; do
    [ -e "$file" ] || continue
    # shred overwrites in place; on a FAT on flash memory the card's controller may still keep the old blocks.
    shred -u "$file" 2> /dev/null || { dd if=/dev/zero of="$file" bs=1k count=64 conv=notrunc 2> /dev/null; rm -f "$file"; }
  done
  sync
}

write_unit() {
  install -d "$UNITS"
  cat > "$UNIT.partial" << EOF
# Installed by Spine's first boot (spine-firstboot.sh): installs Spine from the offline bundle, once.
[Unit]
Description=Spine first boot: install Spine from the offline bundle
Documentation=file://$DEVICE_LOG
After=local-fs.target cloud-final.service
ConditionPathExists=!$DEVICE_STATE/done
ConditionPathExists=!$DEVICE_STATE/gave-up
[Service]
Type=oneshot
ExecStart=/bin/sh $DEVICE_STATE/firstboot.sh run
# pip installing every wheel on a Pi 4's SD card takes minutes; building sources there, much longer.
TimeoutStartSec=60min
[Install]
WantedBy=multi-user.target
EOF
  mv "$UNIT.partial" "$UNIT"
  # enable by hand: works before systemd runs the normal boot, and in a chroot
  install -d "$UNITS/multi-user.target.wants"
  ln -sf /etc/systemd/system/spine-firstboot.service "$UNITS/multi-user.target.wants/spine-firstboot.service"
}

stage() {
  boot=${1:?stage needs the boot directory}
  bundle=${2:?stage needs the bundle path}
  start=${3:-}
  install -d -m 0700 "$STATE"
  log "staging from $boot (bundle $bundle)"
  if [ -f "$boot/spine-firstboot.sh" ]; then
    install -m 0700 "$boot/spine-firstboot.sh" "$STATE/firstboot.sh.partial" && mv "$STATE/firstboot.sh.partial" "$STATE/firstboot.sh"
  fi
  [ -f "$STATE/firstboot.sh" ] || { fail "no $boot/spine-firstboot.sh to stage"; return 1; }
  if [ -f "$boot/spine-firstboot.toml" ]; then
    install -m 0600 "$boot/spine-firstboot.toml" "$STATE/spine.toml.partial" && mv "$STATE/spine.toml.partial" "$STATE/spine.toml"
  fi
  printf '%s\n' "$bundle" > "$STATE/bundle-path"
  write_unit
  wipe "$boot/spine-firstboot.toml"
  # This very script may be the FAT copy: sh has read all of it (main is one command), so it can go.
  rm -f "$boot/spine-firstboot.sh"
  sync
  log "spine-firstboot.service enabled: it installs Spine from $bundle"
  if [ "$start" = --start ] && [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl start --no-block spine-firstboot.service
    log "spine-firstboot.service started"
  fi
}

run() {
  [ ! -f "$STATE/done" ] || { log "already done"; return 0; }
  if [ -f "$STATE/gave-up" ]; then
    fail "gave up earlier: fix the cause (in $DEVICE_LOG), then: sudo sh $DEVICE_STATE/firstboot.sh retry"
    return 1
  fi
  attempts=$(( $(cat "$STATE/attempts" 2> /dev/null || echo 0) + 1 ))
  echo "$attempts" > "$STATE/attempts"
  bundle=$(cat "$STATE/bundle-path" 2> /dev/null || true)
  log "attempt $attempts of $MAX_ATTEMPTS started $(date -u +%FT%TZ): installing Spine from ${bundle:-?}"
  if install_spine "$bundle"; then
    rm -f "$bundle" "$STATE/spine.toml"
    rm -f "$UNITS/multi-user.target.wants/spine-firstboot.service"  # disabled; the unit stays for its status
    log "done: Spine is installed and running (systemctl status spine); the bundle is deleted"
    touch "$STATE/done"
    sync
    return 0
  fi
  if [ "$attempts" -ge "$MAX_ATTEMPTS" ]; then
    touch "$STATE/gave-up"
    sync
    fail "gave up after $attempts attempts: fix the cause (above, in $DEVICE_LOG), then: sudo sh $DEVICE_STATE/firstboot.sh retry"
  else
    fail "attempt $attempts of $MAX_ATTEMPTS (above, in $DEVICE_LOG); it runs again at the next boot, or now: sudo systemctl start spine-firstboot"
  fi
  return 1
}

install_spine() {
  bundle=$1
  [ -n "$bundle" ] && [ -f "$bundle" ] || { fail "no bundle at '${bundle:-?}': flash again with spine flash --bundle"; return 1; }
  if [ -f "$STATE/spine.toml" ]; then
    # Before the install, which keeps an existing file; readable by the service once its group exists.
    install -d -m 0755 "$(dirname "$CONFIG")"
    install -m 0644 "$STATE/spine.toml" "$CONFIG" || { fail "writing $CONFIG"; return 1; }
    log "wrote $CONFIG from the flashed config"
  fi
  work=$(mktemp -d) || return 1
  if ! tar -C "$work" -xf "$bundle" spine-bundle/scripts spine-bundle/BUNDLE; then
    rm -rf "$work"
    fail "$bundle is not a Spine bundle (tar could not read spine-bundle/scripts and BUNDLE)"
    return 1
  fi
  # A bundle is for one release: its wheels for that release's CPython (Bookworm 3.11, Trixie 3.13), its debs/
  # from that suite. `spine flash` checks this before writing; say so here too rather than let pip or apt fail.
  release=$(sed -n 's/^release=//p' "$work/spine-bundle/BUNDLE")
  release_here=$(sed -n 's/^VERSION_CODENAME=//p' "$ROOT/etc/os-release" 2> /dev/null | tr -d "\"'")
  if [ -n "$release" ] && [ -n "$release_here" ] && [ "$release" != "$release_here" ]; then
    rm -rf "$work"
    fail "the bundle is for Debian $release but this Pi runs $release_here: flash it again with a bundle for $release_here (make bundle RELEASE=$release_here)"
    return 1
  fi
  wanted=$(sed -n 's/^python_version=//p' "$work/spine-bundle/BUNDLE")
  here=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2> /dev/null || echo none)
  if [ -n "$wanted" ] && [ "$wanted" != "$here" ]; then
    rm -rf "$work"
    fail "the bundle is for Python $wanted but this Pi has Python $here: flash it again with a bundle for this image's release (make bundle RELEASE=trixie for Python 3.13, RELEASE=bookworm for 3.11)"
    return 1
  fi
  log "running the bundle's scripts/install --bundle $bundle"
  { "$work/spine-bundle/scripts/install" --bundle "$bundle" 2>&1; echo $? > "$work/status"; } | tee -a "$LOG"
  status=$(cat "$work/status" 2> /dev/null || echo unknown)
  rm -rf "$work"
  [ "$status" = 0 ] || { fail "scripts/install exited $status"; return 1; }
  if [ -f "$STATE/spine.toml" ] && [ -z "$ROOT" ] && getent group spine > /dev/null; then
    chgrp spine "$CONFIG" && chmod 0640 "$CONFIG"  # as the installer makes it
  fi
  return 0
}

main() {
  command=${1:-}
  [ $# -gt 0 ] && shift
  install -d -m 0755 "$(dirname "$LOG")"
  case $command in
    stage) stage "$@" ;;
    run) run ;;
    retry) rm -f "$STATE/gave-up" "$STATE/attempts"; run ;;
    wipe) wipe "$@" ;;
    *) echo "usage: $0 stage BOOT_DIR BUNDLE [--start] | run | retry | wipe FILE..." >&2; return 2 ;;
  esac
}

main "$@"; exit $?
