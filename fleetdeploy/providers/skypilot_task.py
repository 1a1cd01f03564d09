"""Renders skypilot-tasks/node.yaml for one region of a fleet (pure: no SkyPilot import, no cloud call)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from fleetdeploy.config import Fleet

TEMPLATE = Path(__file__).resolve().parents[2] / "skypilot-tasks" / "node.yaml"


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The task template as a mapping."""
    with path.open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a SkyPilot task must be a mapping")
    return data


def infra(region: str, zone: str | None) -> str:
    """SkyPilot's `infra` string: aws/<region>[/<zone>]."""
    return f"aws/{region}/{zone}" if zone else f"aws/{region}"


def render_task(fleet: Fleet, region: str, template: dict[str, Any] | None = None) -> dict[str, Any]:
    """The task mapping for the cluster of `region`: template plus this fleet's values."""
    spec = fleet.regions[region]
    task = copy.deepcopy(template if template is not None else load_template())
    task["name"] = fleet.cluster_name(region)
    task["num_nodes"] = spec.count
    resources = task.setdefault("resources", {})
    resources["infra"] = infra(region, spec.zone)
    resources["instance_type"] = spec.instance_type or fleet.defaults.instance_type
    resources["use_spot"] = fleet.defaults.spot
    resources["disk_size"] = fleet.defaults.disk_size_gb
    resources["labels"] = {"fleet": fleet.name, "region": region}
    if fleet.defaults.image_id:
        resources["image_id"] = fleet.defaults.image_id
    else:
        resources.pop("image_id", None)
    # Belt and braces: whatever the template says, these never reach SkyPilot (see node.yaml).
    for key in ("envs", "secrets", "file_mounts", "workdir"):
        task.pop(key, None)
    resources.pop("ports", None)
    # Only keys sky.launch accepts in a task may stay (OVERRIDEABLE_CONFIG_KEYS_IN_TASK); ours live in the
    # project config (skypilot_config.py). An empty config is dropped.
    config = task.get("config") or {}
    config.pop("aws", None)
    if config:
        task["config"] = config
    else:
        task.pop("config", None)
    return task


def to_yaml(task: dict[str, Any]) -> str:
    """The task as YAML text (what `plan` shows and what tests feed to sky.Task.from_yaml)."""
    return str(yaml.safe_dump(task, sort_keys=False, default_flow_style=False))
