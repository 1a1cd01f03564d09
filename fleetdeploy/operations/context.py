"""Everything a command needs: the fleet, its provider (made on first use), the consoles and its nodes."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml
from rich.console import Console
from rich.text import Text

from fleetdeploy.errors import FleetError, InputError
from fleetdeploy.fleet.model import Fleet
from fleetdeploy.fleet.orchestrator_spec import LOCAL
from fleetdeploy.orchestrator.api import LOCAL_NOT_RUNNING, OrchestratorApi
from fleetdeploy.paths import REPO_ROOT, state_dir
from fleetdeploy.providers.base import Node, Provider
from fleetdeploy.runs.convergence import roles_digest
from fleetdeploy.runs.inventory import (
    build_inventory,
    host_name,
    inventory_path,
    write_inventory,
)


def make_provider(fleet: Fleet, notice: Callable[[str], None]) -> Provider:
    if fleet.provider == "local":
        from fleetdeploy.providers.local.provider import LocalProvider

        return LocalProvider(fleet, state_dir())
    from fleetdeploy.providers.skypilot.provider import SkyPilotProvider

    return SkyPilotProvider(fleet, state_dir(), notice=notice)


def _nodes_in(inventory: Path) -> list[Node]:
    """The nodes an inventory file we wrote lists (empty when there is none or it is unreadable)."""
    try:
        data = yaml.safe_load(inventory.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return []
    nodes = []
    for group in (data.get("all", {}).get("children") or {}).values():
        for region in (group.get("children") or {}).values():
            for values in (region.get("hosts") or {}).values():
                nodes.append(Node(
                    instance_id=str(values["fleet_instance_id"]), cluster=str(values["fleet_cluster"]),
                    region=str(values["fleet_region"]), zone=values.get("fleet_zone"),
                    host=str(values["ansible_host"]), port=int(values["ansible_port"]),
                    user=str(values["ansible_user"]), key_file=str(values["ansible_ssh_private_key_file"]),
                    spot=bool(values["fleet_spot"]),
                ))
    return nodes


@dataclass
class Context:
    args: argparse.Namespace
    fleet: Fleet
    console: Console  # stdout: tables, or the one JSON document
    err_console: Console  # stderr: notices from third-party tools
    _provider: Provider | None = None

    @property
    def json(self) -> bool:
        return getattr(self.args, "output", "table") == "json"

    @property
    def progress_console(self) -> Console:
        """Live progress: stdout for people, stderr when stdout carries JSON."""
        return self.err_console if self.json else self.console

    @property
    def provider(self) -> Provider:
        if self._provider is None:
            self._provider = make_provider(self.fleet, self.notice)
        return self._provider

    def notice(self, line: str) -> None:
        self.err_console.print(Text(line, style="dim"))

    @property
    def inventory_file(self) -> Path:
        return inventory_path(REPO_ROOT, self.fleet)

    def host(self, node: Node) -> str:
        return host_name(self.fleet, node)

    def orchestrator_api(self) -> OrchestratorApi | None:
        """Where the orchestrator's view of the nodes is read, when the fleet file names its API."""
        spec = self.fleet.orchestrator
        if spec.api is None:
            return None
        if spec.api != LOCAL:
            return OrchestratorApi(spec.api, spec.api_token_file)
        url = self.provider.orchestrator_api_url()
        if url is None:
            return OrchestratorApi("", unavailable=LOCAL_NOT_RUNNING)
        return OrchestratorApi(url, spec.api_token_file)

    def write_inventory(self, nodes: list[Node]) -> None:
        inventory = build_inventory(self.fleet, nodes, self.provider.extra_inventory_vars(),
                                    roles_digest=roles_digest(REPO_ROOT))
        write_inventory(self.inventory_file, inventory)

    def refresh_inventory(self) -> list[Node]:
        """Ask the provider for the nodes and write the inventory: a pure function of what it reports."""
        nodes = self.provider.nodes()
        self.write_inventory(nodes)
        return nodes

    def nodes_or_fail(self) -> list[Node]:
        nodes = self.refresh_inventory()
        if not nodes:
            raise FleetError(f"fleet '{self.fleet.name}' has no running nodes; run `deploy.py up` first")
        return nodes

    def named_nodes(self, wanted: Iterable[str]) -> list[Node]:
        """Nodes named by host name, instance id or a unique prefix of either.

        The current inventory answers first; only a name it does not know makes us ask the provider. A name
        the provider does not know either is bad input, and then nothing was written or started for it.
        """
        names = [item.strip() for entry in wanted for item in entry.split(",") if item.strip()]
        if not names:
            raise InputError("no node named: give a node name, an instance id or a unique prefix")
        known = _nodes_in(self.inventory_file)
        try:
            return self._match(known, names)
        except InputError:
            fresh = self.provider.nodes()
            chosen = self._match(fresh, names)  # raises when still unknown: the inventory stays as it was
            self.write_inventory(fresh)
            return chosen

    def _match(self, nodes: list[Node], names: list[str]) -> list[Node]:
        chosen: list[Node] = []
        for name in names:
            matches = [n for n in nodes if name in (self.host(n), n.instance_id)]
            if not matches:
                matches = [n for n in nodes if self.host(n).startswith(name) or n.instance_id.startswith(name)]
            if len(matches) != 1:
                listed = ", ".join(self.host(n) for n in nodes) or "none"
                problem = "is ambiguous" if matches else "is not a node of this fleet"
                raise InputError(f"'{name}' {problem} (nodes: {listed})")
            chosen.append(matches[0])
        return chosen
