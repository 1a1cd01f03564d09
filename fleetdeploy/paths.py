"""Where the project's files and the user's local state are: the one owner of these paths."""

from __future__ import annotations

import os
from pathlib import Path

from fleetdeploy.errors import InputError

REPO_ROOT = Path(__file__).resolve().parent.parent
ROLES_DIR = REPO_ROOT / "roles"
PLAYBOOKS_DIR = REPO_ROOT / "playbooks"
SITE_PLAYBOOK = "playbooks/site.yml"  # relative to REPO_ROOT, as ansible-runner gets them
HEALTH_PLAYBOOK = "playbooks/health.yml"
SKYPILOT_TASK = REPO_ROOT / "skypilot-tasks" / "node.yaml"
IMAGE_BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-images.sh"
ANSIBLE_CFG = REPO_ROOT / "ansible.cfg"


def state_dir() -> Path:
    """Where per-fleet local state (SSH keys, local orchestrator config, run logs) lives; never inside the repo."""
    configured = os.environ.get("FLEETDEPLOY_STATE_DIR")
    base = Path(configured) if configured else Path.home() / ".local" / "state" / "fleetdeploy"
    try:
        return base.expanduser().resolve()
    except RuntimeError:
        raise InputError(f"FLEETDEPLOY_STATE_DIR={configured}: unknown user in ~user") from None
