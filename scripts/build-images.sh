#!/usr/bin/env bash
# Builds the project's local images and the test doubles' archives WITHOUT pulling from any registry
# (facts.md: Docker: no registry is reachable here). Root filesystems come from debootstrap + `docker import`;
# derived images use `docker build` FROM those local images with --pull=false.
#
# Usage: scripts/build-images.sh [--rebuild] [--rebootstrap] [--node-only]
#   --rebuild      rebuild every image even when it exists (reuses the cached debootstrap tarballs)
#   --rebootstrap  also re-run debootstrap (implies --rebuild)
#   --node-only    only the local provider's node image (what `deploy.py up` needs), no test doubles
# Environment: FLEET_DEBIAN_MIRROR (default http://deb.debian.org/debian)
set -euo pipefail

readonly SUITE=trixie
readonly MIRROR="${FLEET_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly CACHE_DIR="${REPO_ROOT}/.cache/images"
readonly ROOTFS_DIR="${CACHE_DIR}/rootfs"
readonly DOUBLES_DIR="${REPO_ROOT}/tests/doubles"

readonly IMG_BASE="localhost/fleet-node-base:${SUITE}"
readonly IMG_NODE="localhost/fleet-node:${SUITE}"
readonly IMG_PYTHON="localhost/fleet-python:${SUITE}"
readonly IMG_BACALHAU="localhost/bacalhau-double:test"
readonly IMG_SENSOR="localhost/sensor-double:test"

readonly BASE_PACKAGES="python3,python3-apt,systemd,systemd-sysv,openssh-server,sudo,ca-certificates,iproute2"
# tzdata: the sensor double validates IANA timezone names with zoneinfo, like the simulator.
readonly PYTHON_PACKAGES="python3,python3-yaml,nats-server,tzdata"
# cron: Ubuntu's server AMIs ship it, so a fleet node has it before the health_check role runs.
readonly NODE_EXTRA_PACKAGES="docker.io docker-cli docker-compose python3-requests cron"

REBUILD=0
REBOOTSTRAP=0
NODE_ONLY=0
WORK_DIRS=()
REPLACED_IDS=()

# Scratch directories hold whole root filesystems: remove them however the script ends.
cleanup() { [[ ${#WORK_DIRS[@]} -eq 0 ]] || rm -rf "${WORK_DIRS[@]}"; }
trap cleanup EXIT

die() { echo "build-images: ERROR: $*" >&2; exit 1; }
say() { echo "build-images: $*"; }

usage() { sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

parse_args() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --rebuild) REBUILD=1 ;;
      --rebootstrap) REBUILD=1; REBOOTSTRAP=1 ;;
      --node-only) NODE_ONLY=1 ;;
      -h|--help) usage; exit 0 ;;
      *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
  done
}

check_prerequisites() {
  command -v docker >/dev/null 2>&1 || die "docker is not installed (apt-get install docker.io)"
  command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed (apt-get install debootstrap)"
  [[ "$(id -u)" -eq 0 ]] || die "must run as root (debootstrap and rootfs tarballs need it)"
  docker info >/dev/null 2>&1 || die "the Docker engine does not answer (start it: dockerd >/tmp/dockerd.log 2>&1 &)"
  # Legacy builder: buildx is not installed here, and it never pulls a local FROM image with --pull=false.
  export DOCKER_BUILDKIT=0
  mkdir -p "${ROOTFS_DIR}"
}

# Legacy `docker build`, quiet; its deprecation banner is noise, real errors still reach stderr.
docker_build() {
  docker build --pull=false -q "$@" >/dev/null 2> >(grep -v -e '^DEPRECATED: The legacy builder' \
    -e 'BuildKit is currently disabled' -e '^ *environment-variable\.$' -e '^$' >&2 || true)
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# Prints the path of a cached, pristine debootstrap tarball for NAME, creating it when missing (or --rebootstrap).
# Pristine on purpose: customisation runs on every (re)build, so changing it never needs a new debootstrap.
debootstrap_tarball() {
  local name="$1" include="$2"
  local tarball="${ROOTFS_DIR}/${name}-${SUITE}.debootstrap.tar"
  if [[ -f "${tarball}" && "${REBOOTSTRAP}" -eq 0 ]]; then
    echo "${tarball}"
    return
  fi
  local work
  work="$(mktemp -d "${ROOTFS_DIR}/.debootstrap-${name}.XXXXXX")"
  local debs="${CACHE_DIR}/debs/${name}"
  mkdir -p "${debs}"
  if ! debootstrap --variant=minbase --cache-dir="${debs}" --include="${include}" \
      "${SUITE}" "${work}/root" "${MIRROR}" >"${work}.log" 2>&1; then
    tail -n 20 "${work}.log" >&2
    rm -rf "${work}"
    die "debootstrap of ${name} failed (full log: ${work}.log)"
  fi
  rm -f "${work}.log"
  tar --numeric-owner -C "${work}/root" -cf "${tarball}.tmp" .
  rm -rf "${work}"
  mv "${tarball}.tmp" "${tarball}"
  echo "${tarball}"
}

# Settings every image shares: no cached package lists/debs, apt pointing at the Debian mirror.
customise_common() {
  local root="$1"
  printf 'deb %s %s main\ndeb %s %s-updates main\n' "${MIRROR}" "${SUITE}" "${MIRROR}" "${SUITE}" \
    >"${root}/etc/apt/sources.list"
  rm -rf "${root}"/var/lib/apt/lists/* "${root}"/var/cache/apt/archives/*.deb "${root}"/var/cache/apt/*.bin
}

# Makes the rootfs behave like a fresh VM: its own machine-id and ssh host keys per container, sshd enabled.
customise_node() {
  local root="$1"
  customise_common "${root}"
  # Empty machine-id: systemd generates a new one at each container's first boot.
  : >"${root}/etc/machine-id"
  rm -f "${root}/var/lib/dbus/machine-id"
  # Each container needs its own host key. Debian's sshd-keygen.service only runs on a "first boot", which an
  # empty machine-id does not count as, so ssh.service creates it itself before its config test. Ed25519 only:
  # an RSA key costs 0.3-3 s of CPU per boot (a random prime search), and local nodes boot on the controller's
  # cores, several at once.
  rm -f "${root}"/etc/ssh/ssh_host_*
  mkdir -p "${root}/etc/systemd/system/multi-user.target.wants" "${root}/etc/systemd/system/ssh.service.d"
  ln -sf /usr/lib/systemd/system/ssh.service "${root}/etc/systemd/system/multi-user.target.wants/ssh.service"
  cat >"${root}/etc/systemd/system/ssh.service.d/10-host-keys.conf" <<'UNIT'
[Service]
ExecStartPre=
ExecStartPre=/bin/sh -c 'test -e /etc/ssh/ssh_host_ed25519_key || exec /usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key'
ExecStartPre=/usr/sbin/sshd -t
UNIT
  mkdir -p "${root}/etc/ssh/sshd_config.d"
  echo 'HostKey /etc/ssh/ssh_host_ed25519_key' >"${root}/etc/ssh/sshd_config.d/10-host-key.conf"
  # Units that can only fail or do nothing in a container (no kernel modules, no consoles, no physical disks or
  # fstab, no kernel debug/tracing/config/fuse filesystems to mount, a /dev that Docker populates), units that
  # redo at each first boot what the image build already did (ldconfig, the journal catalog, system users: every
  # container starts from an image whose /usr is newer than its /etc/.updated), and apt's timers (a test node
  # must not reach for a mirror on its own). Together they were ~0.2 s of each node's boot CPU.
  local unit
  for unit in systemd-modules-load.service modprobe@.service getty@tty1.service fstrim.timer \
    systemd-remount-fs.service dev-hugepages.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
    sys-kernel-config.mount sys-fs-fuse-connections.mount systemd-tmpfiles-setup-dev-early.service \
    systemd-tmpfiles-setup-dev.service ldconfig.service \
    systemd-journal-catalog-update.service systemd-update-done.service systemd-sysusers.service \
    apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer; do
    ln -sf /dev/null "${root}/etc/systemd/system/${unit}"
  done
  rm -f "${root}/etc/systemd/system/getty.target.wants/getty@tty1.service" \
    "${root}"/etc/systemd/system/timers.target.wants/{fstrim,apt-daily,apt-daily-upgrade,dpkg-db-backup}.timer
}

customise_python() { customise_common "$1"; }

# import_rootfs IMAGE TARBALL CUSTOMISE_FN CMD_JSON [STOPSIGNAL [RECIPE]]
import_rootfs() {
  local image="$1" tarball="$2" customise="$3" cmd="$4" stopsignal="${5:-}" recipe="${6:-}"
  local work
  work="$(mktemp -d "${ROOTFS_DIR}/.import.XXXXXX")"
  WORK_DIRS+=("${work}")
  tar --numeric-owner -C "${work}" -xf "${tarball}"
  "${customise}" "${work}"
  local target="${image}"
  # `docker import` on engine 20.10 refuses STOPSIGNAL: import under a temporary tag, then add it with a build.
  [[ -n "${stopsignal}" ]] && target="${image}-rootfs"
  tar --numeric-owner -C "${work}" -c . |
    docker import -c "CMD ${cmd}" -c 'ENV container=docker' - "${target}" >/dev/null
  if [[ -n "${stopsignal}" ]]; then
    printf 'FROM %s\nSTOPSIGNAL %s\nLABEL fleetdeploy.recipe=%s\n' "${target}" "${stopsignal}" "${recipe}" |
      docker_build -t "${image}" -
    docker rmi "${target}" >/dev/null
  fi
  rm -rf "${work}"
}

image_created_epoch() { date -d "$(docker image inspect -f '{{.Created}}' "$1")" +%s; }

# True when a file under DIR changed after IMAGE was built (the doubles' sources are edited in this repo).
sources_newer() {
  local image="$1" dir="$2" newest
  newest="$(find "${dir}" -type f -not -path '*/__pycache__/*' -printf '%T@\n' | sort -n | tail -n 1 | cut -d. -f1)"
  [[ -n "${newest}" && "${newest}" -gt "$(image_created_epoch "${image}")" ]]
}

# The node images carry a digest of their recipe (the base: how its rootfs is customised; the node: its Dockerfile
# and the base's recipe): a machine that built them before the recipe changed (one more package, another sshd
# setting) rebuilds them instead of running nodes from the old ones.
recipe_digest() { sha256sum | cut -c1-16; }
recipe_label() { docker image inspect -f '{{index .Config.Labels "fleetdeploy.recipe"}}' "$1" 2>/dev/null; }
base_recipe() { declare -f customise_common customise_node | recipe_digest; }
node_recipe() { { node_dockerfile; recipe_label "${IMG_BASE}"; } | recipe_digest; }

# build_step IMAGE FUNCTION ARGS...: skips existing images unless --rebuild (or their recipe or, for the doubles,
# their sources changed since); one line per image.
build_step() {
  local image="$1"
  shift
  if image_exists "${image}" && [[ "${REBUILD}" -eq 0 ]]; then
    local stale=0
    case "$1" in
      build_double) sources_newer "${image}" "$3" && stale=1 ;;
      build_base) [[ "$(recipe_label "${image}")" == "$(base_recipe)" ]] || stale=1 ;;
      build_node) [[ "$(recipe_label "${image}")" == "$(node_recipe)" ]] || stale=1 ;;
    esac
    if [[ "${stale}" -eq 0 ]]; then
      say "${image}: exists, skipped (use --rebuild)"
      return
    fi
  fi
  local start=${SECONDS} old_id
  old_id="$(docker image inspect -f '{{.Id}}' "${image}" 2>/dev/null || true)"
  "$@"
  if [[ -n "${old_id}" && "${old_id}" != "$(docker image inspect -f '{{.Id}}' "${image}")" ]]; then
    REPLACED_IDS+=("${old_id}")
  fi
  say "${image}: built in $((SECONDS - start)) s ($(docker image inspect -f '{{.Id}}' "${image}" | cut -c8-19))"
}

build_base() {
  local tarball
  tarball="$(debootstrap_tarball fleet-node-base "${BASE_PACKAGES}")"
  import_rootfs "${IMG_BASE}" "${tarball}" customise_node '["/lib/systemd/systemd"]' 'SIGRTMIN+3' "$(base_recipe)"
}

node_dockerfile() {
  # policy-rc.d keeps package scripts from starting dockerd inside the build container. The engine is installed
  # but, as on a fresh VM, not started at boot: its socket starts it on first use, the docker role enables it.
  # A node then boots on 0.57 s of CPU instead of 0.94 s, and local nodes boot on the controller's cores, several
  # at once.
  cat <<EOF
FROM ${IMG_BASE}
RUN printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d \\
 && apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${NODE_EXTRA_PACKAGES} >/dev/null \\
 && rm -f /usr/sbin/policy-rc.d \\
 && apt-get clean && rm -rf /var/lib/apt/lists/* \\
 && systemctl disable --quiet docker.service containerd.service \\
 && systemctl is-enabled docker.socket
EOF
}

build_node() {
  local recipe
  recipe="$(node_recipe)"
  { node_dockerfile; echo "LABEL fleetdeploy.recipe=${recipe}"; } | docker_build -t "${IMG_NODE}" -
}

build_python() {
  local tarball
  tarball="$(debootstrap_tarball fleet-python "${PYTHON_PACKAGES}")"
  import_rootfs "${IMG_PYTHON}" "${tarball}" customise_python '["python3"]'
}

build_double() {
  local image="$1" dir="$2"
  docker_build -t "${image}" "${dir}"
}

# Archives are (re)written whenever an image in them was (re)built, the list of images changed (kept beside the
# archive in <archive>.images) or the archive is missing.
save_archive() {
  local archive="$1" image newest=0 created
  shift
  for image in "$@"; do
    created="$(image_created_epoch "${image}")"
    ((created > newest)) && newest="${created}"
  done
  if [[ -f "${archive}" && "${REBUILD}" -eq 0 ]] && [[ "$(stat -c %Y "${archive}")" -ge "${newest}" ]] \
     && [[ "$(cat "${archive}.images" 2>/dev/null)" == "$*" ]]; then
    say "${archive#"${REPO_ROOT}/"}: up to date, skipped"
    return
  fi
  docker save -o "${archive}.tmp" "$@"
  chmod 0644 "${archive}.tmp"
  mv "${archive}.tmp" "${archive}"
  printf '%s' "$*" > "${archive}.images"
  say "${archive#"${REPO_ROOT}/"}: saved $* ($(du -h "${archive}" | cut -f1))"
}

main() {
  parse_args "$@"
  check_prerequisites
  build_step "${IMG_BASE}" build_base
  build_step "${IMG_NODE}" build_node
  if [[ "${NODE_ONLY}" -eq 0 ]]; then
    build_step "${IMG_PYTHON}" build_python
    build_step "${IMG_BACALHAU}" build_double "${IMG_BACALHAU}" "${DOUBLES_DIR}/bacalhau"
    build_step "${IMG_SENSOR}" build_double "${IMG_SENSOR}" "${DOUBLES_DIR}/sensor"
    # One archive per image for the roles' molecule scenarios; all in one for fleets: the doubles share their
    # base layers, so a node receives and unpacks those once (the sensor role then finds its image loaded). The
    # python image they are built on is the canary job's image on local fleets (it has python3 and sqlite3).
    save_archive "${CACHE_DIR}/bacalhau-double.tar" "${IMG_BACALHAU}"
    save_archive "${CACHE_DIR}/sensor-double.tar" "${IMG_SENSOR}"
    save_archive "${CACHE_DIR}/doubles.tar" "${IMG_BACALHAU}" "${IMG_SENSOR}" "${IMG_PYTHON}"
  fi
  # Drop replaced images (children first) unless a container still uses one: no dangling pile-up.
  local i
  for ((i = ${#REPLACED_IDS[@]} - 1; i >= 0; i--)); do
    docker rmi "${REPLACED_IDS[i]}" >/dev/null 2>&1 || true
  done
}

main "$@"
