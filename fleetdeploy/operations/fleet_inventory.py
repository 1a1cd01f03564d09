"""The fleet's inventory file, and which of its nodes a name on the command line means.

The inventory is a pure function of what the provider reports (runs/inventory.py); this is where it is asked
for, written and read back. Names resolve against the inventory first: the provider (for SkyPilot, its API
server) is asked only for a name the inventory does not know.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

import yaml

from fleetdeploy.errors import FleetError, InputError
from fleetdeploy.fleet.model import Fleet
from fleetdeploy.jsondoc import JSONObject, as_object
from fleetdeploy.paths import REPO_ROOT, state_dir
from fleetdeploy.providers.base import Node, Provider
from fleetdeploy.runs.convergence import roles_digest
from fleetdeploy.runs.inventory import (
    build_inventory,
    host_name,
    inventory_path,
    write_inventory,
)
from fleetdeploy.runs.runner import RunResult
from fleetdeploy.runs.ssh import host_key_changed, known_hosts_file, prune_known_hosts, refused_message


def _fleet_groups(inventory: Path) -> list[JSONObject]:
    """The fleet groups of an inventory file we wrote (none when there is no file or it is unreadable)."""
    try:
        data = as_object(yaml.safe_load(inventory.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError):
        return []
    return [as_object(group) for group in as_object(as_object(data.get("all")).get("children")).values()]


def digest_in(inventory: Path) -> str:
    """`fleet_config_digest` of an inventory file we wrote ("" when there is none or it is unreadable)."""
    for group in _fleet_groups(inventory):
        digest = as_object(group.get("vars")).get("fleet_config_digest")
        if isinstance(digest, str):
            return digest
    return ""


def nodes_in(inventory: Path) -> list[Node]:
    """The nodes an inventory file we wrote lists (empty when there is none or it is unreadable)."""
    nodes = []
    for group in _fleet_groups(inventory):
        for region in as_object(group.get("children")).values():
            for values in map(as_object, as_object(as_object(region).get("hosts")).values()):
                zone = values.get("fleet_zone")
                first_key = str(values["ansible_ssh_private_key_file"])
                provider_key = str(values.get("fleet_node_key_file") or first_key)
                nodes.append(Node(
                    instance_id=str(values["fleet_instance_id"]), cluster=str(values["fleet_cluster"]),
                    region=str(values["fleet_region"]), zone=None if zone is None else str(zone),
                    host=str(values["ansible_host"]), port=int(str(values["ansible_port"])),
                    user=str(values["ansible_user"]), key_file=provider_key,
                    spot=bool(values["fleet_spot"]), cloud=str(values.get("fleet_cloud") or "aws"),
                    operator_key_file=None if first_key == provider_key else first_key,
                ))
    return nodes


class FleetInventory:
    """inventory/<fleet>.yml: written from the provider's nodes, read back without asking the provider."""

    def __init__(self, fleet: Fleet, provider: Callable[[], Provider], path: Path | None = None) -> None:
        self.fleet = fleet
        self._provider = provider  # made on first use: most reads never need it
        self.path = path or inventory_path(REPO_ROOT, fleet)

    def host(self, node: Node) -> str:
        return host_name(self.fleet, node)

    @property
    def known_hosts(self) -> Path:
        """The fleet's pinned host keys, by instance id (runs/ssh.py)."""
        return known_hosts_file(state_dir() / self.fleet.name)

    def write(self, nodes: list[Node]) -> None:
        inventory = build_inventory(self.fleet, nodes, self._provider().extra_inventory_vars(),
                                    roles_digest=roles_digest(REPO_ROOT), known_hosts=self.known_hosts)
        write_inventory(self.path, inventory)
        prune_known_hosts(self.known_hosts, {n.instance_id for n in nodes})  # keys of instances that are gone

    def explain_refusals(self, result: RunResult) -> None:
        """A node refused for a changed host key gets one line saying which, where, and how to accept it."""
        ids = {self.host(n): n.instance_id for n in self.recorded()}
        for name, host in result.hosts.items():
            if host.unreachable and name in ids and host_key_changed(host.message):
                host.message = refused_message(name, ids[name], self.known_hosts)

    def _reported(self) -> list[Node]:
        """The provider's nodes, each offering this operator's own key (ssh.identity_file) before the provider's."""
        identity = self.fleet.ssh.identity_file
        nodes = self._provider().nodes()
        if identity is None:
            return nodes
        return [replace(node, operator_key_file=str(identity)) for node in nodes]

    def refresh(self) -> list[Node]:
        """Ask the provider for the nodes and write the inventory: a pure function of what it reports."""
        nodes = self._reported()
        self.write(nodes)
        return nodes

    def nodes_or_fail(self) -> list[Node]:
        nodes = self.refresh()
        if not nodes:
            raise FleetError(f"fleet '{self.fleet.name}' has no running nodes; run `deploy.py up` first")
        return nodes

    def recorded(self) -> list[Node]:
        """The nodes the inventory file lists now (no provider call)."""
        return nodes_in(self.path)

    def config_digest(self) -> str:
        """The digest the inventory file gives site.yml (what a converged node's stamp holds); "" without one."""
        return digest_in(self.path)

    def named(self, wanted: Iterable[str]) -> list[Node]:
        """Nodes named by host name, instance id or a unique prefix of either.

        The inventory answers: asking the provider for an unknown name would start SkyPilot's API server just to
        say no. Only without an inventory (none written yet) is the provider asked; a name it does not know
        either is bad input, and then nothing was written or started for it.
        """
        names = [item.strip() for entry in wanted for item in entry.split(",") if item.strip()]
        if not names:
            raise InputError("no node named: give a node name, an instance id or a unique prefix")
        recorded = self.recorded()
        if recorded:
            try:
                return match_nodes(recorded, names, self.host)
            except InputError as exc:
                raise InputError(f"{exc}; a node newer than {self.path.name}? run `deploy.py inventory`") from None
        fresh = self._reported()
        chosen = match_nodes(fresh, names, self.host)  # raises when unknown: no inventory is written
        self.write(fresh)
        return chosen


def match_nodes(nodes: list[Node], names: list[str], host: Callable[[Node], str]) -> list[Node]:
    """Each name's node: an exact host name or instance id, else the one node either starts with."""
    chosen: list[Node] = []
    for name in names:
        matches = [n for n in nodes if name in (host(n), n.instance_id)]
        if not matches:
            matches = [n for n in nodes if host(n).startswith(name) or n.instance_id.startswith(name)]
        if len(matches) != 1:
            listed = ", ".join(host(n) for n in nodes) or "none"
            problem = "is ambiguous" if matches else "is not a node of this fleet"
            raise InputError(f"'{name}' {problem} (nodes: {listed})")
        chosen.append(matches[0])
    return chosen
