"""The steps several commands share: configure (an Ansible run), health (an SSH exchange per node), and the wait
for nodes to join the orchestrator.

Each returns a result object (results.py); commands combine them (up, configure, configure --rolling).
"""

from __future__ import annotations

import time

from fleetdeploy.fleet.configure_spec import ConfigureMode
from fleetdeploy.health.verdict import HealthResult, NodeReport, judge
from fleetdeploy.operations.context import Context
from fleetdeploy.operations.node_exchange import ask_nodes
from fleetdeploy.orchestrator.join import JoinResult, wait_for_join
from fleetdeploy.output.progress import ProgressBoard
from fleetdeploy.output.results import ConfigureResult, NodeRun
from fleetdeploy.paths import SITE_PLAYBOOK
from fleetdeploy.providers.base import Node
from fleetdeploy.runs.exchange import ExchangeResult
from fleetdeploy.runs.runlog import RunLog
from fleetdeploy.runs.runner import RunResult, run_ansible


def ansible_run(ctx: Context, title: str, targets: list[str], **kwargs: object) -> RunResult:
    """One Ansible run with a live board; its full output goes to the fleet's run log."""
    with RunLog.open(ctx.fleet.name, title) as log, ProgressBoard(ctx.progress_console, title, targets) as board:
        result = run_ansible(board, ctx.inventory.path, targets, run_log=log.path, **kwargs)  # type: ignore[arg-type]
    result.run_log = str(log.path)
    ctx.inventory.explain_refusals(result)
    return result


def node_local_run(ctx: Context, title: str, nodes: dict[str, Node], check: bool,
                   extra_vars: dict[str, bool | int | str]) -> RunResult:
    """site.yml run by each node itself (nodelocal/), shown and logged as a controller-side run is.

    Unless the run is --full, each node is first asked site.yml's own convergence probe over the exchange (the
    same code and rule as its first task): a node whose stamp holds ends there, as it would after that task, and
    only the others get the bundle and run ansible-playbook (whose first task asks the probe again)."""
    from fleetdeploy.nodelocal.run import run_on_nodes  # only node-mode runs build and send the bundle

    with RunLog.open(ctx.fleet.name, title) as log, ProgressBoard(ctx.progress_console, title, list(nodes)) as board:
        verdicts: dict[str, ExchangeResult] = {}
        if not extra_vars.get("fleet_full_run"):
            def probed(name: str, got: ExchangeResult) -> None:
                board.update(name, "unreachable" if got.unreachable else "running", got.message or "probed")

            verdicts = ask_nodes(ctx, nodes, convergence=True, health=False, done=probed)
        result = run_on_nodes(board, ctx.inventory.path, nodes, ctx.inventory.known_hosts, check=check,
                              extra_vars=extra_vars, run_log=log.path, verdicts=verdicts)
    result.run_log = str(log.path)
    return result


def node_runs(result: RunResult) -> list[NodeRun]:
    return [NodeRun(node=name, state=r.state, ok=r.ok, changed=r.changed, failed=r.failed, skipped=r.skipped,
                    message=r.message, changed_tasks=r.changed_tasks, diffs=r.diffs, outputs=r.outputs,
                    drift=[str(d) for d in r.reports.get("fleet_report_drift") or []])
            for name, r in sorted(result.hosts.items())]


def configure_nodes(ctx: Context, nodes: list[Node], limit: list[Node] | None, check: bool,
                    full: bool = False, mode: ConfigureMode | None = None) -> ConfigureResult:
    """Apply site.yml, from the controller or by each node itself (`mode`, else the fleet file's). A node whose
    convergence stamp still holds (same digest, nothing it records has drifted) ends after one task; with full,
    every node runs every task."""
    names = [ctx.host(n) for n in (limit if limit is not None else nodes)]
    title = "Drift check (no changes made)" if check else "Configuring nodes"
    started = time.monotonic()
    if (mode or ctx.fleet.configure.configure_mode) is ConfigureMode.NODE:
        by_name = {ctx.host(n): n for n in (limit if limit is not None else nodes)}
        result = node_local_run(ctx, title + " (each node runs the roles)", by_name, check=check,
                                extra_vars={"fleet_full_run": full})
    else:
        result = ansible_run(ctx, title, names, playbook=SITE_PLAYBOOK, limit=names if limit is not None else None,
                             check=check, extra_vars={"fleet_full_run": full})
    seconds = time.monotonic() - started
    if not check:
        _mark_incomplete(result)
    return ConfigureResult(check=check, seconds=round(seconds, 1), nodes=node_runs(result), run_log=result.run_log)


def _mark_incomplete(result: RunResult) -> None:
    """A node that neither finished site.yml nor was skipped as converged did not converge, whatever it counted."""
    for host in result.hosts.values():
        done = host.reports.get("fleet_report_complete") or host.reports.get("fleet_report_converged")
        if not done and not host.failed and not host.unreachable:
            host.failed = 1
            host.message = host.message or "the run ended before this node's configuration completed"


def health_of(ctx: Context, nodes: list[Node], limit: list[Node] | None = None) -> HealthResult:
    """Run every node's health check now (one SSH exchange per node, no Ansible run), read the orchestrator's list
    once, and judge (health.verdict, as playbooks/health.yml does)."""
    names = {ctx.host(n): n for n in (limit or nodes)}
    with ProgressBoard(ctx.progress_console, "Health check", list(names)) as board:
        def done(name: str, got: ExchangeResult) -> None:
            board.update(name, "unreachable" if got.unreachable else "done", got.message)

        answers = ask_nodes(ctx, names, convergence=False, done=done)
    reports = [NodeReport.from_facts(name, got.facts, unreachable=got.unreachable, message=got.message)
               for name, got in answers.items()]
    api = ctx.orchestrator_api()
    return judge(reports, api.read() if api is not None else None)


def wait_for_nodes(ctx: Context, names: list[str], timeout_s: float) -> JoinResult | None:
    """Until the orchestrator lists the configured nodes as CONNECTED and APPROVED (bounded by timeout_s)."""
    api = ctx.orchestrator_api()
    if api is None or not names:
        return None
    with ProgressBoard(ctx.progress_console, "Waiting for the orchestrator to list the nodes", names) as board:
        return wait_for_join(api, names, timeout_s, board)
