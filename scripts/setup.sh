#!/usr/bin/env bash
# Sets up everything Spine needs on a fresh Debian 12 / Raspberry Pi OS machine: the system packages (apt,
# with sudo when not root, only those missing), a virtual environment in .venv with the package and its dev
# tools, and openwakeword without its tflite-runtime dependency. Safe to run again: it skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM_PACKAGES=(python3-venv python3-dev build-essential pkg-config espeak-ng sox portaudio19-dev
                 libsystemd-dev pulseaudio stress-ng chromium  # chromium: the monitor's browser test
                 systemd-container mmdebstrap  # the service's boot test in a container (tests/test_service_container.py)
                 mtools dosfstools e2fsprogs fdisk xz-utils openssl)  # spine flash and its tests (docs/flash.md)
OPENWAKEWORD_VERSION=0.6.0

missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "spine setup: installing system packages: ${missing[*]}"
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

stamp=.venv/.spine-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
  echo "spine setup: creating .venv and installing the package"
  [[ -x .venv/bin/python ]] || python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  # --no-deps: openwakeword 0.6 declares tflite-runtime, which breaks under NumPy 2 and has no wheel on some
  # aarch64 systems. Spine only uses its ONNX path; pyproject.toml lists the dependencies its import needs.
  .venv/bin/pip install -q --no-deps "openwakeword==${OPENWAKEWORD_VERSION}"
  touch "$stamp"
fi
