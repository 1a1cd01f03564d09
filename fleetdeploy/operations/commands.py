"""What each CLI command does: fleet file → provider → inventory → Ansible → a result, shown by output/render.py.

Each command computes a result object (results.py) and derives its exit code from that data; rendering (tables
or `--output json`) happens in one place.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable

from rich.text import Text

from fleetdeploy.errors import FleetError, InputError
from fleetdeploy.fleet.model import load_fleet
from fleetdeploy.operations.context import Context
from fleetdeploy.operations.steps import (
    ansible_run,
    configure_nodes,
    health_of,
    node_runs,
    wait_for_nodes,
)
from fleetdeploy.output.capture import original_stderr, original_stdout
from fleetdeploy.output.progress import ProgressBoard, make_console, styled
from fleetdeploy.output.render import show
from fleetdeploy.output.results import (
    ClusterCount,
    DownResult,
    InventoryResult,
    NodeInfo,
    PlannedCluster,
    PlanResult,
    StatusResult,
    UpResult,
)
from fleetdeploy.providers.base import ClusterOutcome, Node, ProgressCallback
from fleetdeploy.runs.ssh import ssh_argv


def run_command(args: argparse.Namespace) -> int:
    fleet = load_fleet(args.fleet)
    if args.local and fleet.provider != "local":
        fleet = fleet.model_copy(update={"provider": "local"})
    ctx = Context(args=args, fleet=fleet, console=make_console(original_stdout()),
                  err_console=make_console(original_stderr()))
    return _COMMANDS[args.command](ctx)


def _provision(ctx: Context, title: str,
               action: Callable[[ProgressCallback], list[ClusterOutcome]]) -> list[ClusterOutcome]:
    clusters = [ctx.fleet.cluster_name(region) for region in ctx.fleet.regions]
    with ProgressBoard(ctx.progress_console, title, clusters) as board:
        outcomes = action(lambda cluster, message: board.update(cluster, "running", message))
        for outcome in outcomes:
            board.update(outcome.cluster, outcome.action, outcome.error or "")
    return outcomes


def cmd_up(ctx: Context) -> int:
    outcomes = _provision(ctx, f"Provisioning fleet '{ctx.fleet.name}'", ctx.provider.up)
    nodes = ctx.refresh_inventory()
    if not nodes:
        show(ctx.console, UpResult(outcomes, str(ctx.inventory_file), None, None), ctx.args.output)
        raise FleetError("no node came up; see the cluster table above")
    # Every node that is not converged is configured: new nodes, nodes whose last run failed or was cut short,
    # nodes adopted from an earlier run, and all of them after the roles or the fleet file changed.
    configured = configure_nodes(ctx, nodes, None, check=False, full=ctx.args.reconfigure_all)
    joined = wait_for_nodes(ctx, [n.node for n in configured.nodes if n.state.ok])
    health = None if ctx.args.skip_health else health_of(ctx, nodes)
    result = UpResult(outcomes, str(ctx.inventory_file), configured, health, joined)
    show(ctx.console, result, ctx.args.output)
    return 0 if result.ok else 1


def _prices(ctx: Context) -> tuple[dict[str, str], str | None]:
    """Hourly price per cluster and for the fleet, as shown; nothing for the local provider (no bill)."""
    if ctx.fleet.provider != "skypilot":
        return {}, None
    from fleetdeploy.providers.skypilot.pricing import format_price, region_prices

    prices = region_prices(ctx.fleet)
    per_cluster = {ctx.fleet.cluster_name(r.region): format_price(r.per_region_hour, r.unknown)
                   for r in prices.regions}
    return per_cluster, format_price(prices.per_hour, prices.unknown)


def cmd_plan(ctx: Context) -> int:
    plans = ctx.provider.plan()
    prices, fleet_price = _prices(ctx)
    clusters = [
        PlannedCluster(
            cluster=p.cluster, region=p.region, nodes=p.num_nodes,
            action=p.action.describe() if p.action else "unknown (state not readable)",
            candidates=list(p.candidates),
            price=prices.get(p.cluster), task=p.rendered_task,
        )
        for p in plans
    ]
    show(ctx.console, PlanResult(ctx.fleet.name, ctx.fleet.provider, clusters, fleet_price), ctx.args.output)
    return 0


def cmd_status(ctx: Context) -> int:
    nodes = ctx.refresh_inventory()
    prices, fleet_price = _prices(ctx)
    clusters = [
        ClusterCount(cluster=ctx.fleet.cluster_name(region), region=region, wanted=spec.count,
                     up=sum(1 for n in nodes if n.cluster == ctx.fleet.cluster_name(region)),
                     price=prices.get(ctx.fleet.cluster_name(region)))
        for region, spec in sorted(ctx.fleet.regions.items())
    ]
    api = ctx.orchestrator_api()
    answer = api.read() if api is not None else None
    infos = [NodeInfo(node=ctx.host(n), instance_id=n.instance_id, cluster=n.cluster, region=n.region, zone=n.zone,
                      address=f"{n.host}:{n.port}", market="spot" if n.spot else "on-demand",
                      orchestrator=answer.view(ctx.host(n)) if answer else None) for n in nodes]
    result = StatusResult(ctx.fleet.name, clusters, infos, fleet_price, answer.error if answer else "")
    show(ctx.console, result, ctx.args.output)
    return 0 if result.ok else 1


def cmd_configure(ctx: Context) -> int:
    limit = ctx.named_nodes(ctx.args.limit) if ctx.args.limit else None
    nodes = ctx.nodes_or_fail()
    if limit is not None:
        limit = ctx.named_nodes([ctx.host(n) for n in limit])  # the same nodes, as the fresh inventory has them
    if ctx.args.rolling:
        from fleetdeploy.operations.rolling_command import configure_rolling

        rolled = configure_rolling(ctx, nodes, limit)
        show(ctx.console, rolled, ctx.args.output)
        return 0 if rolled.ok else 1
    result = configure_nodes(ctx, nodes, limit, check=ctx.args.check, full=ctx.args.full)
    show(ctx.console, result, ctx.args.output)
    return 0 if result.ok else 1


def cmd_health(ctx: Context) -> int:
    limit = ctx.named_nodes(ctx.args.limit) if ctx.args.limit else None
    nodes = ctx.nodes_or_fail()
    result = health_of(ctx, nodes, limit)
    show(ctx.console, result, ctx.args.output)
    return 0 if result.ok else 1


def _node_ssh(node: Node, *command: str) -> list[str]:
    return ssh_argv(node.key_file, node.host, node.port, *command, user=node.user)


def cmd_ssh(ctx: Context) -> int:
    (node,) = ctx.named_nodes([ctx.args.node])
    argv = _node_ssh(node, *ctx.args.remote_command)
    sys.stdout.flush()
    os.execvp(argv[0], argv)
    return 0  # not reached


def cmd_logs(ctx: Context) -> int:
    (node,) = ctx.named_nodes([ctx.args.node])
    remote = ["sudo", "docker", "logs", "--tail", str(ctx.args.tail), ctx.args.service]
    return subprocess.run(_node_ssh(node, *remote), check=False).returncode


def cmd_exec(ctx: Context) -> int:
    if ctx.args.target == "all":
        targets = ctx.nodes_or_fail()
    else:
        targets = ctx.named_nodes([ctx.args.target])
    names = [ctx.host(n) for n in targets]
    command = " ".join(ctx.args.remote_command)  # like ssh: the words form one shell command line
    result = ansible_run(ctx, f"exec: {command}", names, module="ansible.builtin.shell", module_args=command,
                         limit=names, become=ctx.args.sudo)
    for run in node_runs(result):
        ctx.console.print(Text.assemble((run.node, "bold"), " ", styled("ok" if run.state.ok else "failed")))
        for output in run.outputs:
            ctx.console.print(Text(output), highlight=False)
        if run.message:
            ctx.console.print(Text(f"  {run.message}"), highlight=False)
    return 0 if not result.failed_hosts else 1


def cmd_inventory(ctx: Context) -> int:
    nodes = ctx.refresh_inventory()
    text = ctx.inventory_file.read_text(encoding="utf-8")
    if ctx.args.print_it and not ctx.json:
        ctx.console.out(text.rstrip("\n"), highlight=False)  # the YAML itself, nothing else on stdout
        return 0
    show(ctx.console, InventoryResult(str(ctx.inventory_file), len(nodes), text), ctx.args.output)
    return 0


def cmd_down(ctx: Context) -> int:
    clusters = ", ".join(ctx.fleet.cluster_name(r) for r in ctx.fleet.regions)
    if not ctx.args.yes:
        if not sys.stdin.isatty():
            raise InputError("down needs confirmation: run it in a terminal or pass --yes")
        try:
            answer = input(f"Tear down fleet '{ctx.fleet.name}' ({clusters})? Type the fleet name to confirm: ")
        except EOFError:
            answer = ""
        if answer.strip() != ctx.fleet.name:
            ctx.err_console.print("not confirmed: nothing was removed")
            return 2
    outcomes = _provision(ctx, f"Tearing down fleet '{ctx.fleet.name}'", ctx.provider.down)
    result = DownResult(outcomes)
    show(ctx.console, result, ctx.args.output)
    if result.ok:
        ctx.inventory_file.unlink(missing_ok=True)
        return 0
    return 1


_COMMANDS = {
    "up": cmd_up, "plan": cmd_plan, "status": cmd_status, "configure": cmd_configure, "health": cmd_health,
    "ssh": cmd_ssh, "logs": cmd_logs, "exec": cmd_exec, "inventory": cmd_inventory, "down": cmd_down,
}
