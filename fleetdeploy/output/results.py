"""What each command found or did, as data: typed outcomes and one result object per command.

Commands compute these; render.py turns them into tables on a terminal or JSON with `--output json`. Tests and
scripts read the JSON (`to_json`), never text meant for people. The JSON shape is documented in
docs/architecture.md ("Machine-readable output") and only grows: fields are added, never renamed or removed.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field

from fleetdeploy.canary.run import NodeCanary
from fleetdeploy.health.verdict import Health, HealthResult
from fleetdeploy.jsondoc import JSON
from fleetdeploy.orchestrator.api import OrchestratorView
from fleetdeploy.orchestrator.join import JoinResult
from fleetdeploy.providers.base import ClusterCost, ClusterOutcome, FleetCost
from fleetdeploy.runs.runner import NodeState


@dataclass
class NodeRun:
    """One node in an Ansible run: counts from Ansible's recap, the first failure, what changed."""

    node: str
    state: NodeState
    ok: int = 0
    changed: int = 0
    failed: int = 0
    skipped: int = 0
    message: str = ""
    changed_tasks: list[str] = field(default_factory=list)
    diffs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    # What the convergence check found different from the node's stamp (empty when converged or with --full).
    drift: list[str] = field(default_factory=list)


@dataclass
class ConfigureResult:
    check: bool
    seconds: float  # the Ansible run alone (the benchmark reads it)
    nodes: list[NodeRun]
    run_log: str | None = None

    @property
    def ok(self) -> bool:
        return all(n.state.ok for n in self.nodes)

    @property
    def drifted(self) -> list[str]:
        return sorted(n.node for n in self.nodes if self.check and (n.changed or n.drift))


@dataclass(frozen=True)
class NodeInfo:
    node: str
    instance_id: str
    cluster: str
    region: str
    zone: str | None
    address: str
    market: str
    cloud: str = "aws"
    orchestrator: OrchestratorView | None = None
    # A spot interruption notice the node reported to the watcher's last tick ("" when none, or no recent tick).
    interruption: str = ""


@dataclass(frozen=True)
class ClusterCount:
    cluster: str
    region: str
    wanted: int
    up: int
    price: str | None  # "$0.0250/h" / "price unknown (...)"; None where nothing is billed (local)
    cloud: str = "aws"

    @property
    def ok(self) -> bool:
        return self.up == self.wanted


@dataclass
class StatusResult:
    fleet: str
    clusters: list[ClusterCount]
    nodes: list[NodeInfo]
    fleet_price: str | None
    orchestrator_note: str = ""
    cost: CostResult | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.clusters)


@dataclass(frozen=True)
class CostResult:
    """`cost`, and the cost line of `status`: what the fleet has cost in the last `days` days."""

    fleet: str
    days: int
    clusters: list[ClusterCost]
    total: float | None  # None: unknown (error or unknown says why)
    basis: str  # what the figures are (an estimate at list prices, or nothing billed)
    error: str = ""  # why there are no figures
    unknown: str = ""  # why some clusters have no cost (then there is no total)

    @property
    def ok(self) -> bool:
        return self.total is not None

    @classmethod
    def of(cls, fleet: str, days: int, found: FleetCost) -> CostResult:
        total = found.total
        return cls(fleet, days, list(found.clusters), None if total is None else round(total, 4), found.basis,
                   found.error, found.unknown)


@dataclass(frozen=True)
class PlannedCluster:
    cluster: str
    region: str
    nodes: int
    action: str  # "launch 2 node(s)", "resize 2 -> 3 node(s)", ..., or "unknown (state not readable)"
    candidates: list[str]
    price: str | None
    task: str  # the rendered provider task (SkyPilot: YAML)
    cloud: str = "aws"


@dataclass
class PlanResult:
    fleet: str
    provider: str
    clusters: list[PlannedCluster]
    fleet_price: str | None


@dataclass(frozen=True)
class NodeOutput:
    node: str
    ok: bool
    outputs: list[str]  # what the command printed on that node
    message: str = ""  # why it failed (or was unreachable)


@dataclass
class ExecResult:
    command: str
    nodes: list[NodeOutput]

    @property
    def ok(self) -> bool:
        return all(n.ok for n in self.nodes)


@dataclass
class InventoryResult:
    path: str
    nodes: int
    text: str


@dataclass
class UpResult:
    clusters: list[ClusterOutcome]
    inventory: str
    configure: ConfigureResult | None
    health: HealthResult | None
    joined: JoinResult | None = None  # None: no orchestrator.api in the fleet file (or nothing to wait for)

    @property
    def ok(self) -> bool:
        return (all(c.ok for c in self.clusters) and (self.configure is None or self.configure.ok)
                and (self.joined is None or self.joined.ok) and (self.health is None or self.health.ok))


@dataclass
class RollingBatch:
    number: int
    nodes: list[str]
    configure: ConfigureResult
    joined: JoinResult | None
    health: HealthResult | None
    failed: list[str]  # this batch's nodes that did not pass the gate
    passed: bool  # the roll went on after it (unhealthy so far <= --max-unhealthy)


@dataclass(frozen=True)
class NodeVersions:
    """What a node runs, read from its containers by the health check (empty when it could not be read)."""

    node: str
    bacalhau: str
    sensor: str
    health: Health


@dataclass
class RollingResult:
    check: bool
    batch_size: int
    max_unhealthy: int
    batches: list[RollingBatch]  # run (with --check: none)
    untouched: list[list[str]]  # batches not run: after a stop, or all of them with --check
    drift: ConfigureResult | None  # --check: what would change, per node
    versions: list[NodeVersions]  # the whole fleet after the roll (or what it runs now, with --check)

    @property
    def stopped(self) -> bool:
        return any(not b.passed for b in self.batches)

    @property
    def ok(self) -> bool:
        if self.check:
            return self.drift is not None and self.drift.ok
        return not self.stopped and all(v.health.ok for v in self.versions)


@dataclass
class DownResult:
    clusters: list[ClusterOutcome]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.clusters)


@dataclass
class CanaryResult:
    fleet: str
    image: str
    seconds: float
    nodes: list[NodeCanary]

    @property
    def ok(self) -> bool:
        return bool(self.nodes) and all(n.ok for n in self.nodes)


def to_json(result: object) -> JSON:
    """A result as plain JSON data (enums as their values, `ok` included where a result has one)."""
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        data = {f.name: to_json(getattr(result, f.name)) for f in dataclasses.fields(result)}
        if isinstance(getattr(type(result), "ok", None), property):
            data["ok"] = bool(getattr(result, "ok"))  # noqa: B009 - `ok` is a property of some results only
        if isinstance(result, ConfigureResult):
            data["drifted"] = to_json(result.drifted)
        return data
    if isinstance(result, enum.Enum):
        return to_json(result.value)
    if isinstance(result, list | tuple):
        return [to_json(item) for item in result]
    if isinstance(result, set | frozenset):
        return [to_json(item) for item in sorted(result, key=str)]
    if isinstance(result, dict):
        return {str(k): to_json(v) for k, v in result.items()}
    if result is None or isinstance(result, str | int | float | bool):
        return result
    return str(result)  # e.g. a Path
