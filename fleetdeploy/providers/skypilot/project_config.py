"""The SkyPilot project config this tool owns: `aws.remote_identity: NO_UPLOAD`, merged over the user's own.

A task may only override the keys in `sky.skylet.constants.OVERRIDEABLE_CONFIG_KEYS_IN_TASK`, and `aws.*` is not
among them: `sky.launch` rejects such a task (facts.md: SkyPilot). A project config is the supported place.
SkyPilot reads one project config per client (`$SKYPILOT_PROJECT_CONFIG`, else `./.sky.yaml`), at import time,
and sends it with every request. Pointing the variable at our file would hide the user's own project config, so
the file we point at holds the user's settings with ours laid over them. Pure file work: no `sky` import here.
"""

from __future__ import annotations

import copy
import os
from collections.abc import MutableMapping
from pathlib import Path

import yaml

from fleetdeploy.errors import InputError
from fleetdeploy.jsondoc import JSONObject
from fleetdeploy.private_files import write_private

ENV_VAR = "SKYPILOT_PROJECT_CONFIG"
DEFAULT_PROJECT_CONFIG = ".sky.yaml"
# Never copy the controller's ~/.aws/credentials (often admin keys) onto spot nodes: S3 access on the nodes comes
# only from the least-privilege file the aws_credentials role installs.
OWN_SETTINGS: JSONObject = {"aws": {"remote_identity": "NO_UPLOAD"}}


def user_project_config(environ: MutableMapping[str, str] | None = None, cwd: Path | None = None) -> Path | None:
    """The project config SkyPilot would read without us: `$SKYPILOT_PROJECT_CONFIG`, else `./.sky.yaml`."""
    env = os.environ if environ is None else environ
    named = env.get(ENV_VAR)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise InputError(f"{ENV_VAR}={named}: file not found (SkyPilot would refuse it too)")
        return path
    default = (cwd or Path.cwd()) / DEFAULT_PROJECT_CONFIG
    return default if default.is_file() else None


def overlay(base: JSONObject, override: JSONObject) -> JSONObject:
    """`base` with `override` laid over it, mapping by mapping (override wins on a conflict)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        below = merged.get(key)
        if isinstance(value, dict) and isinstance(below, dict):
            merged[key] = overlay(below, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _read(path: Path) -> JSONObject:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read this SkyPilot project config ({type(exc).__name__})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{path}: a SkyPilot project config must be a mapping")
    return data


def project_config(user_config: Path | None) -> JSONObject:
    """What SkyPilot gets as its project config: the user's (if any) with our settings over it."""
    return overlay(_read(user_config) if user_config else {}, OWN_SETTINGS)


def install_project_config(target: Path, environ: MutableMapping[str, str] | None = None,
                           cwd: Path | None = None) -> Path:
    """Write the merged project config to `target` (0600) and point SkyPilot at it. Call before `import sky`."""
    env = os.environ if environ is None else environ
    # A second call in one process finds our own file in the variable: overlaying it again changes nothing.
    source = user_project_config(env, cwd)
    text = "# Written by fleetdeploy: your SkyPilot project config (if any) plus NO_UPLOAD.\n" + yaml.safe_dump(
        project_config(source), sort_keys=False
    )
    write_private(target, text)
    env[ENV_VAR] = str(target)
    return target
