"""Makes sure the local node image exists: nothing can be pulled here, so it is built from debootstrap.

The build itself lives in scripts/build-images.sh (shared with the test doubles and CI); this module only decides
whether to run it and turns its failure modes into one-line InputErrors.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from fleetdeploy.errors import InputError
from fleetdeploy.providers.local_docker import DockerCli

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-images.sh"
# debootstrap of trixie plus the engine packages takes minutes on 2 cores; bounded so a stuck mirror fails.
BUILD_TIMEOUT = 1800.0


def ensure_node_image(name: str, docker: DockerCli | None = None, script: Path = BUILD_SCRIPT) -> bool:
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
    # The script has no node-only switch; it skips every image that already exists, so this builds what's missing.
    argv = ["bash", str(script)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False, cwd=REPO_ROOT)
    except subprocess.TimeoutExpired as exc:
        raise InputError(f"building node image {name} timed out after {int(BUILD_TIMEOUT)} s") from exc
    if proc.returncode != 0 or not cli.image_exists(name):
        lines = [line for line in (proc.stderr + proc.stdout).strip().splitlines() if line.strip()]
        detail = lines[-1].strip() if lines else f"exit code {proc.returncode}"
        raise InputError(f"building node image {name} with {script.name} failed: {detail}")
    return True

