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
# Extras to install with the project: `test` (the test tools) by default; scripts/test.sh adds SkyPilot's GCP and
# Azure extras, which the multi-cloud tests exercise.
EXTRAS="${FLEETDEPLOY_EXTRAS:-test}"
echo "setup: installing Python packages into .venv (extras: ${EXTRAS})"
.venv/bin/pip install -q --upgrade pip
# compat: a plain path in a .pth file. The default editable finder imports pathlib, re and urllib at every
# interpreter start (in site, before any line of deploy.py), where a Ctrl-C cannot be answered.
# The image builds below use only Docker: pip runs beside them (on a fresh machine each takes minutes).
.venv/bin/pip install -q -e ".[${EXTRAS}]" --config-settings editable_mode=compat > .venv/pip-install.log 2>&1 &
pip_pid=$!
# A background job ignores SIGINT in a script: end pip with the script, or it would go on writing into .venv.
trap 'kill "${pip_pid}" 2>/dev/null || true' EXIT INT TERM
images_status=0
bash scripts/build-images.sh || images_status=$?
if ! wait "${pip_pid}"; then
  tail -n 30 .venv/pip-install.log >&2
  echo "setup: pip install failed (log: .venv/pip-install.log)" >&2
  exit 1
fi
trap - EXIT INT TERM
[ "${images_status}" = 0 ] || { echo "setup: building the images failed" >&2; exit "${images_status}"; }
# The ansible-core wheels nodes run in configure.mode: node (fetched once here, so nodes need no internet).
.venv/bin/python -m fleetdeploy.nodelocal.wheels >/dev/null \
  || { echo "setup: fetching the nodes' ansible-core wheels failed" >&2; exit 1; }
echo "setup: done"
