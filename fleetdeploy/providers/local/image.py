"""Makes sure the local node image exists: nothing can be pulled here, so it is built from debootstrap.

The build itself lives in scripts/build-images.sh (shared with the test doubles and CI); this module only decides
whether to run it and turns its failure modes into one-line InputErrors.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from fleetdeploy.errors import InputError
from fleetdeploy.fleet.model import Fleet
from fleetdeploy.paths import IMAGE_BUILD_SCRIPT, REPO_ROOT
from fleetdeploy.providers.local.docker import DockerCli, DockerError

# debootstrap of trixie plus the engine packages takes minutes on 2 cores; bounded so a stuck mirror fails.
BUILD_TIMEOUT = 1800.0
# One bounded pull per image: an unreachable registry must end `up` quickly, not hang it.
PULL_TIMEOUT = 60.0


def ensure_node_image(name: str, docker: DockerCli | None = None, script: Path = IMAGE_BUILD_SCRIPT) -> bool:
    """Builds `name` when it is absent. Returns True when it had to be built."""
    cli = docker or DockerCli()
    if cli.image_exists(name):
        return False
    if not script.is_file():
        raise InputError(f"node image {name} is missing and {script} (which builds it) does not exist")
    for tool in ("debootstrap", "tar"):
        if shutil.which(tool) is None:
            raise InputError(
                f"node image {name} is missing and cannot be built: '{tool}' not found (apt-get install {tool})"
            )
    argv = ["bash", str(script), "--node-only"]  # never the test doubles: a user's `up` doesn't need them
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False, cwd=REPO_ROOT)
    except subprocess.TimeoutExpired as exc:
        raise InputError(f"building node image {name} timed out after {int(BUILD_TIMEOUT)} s") from exc
    if proc.returncode != 0 or not cli.image_exists(name):
        lines = [line for line in (proc.stderr + proc.stdout).strip().splitlines() if line.strip()]
        detail = lines[-1].strip() if lines else f"exit code {proc.returncode}"
        raise InputError(f"building node image {name} with {script.name} failed: {detail}")
    return True



def ensure_service_images(fleet: Fleet, docker: DockerCli, need_orchestrator: bool) -> None:
    """Fails early, in one line, when the service images can't be had — never a pull retry loop later.

    Registry images are pulled once on this machine (bounded) to prove the registry answers before any node
    is created; archive images are loaded here only for the local orchestrator, nodes get them through Ansible.
    """
    images = fleet.images
    if images.source == "archive":
        if need_orchestrator and not docker.image_exists(fleet.bacalhau.image):
            archive = Path(images.bacalhau_archive) if images.bacalhau_archive else None
            if archive is None or not archive.is_file():
                raise InputError(f"image {fleet.bacalhau.image} is absent and its archive {archive} does not exist")
            try:
                docker.load(archive)
            except DockerError as exc:
                raise InputError(f"loading {archive} failed: {exc}") from exc
            if not docker.image_exists(fleet.bacalhau.image):
                raise InputError(f"archive {archive} does not contain the image {fleet.bacalhau.image}")
        return
    unavailable = []
    for image in (fleet.bacalhau.image, fleet.sensor.image):
        if docker.image_exists(image):
            continue
        try:
            docker.pull(image, timeout=PULL_TIMEOUT)
        except DockerError:
            unavailable.append(image)
    if unavailable:
        raise InputError(
            f"cannot pull {', '.join(unavailable)} (no registry access?); load them from archives instead: "
            "set images.source: archive with images.bacalhau_archive and images.sensor_archive"
        )
