#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian/Ubuntu machine (run as root, or with sudo available):
# Debian packages (Docker engine, debootstrap, nats-server, ssh), a running Docker daemon, the Python venv with
# the project and its test tools, and the locally built images (nothing is pulled from any registry).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
# chromium: the report page is tested in a real headless browser (tests/test_watch_report.py).
PACKAGES=(docker.io debootstrap nats-server openssh-client rsync ca-certificates python3-venv chromium)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  echo "setup: starting the Docker daemon"
  if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    $SUDO systemctl start docker
  else
    $SUDO sh -c 'nohup dockerd >/var/log/dockerd.log 2>&1 &'
  fi
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "setup: the Docker daemon did not start (see /var/log/dockerd.log)" >&2; exit 1; }
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
echo "setup: installing Python packages into .venv"
.venv/bin/pip install -q --upgrade pip
# compat: a plain path in a .pth file. The default editable finder imports pathlib, re and urllib at every
# interpreter start (in site, before any line of deploy.py), where a Ctrl-C cannot be answered.
.venv/bin/pip install -q -e '.[test]' --config-settings editable_mode=compat

bash scripts/build-images.sh
echo "setup: done"
