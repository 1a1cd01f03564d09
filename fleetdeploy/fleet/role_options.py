"""The variables the roles accept (their `meta/argument_specs.yml`), for checking the fleet file's `role_vars`."""

from __future__ import annotations

import functools
from pathlib import Path

import yaml

from fleetdeploy.jsondoc import JSONObject, as_object
from fleetdeploy.paths import ROLES_DIR

# Written by the inventory from the fleet file's own keys: overriding them in role_vars would split one setting
# into two places that disagree.
TOOL_SET_VARS = frozenset({
    "bacalhau_version", "bacalhau_image", "bacalhau_image_source", "bacalhau_image_archive",
    "bacalhau_job_image", "bacalhau_job_image_archive",
    "bacalhau_orchestrator_endpoint", "bacalhau_orchestrator_token_file", "bacalhau_labels",
    "sensor_image", "sensor_image_source", "sensor_image_archive",
    "aws_credentials_enabled", "aws_credentials_source_file", "aws_credentials_profile",
    "ssh_access_authorized_keys",
})


@functools.cache
def option_specs(roles_dir: Path = ROLES_DIR) -> dict[str, JSONObject]:
    """Every option of every role's `main` entry point, with its argument spec (type, choices, elements)."""
    specs: dict[str, JSONObject] = {}
    for spec in sorted(roles_dir.glob("*/meta/argument_specs.yml")):
        data = yaml.safe_load(spec.read_text(encoding="utf-8"))
        options = as_object(as_object(as_object(as_object(data).get("argument_specs")).get("main")).get("options"))
        specs.update({name: as_object(option) for name, option in options.items()})
    return specs


def role_options(roles_dir: Path = ROLES_DIR) -> frozenset[str]:
    return frozenset(option_specs(roles_dir))


def value_problem(key: str, value: object, roles_dir: Path = ROLES_DIR) -> str | None:
    """Why `value` is not what the role's argument spec accepts for `key` (checked with Ansible's own validator, as
    the role would on a node after launch), or None. The message never repeats the value."""
    if isinstance(value, str) and "{{" in value:
        return None  # a template: only the node can tell what it becomes
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    spec = {k: v for k, v in option_specs(roles_dir)[key].items() if k in _CHECKED}
    errors = ArgumentSpecValidator({key: spec}).validate({key: value}).errors.errors
    if not errors:
        return None
    error = errors[0]
    if type(error).__name__ == "ArgumentTypeError":
        kind = spec.get("type", "str")
        return f"must be of type {kind}" + (f" (of {spec['elements']})" if spec.get("elements") else "")
    message = str(error).split(", got:")[0]
    return message.replace(f"value of {key} ", "").replace(f"argument '{key}' ", "")


# What of an option's spec speaks about a value (defaults may be templates, `required` is the role's business).
_CHECKED = frozenset({"type", "choices", "elements", "options"})
