"""What a command runs with: the fleet, where its output goes, its provider (made on first use through the
registry), its inventory, and the orchestrator's API when the fleet file names one."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from rich.console import Console
from rich.text import Text

from fleetdeploy.fleet.model import Fleet
from fleetdeploy.fleet.orchestrator_spec import LOCAL
from fleetdeploy.operations.fleet_inventory import FleetInventory
from fleetdeploy.operations.options import OutputFormat
from fleetdeploy.orchestrator.api import LOCAL_NOT_RUNNING, OrchestratorApi
from fleetdeploy.paths import state_dir
from fleetdeploy.providers.base import Node, Provider
from fleetdeploy.providers.registry import make_provider


@dataclass
class Context:
    fleet: Fleet
    output: OutputFormat
    console: Console  # stdout: tables, or the one JSON document
    err_console: Console  # stderr: notices from third-party tools
    inventory: FleetInventory = field(init=False)

    def __post_init__(self) -> None:
        self.inventory = FleetInventory(self.fleet, lambda: self.provider)

    @property
    def json(self) -> bool:
        return self.output is OutputFormat.JSON

    @property
    def progress_console(self) -> Console:
        """Live progress: stdout for people, stderr when stdout carries JSON."""
        return self.err_console if self.json else self.console

    @cached_property
    def provider(self) -> Provider:
        return make_provider(self.fleet, state_dir(), self.notice)

    def notice(self, line: str) -> None:
        self.err_console.print(Text(line, style="dim"))

    def host(self, node: Node) -> str:
        return self.inventory.host(node)

    def orchestrator_api(self) -> OrchestratorApi | None:
        """Where the orchestrator's view of the nodes is read, when the fleet file names its API."""
        spec = self.fleet.orchestrator
        if spec.api is None:
            return None
        if spec.api != LOCAL:
            return OrchestratorApi(spec.api, spec.api_token_file)
        url = self.provider.orchestrator_api_url()  # `local` is the provider's own orchestrator
        if url is None:
            return OrchestratorApi("", unavailable=LOCAL_NOT_RUNNING)
        return OrchestratorApi(url, spec.api_token_file)
