"""Provider-neutral records of clusters and nodes, and the protocol every provider implements."""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol

from fleetdeploy.jsondoc import JSONObject


class Outcome(enum.StrEnum):
    """What happened to one cluster in `up` or `down`."""

    LAUNCHED = "launched"
    RELAUNCHED = "relaunched"
    RESIZED = "resized"
    UNCHANGED = "unchanged"
    REMOVED = "removed"
    FAILED = "failed"

    @property
    def ok(self) -> bool:
        return self is not Outcome.FAILED


class FailureKind(enum.StrEnum):
    """Why a launch failed, as far as the provider can tell: what the watcher's backoff is chosen by."""

    CAPACITY = "capacity"  # no capacity or quota left where it was asked for: try again later
    CREDENTIALS = "credentials"  # no usable cloud credentials or access: a person must act
    TRANSIENT = "transient"  # network, API server, a node that did not boot: try again soon
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ClusterOutcome:
    """What happened to one cluster during `up` or `down`; `ok` follows from the outcome."""

    cluster: str
    region: str
    action: Outcome
    error: str | None = None
    failure: FailureKind | None = None  # set with FAILED when the provider can classify the error

    @property
    def ok(self) -> bool:
        return self.action.ok



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
    cloud: str = "aws"  # fleet/clouds.py's spelling; a local node carries its region's cloud as a label
    # The operator's own key (the fleet file's ssh.identity_file), offered before the provider's `key_file`: it
    # works once the ssh_access role has installed it, the provider's key works from the first boot.
    operator_key_file: str | None = None

    @property
    def identity_files(self) -> tuple[str, ...]:
        """The keys to offer, in order: the operator's own, then the provider's (each once; none empty)."""
        return tuple(dict.fromkeys(k for k in (self.operator_key_file, self.key_file) if k))


class ActionKind(enum.Enum):
    """What `up` does to one cluster; `outcome` is the action a successful run reports."""

    LAUNCH = "launch"
    HEAL = "heal"
    RESIZE = "resize"
    NOTHING = "nothing"

    @property
    def outcome(self) -> Outcome:
        return {"launch": Outcome.LAUNCHED, "heal": Outcome.RELAUNCHED, "resize": Outcome.RESIZED,
                "nothing": Outcome.UNCHANGED}[self.value]


@dataclass(frozen=True)
class ClusterAction:
    """One cluster's next step: `have` is the node count it was launched with (None when it does not exist)."""

    kind: ActionKind
    wanted: int
    have: int | None = None

    def describe(self) -> str:
        if self.kind is ActionKind.LAUNCH:
            return f"launch {self.wanted} node(s)"
        if self.kind is ActionKind.RESIZE:
            return f"resize {self.have} -> {self.wanted} node(s)"
        if self.kind is ActionKind.HEAL:
            return f"heal: relaunch to bring back missing node(s) of {self.wanted}"
        return "nothing to do"


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
    action: ClusterAction | None = None  # None: the current state could not be read
    candidates: tuple[str, ...] = ()  # what the provider tries, in order (SkyPilot: instance type, market, zone)


# Called with (cluster, message) as work on a cluster progresses; the CLI shows it live.
ProgressCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class ClusterPrice:
    cluster: str
    per_hour: float | None  # None: unknown, and `unknown` says why
    unknown: str | None = None


@dataclass(frozen=True)
class FleetPrices:
    """What the fleet costs per hour as its file asks for it, per cluster and in all (None when any is unknown:
    a partial sum would understate the cost)."""

    clusters: tuple[ClusterPrice, ...]
    per_hour: float | None
    unknown: str | None = None

    def of(self, cluster: str) -> ClusterPrice | None:
        return next((c for c in self.clusters if c.cluster == cluster), None)


@dataclass(frozen=True)
class ClusterCost:
    """What one cluster has cost so far (within the report's window)."""

    cluster: str
    region: str
    nodes: int  # nodes of its last launch
    launched_at: float | None  # epoch seconds of its last launch; None: never launched in the window
    up_seconds: float  # how long it ran within the window (every launch of the name added up)
    cost: float | None  # dollars; None: the provider could not price it (FleetCost.unknown says why)


@dataclass(frozen=True)
class FleetCost:
    """What the fleet has cost so far: per cluster, in all, and on what basis (never presented as a bill)."""

    clusters: tuple[ClusterCost, ...]
    basis: str  # e.g. "estimate at list prices (SkyPilot's cost report)"
    error: str = ""  # why there are no figures (one line); then `clusters` is empty
    unknown: str = ""  # why some clusters have no cost; then there is no total (a part would understate it)

    @property
    def total(self) -> float | None:
        costs = [c.cost for c in self.clusters]
        return None if self.error or any(c is None for c in costs) else sum(c for c in costs if c is not None)

    def summary(self) -> tuple[float | None, str]:
        """(the total, what it is) or (None, why there is none): what the report page shows."""
        total = self.total
        return (total, self.basis) if total is not None else (None, self.error or self.unknown)


def format_price(per_hour: float | None, unknown: str | None = None) -> str:
    """`$0.0375/h`, or `price unknown (<reason>)`."""
    if per_hour is None:
        return f"price unknown ({unknown or 'not in catalog'})"
    return f"${per_hour:.4f}/h"


@dataclass(frozen=True)
class Survey:
    """The fleet's clusters as the provider sees them now (the watcher's view of the provider)."""

    actions: dict[str, ClusterAction]  # cluster -> what `up` would do; a cluster missing here: state unknown
    nodes: list[Node]
    in_flight: frozenset[str] = frozenset()  # clusters with a launch still running on the provider's side
    error: str = ""  # why the state could not be read or refreshed: never a reason to think nodes are lost


class Provider(Protocol):
    """What every provider does; providers/registry.py says which exist and makes them."""

    def plan(self) -> list[ClusterPlan]:
        """What `up` would do per cluster, from the provider's local state only (no cloud call)."""
        ...

    def preflight(self, launching: bool = False) -> None:
        """Cheap checks that fail a whole command (InputError) before anything is written, locked or started;
        `launching`: the command may create machines (up), so where they go is checked too. `down` never is: a
        mistake in where a fleet would go must not keep a running fleet from being removed."""
        ...

    def up(self, progress: ProgressCallback, only: Collection[str] | None = None) -> list[ClusterOutcome]:
        """Launch, heal or resize every cluster (or the clusters named in `only`); one failing cluster never
        stops the others."""
        ...

    def survey(self) -> Survey:
        """What `up` would do per cluster and the nodes, refreshed from the cloud where the provider can (a
        refresh that fails is reported in `error` and the last known state is used), and launches in flight."""
        ...

    def nodes(self) -> list[Node]:
        """Every node of the fleet that looks reachable now."""
        ...

    def down(self, progress: ProgressCallback) -> list[ClusterOutcome]:
        """Remove this fleet's clusters, and nothing else."""
        ...

    def extra_inventory_vars(self) -> JSONObject:
        """Variables the provider's nodes need beyond the fleet's own (e.g. no metadata service)."""
        ...

    def orchestrator_api_url(self) -> str | None:
        """The API of the orchestrator the provider runs for the fleet (`orchestrator.api: local`); None when it
        runs none, or it is not running."""
        ...

    def prices(self) -> FleetPrices | None:
        """Hourly prices from local data only (never a cloud call); None when nothing is billed."""
        ...

    def costs(self, days: int) -> FleetCost:
        """What the fleet's clusters have cost in the last `days` days (a failure to read is in `error`)."""
        ...
