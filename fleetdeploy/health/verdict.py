"""One verdict per node, judged here and nowhere else: `deploy.py health`, `up`, the rolling gate and
`ansible-playbook playbooks/health.yml` (through its controller-side plugin) all call `judge`.

Two views decide: the node's own health script (its status document's `healthy`), and, when the fleet file names
the orchestrator's API, the orchestrator's node list (a node it does not list as CONNECTED and APPROVED has not
joined; the rule is orchestrator.api.readiness). What the node's exchange gave back arrives as a NodeReport.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fleetdeploy.jsondoc import JSON, JSONMapping, as_list
from fleetdeploy.orchestrator.api import OrchestratorAnswer, OrchestratorView

# The facts the health exchange (playbooks/action_plugins/fleet_health.py) sets for the controller: the node's
# status document, or that the node was never configured, or why the check did not run.
STATUS_FACT = "fleet_report_health_status"
NOT_CONFIGURED_FACT = "fleet_report_not_configured"
ERROR_FACT = "fleet_report_health_error"


class Health(enum.StrEnum):
    """One node's verdict in the health check (the node's own health script decides healthy/unhealthy)."""

    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    UNREACHABLE = "unreachable"
    NOT_CONFIGURED = "not configured yet"

    @property
    def ok(self) -> bool:
        return self is Health.HEALTHY


@dataclass(frozen=True)
class NodeHealth:
    node: str
    health: Health  # the verdict: the node's own checks, then the orchestrator's view when it could be read
    failing: list[str]
    orchestrator: OrchestratorView | None = None  # None: no orchestrator.api, or it could not be read
    images: dict[str, str] = field(default_factory=dict)  # container -> image it runs (from the node's check)
    interruption: str = ""  # the spot interruption notice the node read from EC2's metadata ("" when none)


@dataclass
class HealthResult:
    nodes: list[NodeHealth]
    note: str = ""  # a fleet-level problem (e.g. the run itself failed): never charged to one node
    orchestrator_note: str = ""  # why the orchestrator's view is missing (one line), when orchestrator.api is set

    @property
    def ok(self) -> bool:
        return bool(self.nodes) and all(n.health.ok for n in self.nodes)


@dataclass(frozen=True)
class NodeReport:
    """What one node's health exchange gave back: its status document, or why there is none."""

    host: str
    status: JSONMapping | None = None
    unreachable: bool = False
    not_configured: bool = False
    error: str = ""  # why the check did not run, or why the node was unreachable

    @classmethod
    def from_facts(cls, host: str, facts: JSONMapping, *, unreachable: bool = False,
                   message: str = "") -> NodeReport:
        """From the facts the exchange set (and, for a node that failed or was unreachable, Ansible's message)."""
        status = facts.get(STATUS_FACT)
        return cls(
            host=host,
            status=status if isinstance(status, Mapping) else None,
            unreachable=unreachable,
            not_configured=bool(facts.get(NOT_CONFIGURED_FACT)),
            error=str(facts.get(ERROR_FACT) or message or ""),
        )


def _checks(status: JSONMapping) -> list[JSON]:
    """The status's checks as a list (they may also come as an object keyed by check name)."""
    checks = status.get("checks", [])
    if isinstance(checks, dict):
        return [{"name": name, **value} for name, value in checks.items() if isinstance(value, dict)]
    return as_list(checks)


def failing_checks(status: JSONMapping) -> list[str]:
    """The names (and short details) of the checks the node's script reported as failing, for display only."""
    failing = []
    for check in _checks(status):
        if isinstance(check, dict) and not check.get("ok", False):
            detail = str(check.get("detail", "")).strip()
            failing.append(f"{check.get('name', '?')}" + (f" ({detail})" if detail else ""))
    return failing


def running_images(status: JSONMapping) -> dict[str, str]:
    """container -> image, from the container checks of the node's status (what the node runs right now)."""
    return {str(c["name"]).split(":", 1)[1]: str(c["image"]) for c in _checks(status) if isinstance(c, dict)
            and str(c.get("name", "")).startswith("container:") and c.get("image")}


def interruption_of(status: JSONMapping | None) -> str:
    """`terminate at 2026-12-06T10:02:00Z` from the status's spot notice, or ""."""
    notice = status.get("interruption") if status is not None else None
    if not isinstance(notice, Mapping):
        return ""
    return f"{notice.get('action') or 'interruption'} at {notice.get('time') or 'an unknown time'}"


def node_verdict(report: NodeReport) -> tuple[Health, list[str], dict[str, str]]:
    """The node's own verdict, what fails, and what it runs: its script decides, never a guess from here."""
    if report.unreachable:
        return Health.UNREACHABLE, [report.error] if report.error else [], {}
    if report.not_configured:
        return Health.NOT_CONFIGURED, [], {}
    if report.status is None:
        detail = report.error or "no health status was collected"
        return Health.UNHEALTHY, [f"health check did not run: {detail}"], {}
    verdict = Health.HEALTHY if report.status.get("healthy") is True else Health.UNHEALTHY
    return verdict, failing_checks(report.status), running_images(report.status)


def judge(reports: Iterable[NodeReport], orchestrator: OrchestratorAnswer | None = None,
          note: str = "") -> HealthResult:
    """One verdict per node (sorted by name), from its report and the orchestrator's answer when there is one.

    A node the orchestrator does not list as ready is unhealthy even when its own checks pass. An unreadable API
    never fails a node: the node checks decide, and `orchestrator_note` says what is missing.
    """
    rows = []
    for report in sorted(reports, key=lambda r: r.host):
        health, failing, images = node_verdict(report)
        view = orchestrator.view(report.host) if orchestrator is not None else None
        if view is not None and not view.ready:
            failing = [*failing, f"orchestrator: {view.reason}"]
            if health is Health.HEALTHY:
                health = Health.UNHEALTHY
        rows.append(NodeHealth(report.host, health, failing, view, images, interruption_of(report.status)))
    return HealthResult(rows, note=note, orchestrator_note=orchestrator.error if orchestrator is not None else "")
