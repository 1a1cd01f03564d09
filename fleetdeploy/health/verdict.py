"""Turns what the health playbook reports per node into NodeHealth results.

Two views decide: the node's own health script (`status.healthy`), and, when the fleet file names the
orchestrator's API, the orchestrator's node list (a node it does not list as CONNECTED and APPROVED has not joined).
health.yml asks the API once and hands each node its NodeState; the readiness rule is orchestrator_api.readiness.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fleetdeploy.orchestrator.api import OrchestratorNode, OrchestratorView, view_of
from fleetdeploy.runs.runner import RunResult

# health.yml hands each node's status JSON (written by the node's health script) to the controller in this fact.
STATUS_REPORT = "fleet_report_health_status"
# ... and the orchestrator's answer for it: {"api": url, "error": one line or "", "node": NodeState or null}.
ORCHESTRATOR_REPORT = "fleet_report_orchestrator"


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


@dataclass
class HealthResult:
    nodes: list[NodeHealth]
    note: str = ""  # a fleet-level problem (e.g. the run itself failed): never charged to one node
    orchestrator_note: str = ""  # why the orchestrator's view is missing (one line), when orchestrator.api is set

    @property
    def ok(self) -> bool:
        return bool(self.nodes) and all(n.health.ok for n in self.nodes)



def failing_checks(status: dict[str, Any]) -> list[str]:
    """The names (and short details) of the checks the node's script reported as failing, for display only."""
    checks = status.get("checks", [])
    if isinstance(checks, dict):
        checks = [{"name": name, **value} for name, value in checks.items() if isinstance(value, dict)]
    failing = []
    for check in checks:
        if not check.get("ok", False):
            detail = str(check.get("detail", "")).strip()
            failing.append(f"{check.get('name', '?')}" + (f" ({detail[:80]})" if detail else ""))
    return failing


def running_images(status: dict[str, Any]) -> dict[str, str]:
    """container -> image, from the container checks of the node's status (what the node runs right now)."""
    checks = status.get("checks", [])
    return {str(c["name"]).split(":", 1)[1]: str(c["image"]) for c in checks if isinstance(c, dict)
            and str(c.get("name", "")).startswith("container:") and c.get("image")}


def _node_verdict(result: RunResult, host: str) -> tuple[Health, list[str], dict[str, str]]:
    run = result.hosts.get(host)
    if run is not None and run.unreachable:
        return Health.UNREACHABLE, [run.message] if run.message else [], {}
    if run is not None and run.reports.get("fleet_report_not_configured"):
        return Health.NOT_CONFIGURED, [], {}
    status = run.reports.get(STATUS_REPORT) if run is not None else None
    if not isinstance(status, dict):
        detail = run.message if run is not None and run.message else "no health status was collected"
        return Health.UNHEALTHY, [f"health check did not run: {detail}"], {}
    verdict = Health.HEALTHY if status.get("healthy") is True else Health.UNHEALTHY
    return verdict, failing_checks(status), running_images(status)


def _orchestrator_view(result: RunResult, host: str) -> tuple[OrchestratorView | None, str]:
    """The node's row in the orchestrator's answer, or (None, why it is missing)."""
    run = result.hosts.get(host)
    report = run.reports.get(ORCHESTRATOR_REPORT) if run is not None else None
    if not isinstance(report, dict):
        return None, ""
    if report.get("error"):
        return None, str(report["error"])
    state = report.get("node")
    return view_of(OrchestratorNode.from_node_state(state) if isinstance(state, dict) else None), ""


def node_health(result: RunResult, hosts: Iterable[str]) -> tuple[list[NodeHealth], str]:
    """One verdict per node, and a one-line note when the orchestrator's view could not be read.

    An unreadable API never fails a node: the node checks that ran still decide (the note says what is missing).
    """
    rows, notes = [], []
    for host in sorted(hosts):
        health, failing, images = _node_verdict(result, host)
        view, note = _orchestrator_view(result, host)
        if note and note not in notes:
            notes.append(note)
        if view is not None and not view.ready:
            failing = [*failing, f"orchestrator: {view.reason}"]
            if health is Health.HEALTHY:
                health = Health.UNHEALTHY
        rows.append(NodeHealth(host, health, failing, view, images))
    return rows, "; ".join(notes)
