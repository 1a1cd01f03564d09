"""Plain-text tables for places without a terminal renderer: the health table `playbooks/health.yml` prints."""

from __future__ import annotations

from fleetdeploy.health.verdict import HealthResult, NodeHealth
from fleetdeploy.orchestrator.api import NOT_LISTED, short_time

HEALTH_COLUMNS = ("HOST", "OVERALL", "ORCHESTRATOR", "FAILING CHECKS")


def cost_text(total: float | None, days: int, basis_or_reason: str, as_of: str = "") -> str:
    """`cost so far: $1.23 over the last 30 days (what it is)`, or `cost so far: unknown (why)`: the one wording of
    `status`, `cost` and the report page."""
    when = f"; as of {as_of}" if as_of else ""
    if total is None:
        return f"cost so far: unknown ({basis_or_reason}{when})"
    return f"cost so far: ${total:.2f} over the last {days} days ({basis_or_reason}{when})"


def _orchestrator_column(node: NodeHealth, result: HealthResult) -> str:
    if result.orchestrator_note:
        return "unknown"
    view = node.orchestrator
    if view is None:
        return "-"  # no orchestrator.api in the fleet file
    if view.connection == NOT_LISTED:
        return NOT_LISTED
    heartbeat = f" {short_time(view.last_heartbeat)}" if view.last_heartbeat else ""
    return f"{view.connection} {view.approval or '-'}{heartbeat}"


def health_table(result: HealthResult) -> list[str]:
    """One line per node under a header, columns padded to fit; failure reasons are never cut."""
    rows = [(n.node, n.health.value, _orchestrator_column(n, result), "; ".join(n.failing)) for n in result.nodes]
    widths = [max([len(HEALTH_COLUMNS[i]), *(len(row[i]) for row in rows)]) for i in range(3)]
    lines = ["  ".join([*(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)), row[3]]).rstrip()
             for row in [HEALTH_COLUMNS, *rows]]
    if result.orchestrator_note:
        lines.append(f"{result.orchestrator_note} (node checks above are unaffected)")
    lines += [f"spot interruption notice on {n.node}: {n.interruption}" for n in result.nodes if n.interruption]
    return lines
