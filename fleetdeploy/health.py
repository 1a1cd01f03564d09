"""Turns what the health playbook reports per node (the node's own verdict) into NodeHealth results."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fleetdeploy.results import Health, NodeHealth
from fleetdeploy.runner import RunResult

# health.yml hands each node's status JSON (written by the node's health script) to the controller in this fact.
STATUS_REPORT = "fleet_report_health_status"


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


def node_health(result: RunResult, hosts: Iterable[str]) -> list[NodeHealth]:
    """One verdict per node. Healthy or not is decided once, by the node's health script (`status.healthy`)."""
    rows = []
    for host in sorted(hosts):
        run = result.hosts.get(host)
        if run is not None and run.unreachable:
            rows.append(NodeHealth(host, Health.UNREACHABLE, [run.message] if run.message else []))
            continue
        if run is not None and run.reports.get("fleet_report_not_configured"):
            rows.append(NodeHealth(host, Health.NOT_CONFIGURED, []))
            continue
        status = run.reports.get(STATUS_REPORT) if run is not None else None
        if not isinstance(status, dict):
            detail = run.message if run is not None and run.message else "no health status was collected"
            rows.append(NodeHealth(host, Health.UNHEALTHY, [f"health check did not run: {detail}"]))
            continue
        verdict = Health.HEALTHY if status.get("healthy") is True else Health.UNHEALTHY
        rows.append(NodeHealth(host, verdict, failing_checks(status)))
    return rows
