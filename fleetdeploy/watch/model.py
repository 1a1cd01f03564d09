"""The watcher's data: what one tick observed, what it decided, and the alerts it tells people about."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from fleetdeploy.health.verdict import NodeHealth
from fleetdeploy.orchestrator.api import OrchestratorAnswer
from fleetdeploy.providers.base import ClusterAction, FleetPrices


class AlertKind(enum.StrEnum):
    """Transitions worth a message (watch.webhook_url) and an event."""

    NODE_LOST = "node_lost"
    HEAL_STARTED = "heal_started"
    HEAL_DONE = "heal_done"
    HEAL_FAILED = "heal_failed"
    DRIFT_FIXED = "drift_fixed"
    CONFIGURE_FAILED = "configure_failed"
    UNHEALTHY = "unhealthy"
    RECOVERED = "recovered"
    INTERRUPTION_NOTICE = "interruption_notice"
    ORCHESTRATOR_UNREADABLE = "orchestrator_unreadable"
    PROVIDER_UNREADABLE = "provider_unreadable"
    LAUNCH_BUDGET = "launch_budget"
    PRICE_CAP = "price_cap"
    FLEET_FILE_INVALID = "fleet_file_invalid"


@dataclass(frozen=True)
class Alert:
    kind: AlertKind
    subject: str  # a region, a node, "orchestrator", "provider", "fleet file"
    text: str  # one line for people; never a secret

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.subject}"


class Reason(enum.StrEnum):
    """Why the watcher configures a node."""

    NEW = "new"  # never configured (or its configure never completed)
    DRIFT = "drift"  # its convergence stamp no longer holds
    UNHEALTHY = "unhealthy"  # unhealthy for watch.unhealthy_ticks ticks in a row


@dataclass(frozen=True)
class RegionView:
    region: str
    cluster: str
    wanted: int
    action: ClusterAction | None  # what `up` would do now; None: the provider's state is unknown
    in_flight: bool = False  # a launch is still running on the provider's side


@dataclass(frozen=True)
class NodeView:
    node: str  # inventory host name (= Bacalhau node ID)
    region: str
    health: NodeHealth | None  # None: not checked this tick
    converged: bool | None  # the convergence stamp holds; None: could not be checked (unreachable)
    drift: tuple[str, ...] = ()
    interruption: str = ""  # a spot interruption notice the node reported ("" when none)


@dataclass(frozen=True)
class Observation:
    at: float  # epoch seconds
    regions: tuple[RegionView, ...]
    nodes: tuple[NodeView, ...]
    orchestrator: OrchestratorAnswer | None  # None: the fleet file names no orchestrator API
    provider_error: str = ""  # reading or refreshing the provider's state failed (never "nodes lost")
    prices: FleetPrices | None = None  # None: nothing is billed


@dataclass(frozen=True)
class RegionHeal:
    region: str
    cluster: str
    action: ClusterAction


@dataclass
class Decision:
    heal: list[RegionHeal] = field(default_factory=list)
    configure: dict[str, Reason] = field(default_factory=dict)  # node -> why
    alerts: list[Alert] = field(default_factory=list)
    hold: str = ""  # why nothing is acted on this tick ("" when the watcher may act)
    notes: list[str] = field(default_factory=list)  # what was left alone and why (backoff, in flight, caps)

    @property
    def acts(self) -> bool:
        return bool(self.heal or self.configure)
