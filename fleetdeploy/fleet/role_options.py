"""The variables the roles accept (their `meta/argument_specs.yml`), for checking the fleet file's `role_vars`."""

from __future__ import annotations

import functools
from pathlib import Path

import yaml

from fleetdeploy.paths import ROLES_DIR

# Written by the inventory from the fleet file's own keys: overriding them in role_vars would split one setting
# into two places that disagree.
TOOL_SET_VARS = frozenset({
    "bacalhau_version", "bacalhau_image", "bacalhau_image_source", "bacalhau_image_archive",
    "bacalhau_orchestrator_endpoint", "bacalhau_orchestrator_token_file", "bacalhau_labels",
    "sensor_image", "sensor_image_source", "sensor_image_archive",
    "aws_credentials_enabled", "aws_credentials_source_file", "aws_credentials_profile",
})


@functools.cache
def role_options(roles_dir: Path = ROLES_DIR) -> frozenset[str]:
    """Every option of every role's `main` entry point."""
    names: set[str] = set()
    for spec in sorted(roles_dir.glob("*/meta/argument_specs.yml")):
        data = yaml.safe_load(spec.read_text(encoding="utf-8")) or {}
        names.update((data.get("argument_specs", {}).get("main", {}).get("options") or {}).keys())
    return frozenset(names)
