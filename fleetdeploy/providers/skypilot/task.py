"""Renders skypilot-tasks/node.yaml for one region of a fleet (pure: no SkyPilot import, no cloud call)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import yaml

from fleetdeploy.fleet.clouds import CloudName
from fleetdeploy.fleet.model import Fleet
from fleetdeploy.jsondoc import JSON, JSONMapping, JSONObject, as_object
from fleetdeploy.paths import SKYPILOT_TASK

TEMPLATE = SKYPILOT_TASK
_PLACEMENT_KEYS = frozenset({"infra", "instance_type", "use_spot", "any_of", "ordered", "cloud", "region", "zone"})


def load_template(path: Path = TEMPLATE) -> JSONObject:
    """The task template as a mapping."""
    with path.open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a SkyPilot task must be a mapping")
    return data


def infra(cloud: CloudName, region: str, zone: str | None) -> str:
    """SkyPilot's `infra` string: <cloud>/<region>[/<zone>] (e.g. aws/us-east-1/us-east-1a, gcp/us-central1)."""
    return f"{cloud}/{region}/{zone}" if zone else f"{cloud}/{region}"


class Market(StrEnum):
    """How a node is bought; the value is what `plan`, `status` and JSON output show."""

    SPOT = "spot"
    ON_DEMAND = "on-demand"


@dataclass(frozen=True)
class Candidate:
    """One placement SkyPilot may try for a region's cluster: an instance type, a zone (None: any) and a market."""

    instance_type: str
    zone: str | None
    spot: bool
    cloud: CloudName = CloudName.AWS

    @property
    def market(self) -> Market:
        return Market.SPOT if self.spot else Market.ON_DEMAND

    def describe(self) -> str:
        """E.g. `t3.medium spot us-east-1a` (zone `any` when SkyPilot may pick one)."""
        return f"{self.instance_type} {self.market} {self.zone or 'any'}"

    def resources(self, region: str) -> JSONObject:
        """The keys that differ between candidates, as SkyPilot's `resources` (or `resources.ordered` entry) wants."""
        return {"infra": infra(self.cloud, region, self.zone), "instance_type": self.instance_type,
                "use_spot": self.spot}


def candidates(fleet: Fleet, region: str) -> list[Candidate]:
    """Every placement for `region`'s cluster, in the order SkyPilot tries them.

    All spot candidates come first (instance types outer, zones inner, both in the fleet file's order), then,
    with `defaults.on_demand_fallback`, the same again on-demand. A region's own instance type(s) replace the
    defaults' list rather than extend it (Fleet.instance_types_of).
    """
    spec, defaults = fleet.regions[region], fleet.defaults
    types = fleet.instance_types_of(region)
    cloud = fleet.cloud_of(region)
    zones: list[str | None] = list(spec.zones) if spec.zones else [spec.zone]
    markets = [True, False] if defaults.spot and defaults.on_demand_fallback else [defaults.spot]
    return [Candidate(kind, zone, spot, cloud) for spot in markets for kind in types for zone in zones]


def render_task(fleet: Fleet, region: str, template: JSONObject | None = None) -> JSONObject:
    """The task mapping for the cluster of `region`: template plus this fleet's values.

    One candidate gives plain `resources`; several give `resources.ordered` (SkyPilot tries a list in its order;
    `any_of` is a set it would sort by price), each entry overlaid on the shared keys left at `resources`.
    SkyPilot can only fail over while creating a cluster: an existing one keeps the candidate it was launched on.
    """
    spec = fleet.regions[region]
    task = copy.deepcopy(template if template is not None else load_template())
    task["name"] = fleet.cluster_name(region)
    task["num_nodes"] = spec.count
    order = candidates(fleet, region)
    ordered: list[JSON] = [candidate.resources(region) for candidate in order]
    placement = order[0].resources(region) if len(order) == 1 else {"ordered": ordered}
    # Placement first, as in node.yaml; the template's own placement never survives (SkyPilot refuses a mix of
    # infra with the legacy cloud/region/zone, and of any_of with ordered).
    shared = {key: value for key, value in as_object(task.get("resources")).items() if key not in _PLACEMENT_KEYS}
    resources: JSONObject = {**placement, **shared}
    task["resources"] = resources
    resources["disk_size"] = fleet.defaults.disk_size_gb
    # Labels become AWS tags, GCP labels and Azure tags alike.
    resources["labels"] = {"fleet": fleet.name, "region": region}
    image_id = fleet.image_id_of(region)
    if image_id:
        resources["image_id"] = image_id
    else:
        resources.pop("image_id", None)
    # Belt and braces: whatever the template says, these never reach SkyPilot (see node.yaml).
    for key in ("envs", "secrets", "file_mounts", "workdir"):
        task.pop(key, None)
    resources.pop("ports", None)
    # Only keys sky.launch accepts in a task may stay (OVERRIDEABLE_CONFIG_KEYS_IN_TASK); ours live in the
    # project config (project_config.py). An empty config is dropped.
    config = as_object(task.get("config"))
    config.pop("aws", None)
    if config:
        task["config"] = config
    else:
        task.pop("config", None)
    return task


class _TaskDumper(yaml.SafeDumper):
    """Multi-line strings (the setup script) as literal blocks, as a person would write them."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_TaskDumper.add_representer(str, _represent_str)


def to_yaml(task: JSONMapping) -> str:
    """The task as YAML text (what `plan` shows and what tests feed to sky.Task.from_yaml)."""
    return str(yaml.dump(task, Dumper=_TaskDumper, sort_keys=False, default_flow_style=False))
