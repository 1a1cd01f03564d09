"""Turns command results into tables (people) or JSON (`--output json`: scripts and tests). Nothing else prints them.

JSON goes to stdout as one document and nothing else does: progress then goes to stderr (operations/commands.py).
"""

from __future__ import annotations

import json
import time
from typing import Any

from rich.console import Console
from rich.text import Text

from fleetdeploy.health.verdict import HealthResult
from fleetdeploy.orchestrator.api import OrchestratorView, short_time
from fleetdeploy.orchestrator.join import JoinResult
from fleetdeploy.output.plain import cost_text
from fleetdeploy.output.progress import print_table, styled
from fleetdeploy.output.results import (
    CanaryResult,
    ConfigureResult,
    CostResult,
    DownResult,
    ExecResult,
    InventoryResult,
    PlanResult,
    RollingResult,
    StatusResult,
    UpResult,
    to_json,
)
from fleetdeploy.providers.base import ClusterOutcome


def show(console: Console, result: object, output: str) -> None:
    """Print `result` as JSON or as its tables."""
    if output == "json":
        console.out(json.dumps(to_json(result), indent=2, sort_keys=False), highlight=False)
        return
    renderer = _TABLES.get(type(result))
    if renderer is None:
        raise TypeError(f"no table renderer for {type(result).__name__}")
    renderer(console, result)


def _plain(console: Console, text: str) -> None:
    console.print(Text(text), highlight=False)


def _outcomes(console: Console, outcomes: list[ClusterOutcome]) -> None:
    rows = [(o.cluster, styled(o.action), o.region, o.error or "") for o in outcomes]
    print_table(console, "Clusters", ("cluster", "result", "region", "error"), rows)


def _configure(console: Console, result: ConfigureResult) -> None:
    title = f"{'Drift report' if result.check else 'Configure summary'} ({result.seconds:.1f} s)"
    rows = [(n.node, styled(n.state), n.ok, n.changed, n.message) for n in result.nodes]
    print_table(console, title, ("node", "result", "ok", "changed", "error"), rows)
    if result.check:
        for node in (n for n in result.nodes if n.changed or n.drift):
            console.print(Text.assemble((node.node, "bold"), f": {node.changed} task(s) would change"))
            for found in node.drift:
                _plain(console, f"  ! {found}")
            for task in node.changed_tasks:
                _plain(console, f"  ~ {task}")
            for diff in node.diffs:
                _plain(console, diff)
        drifted = result.drifted
        _plain(console, f"drift on: {', '.join(drifted)}" if drifted else "no drift: every node matches its roles")
    if result.run_log and not result.ok:
        _plain(console, f"full Ansible output: {result.run_log}")


ORCHESTRATOR_COLUMNS = ("orchestrator", "approval", "last heartbeat")


def _orchestrator_cells(view: OrchestratorView | None) -> tuple[str | Text, str, str]:
    if view is None:
        return "unknown", "-", "-"
    connection = Text(view.connection, style="green" if view.connection == "CONNECTED" else "red")
    heartbeat = short_time(view.last_heartbeat) if view.last_heartbeat else "-"
    return connection, view.approval or "-", heartbeat


def _health(console: Console, result: HealthResult) -> None:
    with_orchestrator = bool(result.orchestrator_note) or any(n.orchestrator for n in result.nodes)
    columns = ("node", "health", *(ORCHESTRATOR_COLUMNS if with_orchestrator else ()), "failing checks")
    rows = [(n.node, styled(n.health), *(_orchestrator_cells(n.orchestrator) if with_orchestrator else ()),
             "; ".join(n.failing)) for n in result.nodes]
    print_table(console, "Fleet health", columns, rows)
    if result.orchestrator_note:
        _plain(console, f"{result.orchestrator_note} (node checks above are unaffected)")
    for node in (n for n in result.nodes if n.interruption):
        console.print(Text(f"spot interruption notice on {node.node}: {node.interruption}", style="bold yellow"),
                      highlight=False)
    if result.note:
        _plain(console, result.note)


def _joined(console: Console, result: JoinResult) -> None:
    waiting = [n for n in result.nodes if n.orchestrator is None or not n.orchestrator.ready]
    if not waiting:
        _plain(console, f"orchestrator: all {len(result.nodes)} configured node(s) CONNECTED and APPROVED "
                        f"({result.seconds:.1f} s)")
    else:
        rows = [(n.node, *_orchestrator_cells(n.orchestrator), n.orchestrator.reason if n.orchestrator else "")
                for n in waiting]
        print_table(console, f"Not joined after {result.seconds:.1f} s", ("node", *ORCHESTRATOR_COLUMNS, "why"),
                    rows)
    if result.note:
        _plain(console, f"orchestrator: {result.note}")


def _up(console: Console, result: UpResult) -> None:
    _outcomes(console, result.clusters)
    _plain(console, f"inventory: {result.inventory}")
    if result.configure is not None:
        _configure(console, result.configure)
    if result.joined is not None:
        _joined(console, result.joined)
    if result.health is not None:
        _health(console, result.health)


def _status(console: Console, result: StatusResult) -> None:
    rows = [(c.cluster, c.cloud, styled("ok" if c.ok else ("failed" if c.up == 0 else "changed")),
             f"{c.up}/{c.wanted}", c.price or "-") for c in result.clusters]
    print_table(console, f"Fleet '{result.fleet}'", ("cluster", "cloud", "state", "nodes up", "price (as wanted)"),
                rows)
    if result.fleet_price:
        _plain(console, f"fleet: {result.fleet_price}")
    with_orchestrator = bool(result.orchestrator_note) or any(n.orchestrator for n in result.nodes)
    rows = [(n.node, n.region, n.zone or "-", n.address, n.instance_id, n.market,
             *(_orchestrator_cells(n.orchestrator) if with_orchestrator else ())) for n in result.nodes]
    print_table(console, "Nodes", ("node", "region", "zone", "address", "instance id", "market",
                                   *(ORCHESTRATOR_COLUMNS if with_orchestrator else ())), rows)
    if result.orchestrator_note:
        _plain(console, result.orchestrator_note)
    if result.cost is not None:
        _plain(console, cost_line(result.cost))
    for node in (n for n in result.nodes if n.interruption):
        console.print(Text(f"spot interruption notice on {node.node}: {node.interruption} (the watcher's last tick)",
                           style="bold yellow"), highlight=False)


def cost_line(result: CostResult) -> str:
    """`cost so far: $1.23 over the last 30 days (estimate at list prices ...)`, or why there is none."""
    why = result.basis if result.total is not None else result.error or result.unknown
    return cost_text(result.total, result.days, why)


def _utc(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(at))


def _duration(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"


def _cost(console: Console, result: CostResult) -> None:
    rows = [(c.cluster, c.region, c.nodes, _utc(c.launched_at) if c.launched_at else "-",
             _duration(c.up_seconds), "unknown" if c.cost is None else f"${c.cost:.2f}") for c in result.clusters]
    print_table(console, f"Cost of fleet '{result.fleet}'", ("cluster", "region", "nodes", "last launched",
                                                               "up (in the window)", "cost so far"), rows)
    _plain(console, cost_line(result))


def _plan(console: Console, result: PlanResult) -> None:
    rows = [(c.cluster, c.action, c.cloud, c.region, c.nodes, " > ".join(c.candidates), c.price or "-")
            for c in result.clusters]
    print_table(console, f"Plan for fleet '{result.fleet}' ({result.provider})",
                ("cluster", "up will", "cloud", "region", "nodes", "tried in order", "price"), rows)
    if result.fleet_price:
        _plain(console, f"fleet: {result.fleet_price}")
    for cluster in result.clusters:
        # Raw text: the task must stay valid YAML (no markup, no wrapping, no emoji codes).
        console.out(f"# {cluster.cluster}\n{cluster.task.rstrip()}", highlight=False)


def _rolling(console: Console, result: RollingResult) -> None:
    title = (f"Rolling {'plan' if result.check else 'configure'}: batches of up to {result.batch_size} node(s), "
             f"stop when more than {result.max_unhealthy} node(s) fail the gate")
    rows: list[tuple[object, ...]] = []
    for batch in result.batches:
        state = "ok" if batch.passed and not batch.failed else ("changed" if batch.passed else "failed")
        rows.append((batch.number, styled(state), ", ".join(batch.nodes), ", ".join(batch.failed) or "-"))
    first_untouched = len(result.batches) + 1
    for offset, names in enumerate(result.untouched):
        rows.append((first_untouched + offset, styled("pending"), ", ".join(names), "-"))
    print_table(console, title, ("batch", "result", "nodes", "failed the gate"), rows)
    if result.drift is not None:
        _configure(console, result.drift)
    for batch in result.batches:
        if batch.failed:
            _configure(console, batch.configure)
            if batch.health is not None:
                _health(console, batch.health)
    version_rows = [(v.node, styled(v.health), v.bacalhau or "-", v.sensor or "-") for v in result.versions]
    print_table(console, "What each node runs now", ("node", "health", "bacalhau", "sensor"), version_rows)
    if result.stopped:
        untouched = sum(len(b) for b in result.untouched)
        _plain(console, f"stopped after batch {len(result.batches)}: {untouched} node(s) left untouched; fix the "
                        "cause (or the fleet file) and run configure --rolling again")


def _exec(console: Console, result: ExecResult) -> None:
    for node in result.nodes:
        console.print(Text.assemble((node.node, "bold"), " ", styled("ok" if node.ok else "failed")))
        for output in node.outputs:
            console.print(Text(output), highlight=False)
        if node.message:
            console.print(Text(f"  {node.message}"), highlight=False)


def _inventory(console: Console, result: InventoryResult) -> None:
    _plain(console, f"inventory: {result.path} ({result.nodes} nodes)")


def _canary(console: Console, result: CanaryResult) -> None:
    rows = [(n.node, styled("ok" if n.ok else "failed"), "yes" if n.ran else "no", "yes" if n.right else "no",
             "-" if n.rows is None else n.rows, "-" if n.seconds is None else f"{n.seconds:.1f} s", n.reason)
            for n in result.nodes]
    print_table(console, f"Canary ({result.image}, {result.seconds:.1f} s)",
                ("node", "result", "ran", "output right", "rows", "took", "why not"), rows)
    passed = sum(1 for n in result.nodes if n.ok)
    _plain(console, f"canary: {passed}/{len(result.nodes)} node(s) ran the job and answered right")


_TABLES: dict[type, Any] = {
    ConfigureResult: _configure,
    HealthResult: _health,
    UpResult: _up,
    StatusResult: _status,
    PlanResult: _plan,
    RollingResult: _rolling,
    InventoryResult: _inventory,
    ExecResult: _exec,
    CostResult: _cost,
    CanaryResult: _canary,
    DownResult: lambda console, result: _outcomes(console, result.clusters),
}
