"""Provider-neutral records of clusters and nodes, and the protocol every provider implements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Node:
    """One reachable machine of the fleet, as a provider reports it."""

    instance_id: str
    cluster: str
    region: str
    zone: str | None
    host: str
    port: int
    user: str
    key_file: str
    spot: bool


@dataclass(frozen=True)
class ClusterPlan:
    """What `plan` shows for one cluster: where it goes and what would be sent to the provider."""

    cluster: str
    region: str
    zone: str | None
    num_nodes: int
    instance_type: str | None
    spot: bool
    rendered_task: str


@dataclass(frozen=True)
class ClusterOutcome:
    """What happened to one cluster during `up` or `down`."""

    cluster: str
    region: str
    ok: bool
    action: str  # launched | relaunched | unchanged | removed | failed
    error: str | None = None


# Called with (cluster, message) as work on a cluster progresses; the CLI shows it live.
ProgressCallback = Callable[[str, str], None]


class Provider(Protocol):
    def plan(self) -> list[ClusterPlan]: ...

    def up(self, progress: ProgressCallback) -> list[ClusterOutcome]: ...

    def nodes(self) -> list[Node]: ...

    def down(self, progress: ProgressCallback) -> list[ClusterOutcome]: ...

    def extra_inventory_vars(self) -> dict[str, object]: ...
