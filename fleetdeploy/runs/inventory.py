"""The Ansible inventory for a fleet (shape: docs/architecture.md, "Inventory").

`build_inventory` is pure: same fleet + same nodes (in any order) -> same dict. The inventory holds controller
*paths* to secret files, never secret values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import cast

import yaml

from fleetdeploy.errors import FleetError
from fleetdeploy.fleet.model import Fleet
from fleetdeploy.fleet.orchestrator_spec import LOCAL
from fleetdeploy.jsondoc import JSONMapping, JSONObject
from fleetdeploy.private_files import write_private
from fleetdeploy.providers.base import Node
from fleetdeploy.runs.convergence import config_digest
from fleetdeploy.runs.ssh import ansible_ssh_args

_UNSAFE = re.compile(r"[^a-z0-9-]+")
# Variables only the controller-side plays read (health.yml): never part of a node's convergence digest.
CONTROLLER_ONLY_PREFIX = "fleet_orchestrator_api"


def group_id(text: str) -> str:
    """Ansible group names may not contain '-': fleet/region names with '-' -> '_'."""
    return text.replace("-", "_")


def host_name(fleet: Fleet, node: Node) -> str:
    """`<fleet>-<instance_id>`, lower-case, anything but letters, digits and '-' replaced by '-'."""
    return _UNSAFE.sub("-", f"{fleet.name}-{node.instance_id}".lower()).strip("-")


def fleet_vars(fleet: Fleet) -> JSONObject:
    """Fleet-wide variables the roles read (architecture.md); paths only for secrets."""
    values: JSONObject = {
        "fleet_name": fleet.name,
        "fleet_provider": fleet.provider,
        "bacalhau_version": fleet.bacalhau.version,
        "bacalhau_image": fleet.bacalhau.image,
        "bacalhau_image_source": fleet.images.source,
        "bacalhau_orchestrator_endpoint": fleet.orchestrator.endpoint,
        "bacalhau_orchestrator_token_file": str(fleet.orchestrator.token_file),
        "bacalhau_labels": dict(sorted(fleet.labels.items())),
        "sensor_image": fleet.sensor.image,
        "sensor_image_source": fleet.images.source,
        "aws_credentials_enabled": fleet.aws_credentials is not None,
        "ssh_access_authorized_keys": list(fleet.ssh.authorized_keys),
    }
    if fleet.canary.archive is not None:
        # Jobs run on the node's own engine: the canary's image is loaded there beside Bacalhau's.
        values["bacalhau_job_image"] = fleet.canary.image
        values["bacalhau_job_image_archive"] = str(fleet.canary.archive)
    if fleet.images.source == "archive":
        values["bacalhau_image_archive"] = str(fleet.images.bacalhau_archive)
        values["sensor_image_archive"] = str(fleet.images.sensor_archive)
    api = fleet.orchestrator.api
    if api is not None:
        # health.yml reads the orchestrator's view from here; `local` is resolved by the local provider.
        values["fleet_orchestrator_api"] = "" if api == LOCAL else api
        if fleet.orchestrator.api_token_file is not None:
            values["fleet_orchestrator_api_token_file"] = str(fleet.orchestrator.api_token_file)
    if fleet.aws_credentials is not None:
        values["aws_credentials_source_file"] = str(fleet.aws_credentials.file)
        values["aws_credentials_profile"] = fleet.aws_credentials.profile
    return values


def _host_vars(node: Node, known_hosts: Path | None) -> JSONObject:
    # The operator's own key first, then the provider's: a node launched a minute ago accepts only the latter.
    first, *more = node.identity_files
    pinned: JSONObject = {}
    if known_hosts:
        pinned["ansible_ssh_extra_args"] = ansible_ssh_args(node.instance_id, known_hosts, more)
    return pinned | {
        "ansible_host": node.host,
        "ansible_port": node.port,
        "ansible_user": node.user,
        "ansible_ssh_private_key_file": first,
        "fleet_node_key_file": node.key_file,
        "fleet_login_user": node.user,
        "fleet_cluster": node.cluster,
        "fleet_region": node.region,
        "fleet_cloud": str(node.cloud),
        "fleet_zone": node.zone,
        "fleet_instance_id": node.instance_id,
        "fleet_spot": node.spot,
    }


def _digest(fleet: Fleet, variables: JSONMapping, roles_digest: str) -> str:
    # Where the controller reads the orchestrator's view changes nothing on a node (the local API's port changes
    # whenever its container is replaced): it must not make every node look unconverged.
    variables = {k: v for k, v in variables.items() if not k.startswith(CONTROLLER_ONLY_PREFIX)}
    secrets = [Path(fleet.orchestrator.token_file)]
    if fleet.aws_credentials is not None:
        secrets.append(Path(fleet.aws_credentials.file))
    archives = [Path(p) for p in (fleet.images.bacalhau_archive, fleet.images.sensor_archive, fleet.canary.archive)
                if p is not None]
    return config_digest(variables, roles_digest, secrets, archives)


def build_inventory(
    fleet: Fleet, nodes: Iterable[Node], extra_vars: JSONMapping | None = None, roles_digest: str = "",
    known_hosts: Path | None = None,
) -> JSONObject:
    """The inventory dict: group `fleet_<id>` with fleet vars (+ extra_vars, then the fleet file's role_vars, which
    win), one child group per region, and `fleet_config_digest` (what site.yml stamps on a converged node).

    Every region of the fleet gets a group (empty when it has no ready node) so `--limit <fleet>_<region>`
    always names something; hosts are sorted by name.
    """
    fleet_id = group_id(fleet.name)
    regions: dict[str, JSONObject] = {region: {} for region in fleet.regions}
    for node in nodes:
        name = host_name(fleet, node)
        hosts = regions.setdefault(node.region, {})
        if any(name in other for other in regions.values()):
            raise FleetError(f"two nodes map to the same inventory host name {name}")
        hosts[name] = _host_vars(node, known_hosts)
    children: JSONObject = {
        f"{fleet_id}_{group_id(region)}": {"hosts": dict(sorted(hosts.items()))}
        for region, hosts in sorted(regions.items())
    }
    variables = fleet_vars(fleet)
    variables.update(extra_vars or {})
    # role_vars are the fleet file's YAML values (a date stays a date): they go back out as YAML, untouched.
    variables.update(cast(JSONObject, fleet.role_vars))
    variables["fleet_config_digest"] = _digest(fleet, variables, roles_digest)
    return {"all": {"children": {f"fleet_{fleet_id}": {"vars": variables, "children": children}}}}


def inventory_path(repo_root: Path, fleet: Fleet) -> Path:
    """Where the generated inventory of `fleet` lives: inventory/<fleet>.yml (git-ignored)."""
    return Path(repo_root) / "inventory" / f"{fleet.name}.yml"


def write_inventory(path: Path, inventory: JSONMapping) -> None:
    """Write the inventory as YAML atomically; the file is created 0600 (never widened, never chmod-ed later)."""
    text = "---\n# Generated by fleetdeploy; do not edit (it is rewritten on every run).\n" + yaml.safe_dump(
        dict(inventory), sort_keys=False, default_flow_style=False
    )
    write_private(path, text)
